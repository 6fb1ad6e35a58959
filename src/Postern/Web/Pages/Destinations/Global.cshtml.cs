using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Destinations;

/// <summary>Destination Controls' global settings (destconfig SETUP): the alert on a failed required TLS connection, the outbound client certificate.</summary>
public sealed class GlobalSettingsModel(WebContext web) : PageModel
{
    public bool Alert { get; private set; }
    public string? Certificate { get; private set; }
    public IReadOnlyList<Security.CertificateInfo> Certificates { get; private set; } = [];

    public IActionResult OnGet()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        var dc = web.Config((s, fallback) => s.Working(fallback)).DestinationControls;
        Alert = dc.AlertOnRequiredTlsFailure;
        Certificate = dc.ClientCertificate;
        Certificates = CertificateService.StoredCertificates(web.Startup);
        return Page();
    }

    public IActionResult OnPost(bool alert, string? certificate)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) =>
            {
                new DestinationService(s, fallback, () => CertificateService.StoredCertificates(web.Startup), WebContext.Who(User)).Setup(alert, certificate ?? "none");
                return 0;
            });
            web.Audit(User, "changed the Destination Controls global settings (staged)");
            TempData["Notice"] = "The global settings are staged. Commit to apply them.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage("/Destinations/Index");
    }
}
