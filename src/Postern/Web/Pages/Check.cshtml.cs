using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Dns;

namespace Postern.Web.Pages;

/// <summary>The domain checker: `postern check DOMAIN` as a page (operators and administrators: it probes the MX hosts).</summary>
public sealed class CheckModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true)] public string? Domain { get; set; }
    public StsCheckReport? Report { get; private set; }
    public string? Problem { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(Domain)) return Page();
        if (!User.IsInRole(WebServer.AdministratorRole) && !User.IsInRole(WebServer.OperatorRole)) return Forbid();
        var domain = DomainNames.Normalize(Domain);
        if (domain is null) { Problem = "That is not a domain name."; return Page(); }
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(TimeSpan.FromSeconds(120));   // every probe has its own deadlines; this bounds the whole page
        Report = await StsCommands.RunCheckAsync(web.Live, domain, bounded.Token);
        return Page();
    }
}
