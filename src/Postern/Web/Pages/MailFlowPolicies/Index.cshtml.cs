using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.MailFlowPolicies;

/// <summary>Mail Policies &gt; Mail Flow Policies: every policy with every field, and each listener's Host Access Table at a glance.</summary>
public sealed class MailFlowPoliciesModel(WebContext web) : PageModel
{
    public IReadOnlyList<(string Name, MailFlowPolicy Policy)> Policies { get; private set; } = [];
    public IReadOnlyList<ListenerSettings> Listeners { get; private set; } = [];

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Policies = working.MailFlowPolicies.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase).Select(p => (p.Key, p.Value)).ToList();
        Listeners = working.Listeners;
    }

    public IActionResult OnPostDelete(string name)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { new ListenerService(s, fallback, who: WebContext.Who(User)).DeletePolicy(name); return 0; });
            web.Audit(User, $"deleted mail flow policy {name} (staged)");
            TempData["Notice"] = $"Mail flow policy {name} deleted. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }

    /// <summary>Where a policy is used: "IncomingMail: LOOPBACK", "OutgoingMail: default".</summary>
    public IEnumerable<string> UsedBy(string policy) =>
        Listeners.SelectMany(l => l.SenderGroups.Where(g => g.Policy.Equals(policy, StringComparison.OrdinalIgnoreCase)).Select(g => $"{l.Name}: {g.Name}")
            .Concat(l.DefaultPolicy.Equals(policy, StringComparison.OrdinalIgnoreCase) ? [$"{l.Name}: default"] : []));
}

/// <summary>How the policy pages say a policy's settings.</summary>
public static class PolicyText
{
    public static string Action(PolicyAction a) => a switch
    {
        PolicyAction.Accept => "Accept",
        PolicyAction.Relay => "Relay",
        PolicyAction.Reject => "Reject",
        PolicyAction.TcpRefuse => "TCP Refuse",
        _ => a.ToString(),
    };

    public static string Tls(InboundTls t) => t switch
    {
        InboundTls.No => "No",
        InboundTls.Preferred => "Preferred",
        InboundTls.Required => "Required",
        _ => t.ToString(),
    };
}
