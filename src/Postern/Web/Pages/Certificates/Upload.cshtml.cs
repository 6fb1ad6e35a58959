using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Security;

namespace Postern.Web.Pages.Certificates;

/// <summary>Upload the CA-signed certificate (and intermediates) for a stored key.</summary>
public sealed class UploadCertificateModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true)] public string? Name { get; set; }
    [BindProperty] public IFormFile? Certificate { get; set; }
    [BindProperty] public IFormFile? Intermediates { get; set; }
    public string? Problem { get; private set; }

    public IActionResult OnGet() => User.IsInRole(WebServer.AdministratorRole) ? Page() : Forbid();

    public async Task<IActionResult> OnPostAsync()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            if (Certificate is null) throw new CertificateException("choose the signed certificate file");
            using var store = CertificateStore.Open(web.Startup);
            var info = store.UploadSigned(Name ?? "", await ReadAsync(Certificate), Intermediates is null ? null : await ReadAsync(Intermediates));
            web.Audit(User, $"uploaded the signed certificate for {info.Name}");
            TempData["Notice"] = $"{info.Name} now holds the certificate issued by {info.Issuer} (expires {info.NotAfter:yyyy-MM-dd}, {info.Intermediates} intermediate(s)).";
            return RedirectToPage("/Certificates/Index");
        }
        catch (CertificateException e)
        {
            Problem = e.Message;
            return Page();
        }
    }

    /// <summary>PEM text, at most 1 MB.</summary>
    internal static async Task<string> ReadAsync(IFormFile file)
    {
        if (file.Length > 1024 * 1024) throw new CertificateException($"{file.FileName} is larger than 1 MB");
        using var reader = new StreamReader(file.OpenReadStream());
        return await reader.ReadToEndAsync();
    }
}
