using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Destinations;

/// <summary>Mail Policies &gt; Destination Controls: the table (staged changes included), the global settings, delete.</summary>
public sealed class DestinationsModel(WebContext web) : PageModel
{
    public IReadOnlyList<(DestinationEntry Entry, EffectiveDestination Effective)> Rows { get; private set; } = [];
    public DestinationControls Global { get; private set; } = new();

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Global = working.DestinationControls;
        Rows = working.DestinationControls.Entries.Prepend(working.DestinationControls.Default)
            .Select(e => (e, working.DestinationControls.Resolve(e.Domain == "Default" ? "default.invalid" : e.Domain.TrimStart('.')))).ToList();
    }

    public IActionResult OnPostDelete(string domain)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { new DestinationService(s, fallback).Delete(domain); return 0; });
            web.Audit(User, $"deleted destination {domain} (staged)");
            TempData["Notice"] = $"{domain} deleted. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }
}
