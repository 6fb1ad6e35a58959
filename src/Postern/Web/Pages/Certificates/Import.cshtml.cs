using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Security;

namespace Postern.Web.Pages.Certificates;

/// <summary>Import a certificate and its key from PKCS#12 (a wrong passphrase imports nothing).</summary>
public sealed class ImportCertificateModel(WebContext web) : PageModel
{
    [BindProperty] public IFormFile? Pkcs12 { get; set; }
    [BindProperty] public string? Passphrase { get; set; }
    [BindProperty] public string? Name { get; set; }
    public string? Problem { get; private set; }

    public IActionResult OnGet() => User.IsInRole(WebServer.AdministratorRole) ? Page() : Forbid();

    public async Task<IActionResult> OnPostAsync()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            if (Pkcs12 is null) throw new CertificateException("choose the PKCS#12 file");
            if (Pkcs12.Length > 1024 * 1024) throw new CertificateException($"{Pkcs12.FileName} is larger than 1 MB");
            using var buffer = new MemoryStream();
            await Pkcs12.CopyToAsync(buffer);
            using var store = CertificateStore.Open(web.Startup);
            var info = store.ImportPkcs12((Name ?? "").Trim(), buffer.ToArray(), Passphrase ?? "");
            web.Audit(User, $"imported certificate {info.Name} (PKCS#12)");
            TempData["Notice"] = $"Imported {info.Name} ({info.Subject}, {info.Intermediates} intermediate(s)).";
            return RedirectToPage("/Certificates/Index");
        }
        catch (CertificateException e)
        {
            Problem = e.Message;
            return Page();
        }
    }
}
