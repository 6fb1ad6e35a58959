using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Security;

namespace Postern.Web.Pages.Certificates;

/// <summary>Add Certificate: a self-signed certificate with a new key (the CSR is then a download on the list).</summary>
public sealed class CreateCertificateModel(WebContext web) : PageModel
{
    [BindProperty] public string? CommonName { get; set; }
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public string? Organization { get; set; }
    [BindProperty] public string? Unit { get; set; }
    [BindProperty] public string? City { get; set; }
    [BindProperty] public string? State { get; set; }
    [BindProperty] public string? Country { get; set; }
    [BindProperty] public int Days { get; set; } = 365;
    [BindProperty] public string? Key { get; set; }
    [BindProperty] public string? Sans { get; set; }
    public string? Problem { get; private set; }

    public IActionResult OnGet() => User.IsInRole(WebServer.AdministratorRole) ? Page() : Forbid();

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            using var store = CertificateStore.Open(web.Startup);
            var sans = (Sans ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var info = store.CreateSelfSigned(new SelfSignedRequest((CommonName ?? "").Trim(), Organization, Unit, City, State, Country, Days,
                CertConfigCommands.ParseKey(Key ?? "rsa2048"), AllowInsecureKey: false, ValidateFqdn: false, ExtraDnsNames: sans, Name: string.IsNullOrWhiteSpace(Name) ? null : Name.Trim()));
            web.Audit(User, $"created self-signed certificate {info.Name}");
            TempData["Notice"] = $"Certificate {info.Name} created ({info.Subject}, expires {info.NotAfter:yyyy-MM-dd}). Download its CSR to have it signed, or assign it as it is.";
            return RedirectToPage("/Certificates/Index");
        }
        catch (CertificateException e)
        {
            Problem = e.Message;
            return Page();
        }
    }
}
