using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Alerts;

/// <summary>An alert recipient as the form posts it: the checked classes and severities (all checked = all, stored as none listed).</summary>
public sealed class RecipientForm
{
    public string? Address { get; set; }
    public List<AlertType> Types { get; set; } = [];
    public List<AlertSeverity> Severities { get; set; } = [];
}

/// <summary>Add Recipient / Edit: an alert recipient with its classes and severities, staged through AlertConfigService.</summary>
public sealed class EditRecipientModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "address")] public string? Address { get; set; }
    [BindProperty] public string? Original { get; set; }
    /// <summary>Empty lists until bound: a POST with no box checked must not keep a default.</summary>
    [BindProperty] public RecipientForm Form { get; set; } = new();
    public List<string> Problems { get; } = [];

    public bool IsNew => string.IsNullOrEmpty(Original);

    public IActionResult OnGet()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        // A new recipient gets every class and severity, as the dialogue's default answer.
        Form = new RecipientForm { Types = AlertConfigService.TypeChoices.Select(c => c.Value).ToList(), Severities = AlertConfigService.SeverityChoices.Select(c => c.Value).ToList() };
        if (Address is { Length: > 0 } a)
        {
            var recipient = web.Config((s, fallback) => s.Working(fallback)).Alerts.Recipients.FirstOrDefault(r => r.Address.Equals(a, StringComparison.OrdinalIgnoreCase));
            if (recipient is null) { TempData["Error"] = $"'{a}' is not an alert recipient."; return RedirectToPage("/Alerts/Index"); }
            Original = recipient.Address;
            Form = new RecipientForm
            {
                Address = recipient.Address,
                Types = recipient.Types.Count == 0 ? AlertConfigService.TypeChoices.Select(c => c.Value).ToList() : recipient.Types,
                Severities = recipient.Severities.Count == 0 ? AlertConfigService.SeverityChoices.Select(c => c.Value).ToList() : recipient.Severities,
            };
        }
        return Page();
    }

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        string? address = null;
        try { address = AlertConfigService.ParseAddress((Form.Address ?? "").Trim()); }
        catch (ConfigException e) { Problems.Add(e.Message); }
        // The dialogue's rule: at least one of each; every one = all (stored as none listed, so new kinds are included).
        var types = Chosen(Form.Types, AlertConfigService.TypeChoices, "alert class");
        var severities = Chosen(Form.Severities, AlertConfigService.SeverityChoices, "severity level");
        if (Problems.Count > 0) return Page();
        try
        {
            web.Config((s, fallback) =>
            {
                var service = new AlertConfigService(s, fallback, WebContext.Who(User));
                if (IsNew)
                {
                    if (service.Working.Alerts.Recipients.Any(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase)))
                        throw new ConfigException($"'{address}' is an alert recipient already");
                    service.Add(address!, severities, types);
                }
                else service.Edit(Original!, address!, severities, types);
                return 0;
            });
        }
        catch (ConfigException e)
        {
            Problems.AddRange(ConfigProblems.Lines(e.Message));
            return Page();
        }
        web.Audit(User, $"{(IsNew ? "added" : "changed")} alert recipient {address} (staged)");
        TempData["Notice"] = $"Alert recipient {address} is staged. Commit to apply it.";
        return RedirectToPage("/Alerts/Index");
    }

    private List<T> Chosen<T>(List<T> chosen, IReadOnlyList<(T Value, string Name)> choices, string what) where T : struct, Enum
    {
        var known = choices.Select(c => c.Value).Where(chosen.Contains).ToList();
        if (known.Count == 0) Problems.Add($"choose at least one {what}");
        return known.Count == choices.Count ? [] : known;
    }
}
