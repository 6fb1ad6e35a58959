using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Interfaces;

/// <summary>Network &gt; IP Interfaces: the addresses served on and the HTTPS service (the appliance's "Enabling HTTPS").</summary>
public sealed class InterfacesModel(WebContext web) : PageModel
{
    public IReadOnlyList<IpInterface> Interfaces { get; private set; } = [];
    public WebSettings Web { get; private set; } = new();
    public IReadOnlyList<Security.CertificateInfo> Certificates { get; private set; } = [];
    public string? Problem { get; private set; }

    private InterfaceService Service(ConfigService s, PosternConfig fallback) =>
        new(s, fallback, () => CertificateService.StoredCertificates(web.Startup), WebContext.Who(User));

    public void OnGet()
    {
        web.Config((s, fallback) =>
        {
            var service = Service(s, fallback);
            Interfaces = service.List();
            Web = service.Working.Web;
            return 0;
        });
        Certificates = CertificateService.StoredCertificates(web.Startup);
    }

    public IActionResult OnPost(bool enabled, string? address, int? port, string? certificate)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { Service(s, fallback).SetHttps(enabled, address, port, certificate); return 0; });
            web.Audit(User, $"changed the HTTPS service: {(enabled ? $"enabled on {address}:{port}" : "disabled")}, certificate {certificate} (staged)");
            TempData["Notice"] = "The HTTPS service settings are staged. Commit to apply them.";
            return RedirectToPage();
        }
        catch (ConfigException e)
        {
            Problem = e.Message;
            OnGet();
            return Page();
        }
    }
}
