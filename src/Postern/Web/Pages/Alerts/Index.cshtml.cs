using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Alerts;

/// <summary>System Administration &gt; Alerts: the recipients with their alert classes and severities, delete, and the throttle.</summary>
public sealed class AlertsModel(WebContext web) : PageModel
{
    public AlertSettings Alerts { get; private set; } = new();
    public string Hostname { get; private set; } = "";

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Alerts = working.Alerts;
        Hostname = working.Hostname;
    }

    public IActionResult OnPostDelete(string address)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { new AlertConfigService(s, fallback, WebContext.Who(User)).Remove(address); return 0; });
            web.Audit(User, $"deleted alert recipient {address} (staged)");
            TempData["Notice"] = $"Alert recipient {address} deleted. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }

    public IActionResult OnPostThrottle(string? seconds)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            var value = AlertConfigService.ParseThrottle((seconds ?? "").Trim());
            web.Config((s, fallback) => { new AlertConfigService(s, fallback, WebContext.Who(User)).Throttle(value); return 0; });
            web.Audit(User, $"set the alert throttle to {value} s (staged)");
            TempData["Notice"] = $"The alert throttle ({value} seconds) is staged. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = "The throttle was not changed: " + e.Message; }
        return RedirectToPage();
    }

    /// <summary>The appliance's names of the chosen values; none chosen = all.</summary>
    public static string Names<T>(IReadOnlyCollection<T> chosen, IReadOnlyList<(T Value, string Name)> choices) where T : struct, Enum =>
        chosen.Count == 0 || choices.All(c => chosen.Contains(c.Value)) ? "All" : string.Join(", ", choices.Where(c => chosen.Contains(c.Value)).Select(c => c.Name));
}
