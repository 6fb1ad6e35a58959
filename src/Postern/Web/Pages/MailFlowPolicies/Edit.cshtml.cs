using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Mvc.Rendering;
using Postern.Admin;

namespace Postern.Web.Pages.MailFlowPolicies;

/// <summary>Every field of a mail flow policy as the form posts it; numbers as typed, read by ListenerService's parsers.</summary>
public sealed class PolicyForm
{
    public string? Name { get; set; }
    public PolicyAction Action { get; set; }
    public InboundTls Tls { get; set; }
    /// <summary>Bytes, or with k or M ("20M").</summary>
    public string? MaxMessageSize { get; set; }
    public string? MaxRecipients { get; set; }
    public string? MaxMessagesPerConnection { get; set; }
    public string? MaxLineLength { get; set; }
    public string? CommandTimeout { get; set; }
    public string? DataTimeout { get; set; }

    public static PolicyForm From(string name, MailFlowPolicy p) => new()
    {
        Name = name, Action = p.Action, Tls = p.Tls, MaxMessageSize = ListenerService.FormatMessageSize(p.MaxMessageSize),
        MaxRecipients = Text(p.MaxRecipientsPerMessage), MaxMessagesPerConnection = Text(p.MaxMessagesPerConnection), MaxLineLength = Text(p.MaxLineLength),
        CommandTimeout = Text(p.CommandTimeoutSeconds), DataTimeout = Text(p.DataTimeoutSeconds),
    };

    private static string Text(int n) => n.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Add Policy / Edit: the whole mail flow policy, checked with the whole configuration (a relay policy on a public listener is refused) and staged.</summary>
public sealed class EditPolicyModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "name")] public string? Name { get; set; }
    [BindProperty] public string? Original { get; set; }
    [BindProperty] public PolicyForm Form { get; set; } = PolicyForm.From("", new MailFlowPolicy());
    public List<string> Problems { get; } = [];

    public bool IsNew => string.IsNullOrEmpty(Original);

    public IActionResult OnGet()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (Name is { Length: > 0 } n)
        {
            var policies = web.Config((s, fallback) => s.Working(fallback)).MailFlowPolicies;
            if (!policies.TryGetValue(n, out var policy)) { TempData["Error"] = $"There is no mail flow policy '{n}'."; return RedirectToPage("/MailFlowPolicies/Index"); }
            Original = policies.Keys.First(k => k.Equals(n, StringComparison.OrdinalIgnoreCase));
            Form = PolicyForm.From(Original, policy);
        }
        return Page();
    }

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        var name = IsNew ? Check(() => ListenerService.ParseName((Form.Name ?? "").Trim(), "policy name")) : Original!;
        if (IsNew && name is not null && web.Config((s, fallback) => s.Working(fallback)).MailFlowPolicies.ContainsKey(name))
            Problems.Add($"mail flow policy '{name}' already exists");
        var size = Check(() => ListenerService.ParseMessageSize((Form.MaxMessageSize ?? "").Trim()));
        var recipients = Check(() => ListenerService.ParseMaxRecipients((Form.MaxRecipients ?? "").Trim()));
        var messages = Check(() => ListenerService.ParseMaxMessagesPerConnection((Form.MaxMessagesPerConnection ?? "").Trim()));
        var lineLength = Check(() => ListenerService.ParseNumber((Form.MaxLineLength ?? "").Trim(), "the maximum line length", 1000, 65536));
        var commandTimeout = Check(() => ListenerService.ParseNumber((Form.CommandTimeout ?? "").Trim(), "the command timeout", 1, 3600));
        var dataTimeout = Check(() => ListenerService.ParseNumber((Form.DataTimeout ?? "").Trim(), "the data timeout", 1, 3600));
        if (Problems.Count > 0) return Page();
        try
        {
            web.Config((s, fallback) =>
            {
                new ListenerService(s, fallback, who: WebContext.Who(User)).SetPolicy(name!, p =>
                {
                    p.Action = Form.Action;
                    p.Tls = Form.Tls;
                    p.MaxMessageSize = size;
                    p.MaxRecipientsPerMessage = recipients;
                    p.MaxMessagesPerConnection = messages;
                    p.MaxLineLength = lineLength;
                    p.CommandTimeoutSeconds = commandTimeout;
                    p.DataTimeoutSeconds = dataTimeout;
                });
                return 0;
            });
        }
        catch (ConfigException e)
        {
            Problems.AddRange(ConfigProblems.Lines(e.Message));
            return Page();
        }
        web.Audit(User, $"{(IsNew ? "added" : "changed")} mail flow policy {name} (staged)");
        TempData["Notice"] = $"Mail flow policy {name} is staged. Commit to apply it (to new sessions)."
            + (Form.Tls != InboundTls.No ? " You have chosen to enable TLS: make sure the listeners using this policy have a valid certificate (Network > Listeners)." : "");
        return RedirectToPage("/MailFlowPolicies/Index");
    }

    private T Check<T>(Func<T> parse)
    {
        try { return parse(); }
        catch (ConfigException e) { Problems.Add(e.Message); return default!; }
    }

    public IEnumerable<SelectListItem> ActionChoices() =>
        Enum.GetValues<PolicyAction>().Select(a => new SelectListItem(PolicyText.Action(a), a.ToString()));

    public IEnumerable<SelectListItem> TlsChoices() =>
        Enum.GetValues<InboundTls>().Select(t => new SelectListItem($"{(int)t + 1}. {PolicyText.Tls(t)}", t.ToString()));
}
