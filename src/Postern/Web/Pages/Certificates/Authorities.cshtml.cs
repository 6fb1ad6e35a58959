using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Security;

namespace Postern.Web.Pages.Certificates;

/// <summary>Edit Certificate Authorities: the system list (on/off, view and download each, Update Now) and the custom list.</summary>
public sealed class AuthoritiesModel(WebContext web) : PageModel
{
    public CertificateAuthoritySettings Settings { get; private set; } = new();
    public X509Certificate2Collection System { get; private set; } = [];
    public IReadOnlyList<CaEntry> Custom { get; private set; } = [];
    public string BundleDate { get; private set; } = "";
    public string PackageVersion { get; private set; } = "";

    public void OnGet()
    {
        web.WithCertificates(certs =>
        {
            Settings = certs.Working.CertificateAuthorities;
            Custom = certs.CustomCas();
            return 0;
        });
        System = TrustedAuthorities.ReadBundle(Settings.SystemBundle);
        BundleDate = global::System.IO.File.Exists(Settings.SystemBundle) ? global::System.IO.File.GetLastWriteTimeUtc(Settings.SystemBundle).ToString("yyyy-MM-dd HH:mm 'UTC'") : "missing";
        PackageVersion = CertConfigCommands.PackageVersion("ca-certificates");
    }

    public IActionResult OnGetDownload(string list, int index)
    {
        OnGet();
        X509Certificate2? c = list == "system" ? (index >= 0 && index < System.Count ? System[index] : null)
            : index >= 0 && index < Custom.Count ? Custom[index].Certificate : null;
        if (c is null) return NotFound();
        return File(global::System.Text.Encoding.ASCII.GetBytes(c.ExportCertificatePem() + "\n"), "application/x-pem-file", $"ca-{CertificateStore.Fingerprint(c)[..16]}.pem");
    }

    public IActionResult OnGetExport()
    {
        var pem = string.Concat(web.WithCertificates(certs => certs.CustomCas()).Select(c => c.Certificate.ExportCertificatePem() + "\n"));
        return File(global::System.Text.Encoding.ASCII.GetBytes(pem), "application/x-pem-file", "custom-cas.pem");
    }

    public IActionResult OnPostSystem(bool enable) => Change(certs => { certs.SetSystemList(enable); return $"The system list is {(enable ? "enabled" : "disabled")} (staged). Commit to apply it."; });

    public IActionResult OnPostCustom(bool enable) => Change(certs => { certs.SetCustomList(enable); return $"The custom list is {(enable ? "enabled" : "disabled")} (staged). Commit to apply it."; });

    public IActionResult OnPostRemove(string fingerprint) => Change(certs => { certs.RemoveCustomCa(fingerprint); return "Removed from the custom list (staged). Commit to apply it."; });

    public IActionResult OnPostUpdate() => Change(certs =>
    {
        certs.Store.Touch();
        return $"The system bundle was read again: {TrustedAuthorities.ReadBundle(certs.Working.CertificateAuthorities.SystemBundle).Count} certificates; the running gateway uses it within a second.";
    });

    public async Task<IActionResult> OnPostImportAsync(IFormFile? file)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            if (file is null) throw new CertificateException("choose a PEM file");
            var pem = await UploadCertificateModel.ReadAsync(file);
            var added = web.WithCertificates(certs => certs.AddCustomCas(pem));
            var enabled = web.WithCertificates(certs => certs.Working.CertificateAuthorities.CustomListEnabled);
            web.Audit(User, $"imported {added} CA certificate(s) into the custom list (staged)");
            TempData["Notice"] = $"{added} CA certificate(s) added to the custom list (staged). Commit to apply it." + (enabled ? "" : " The custom list is disabled: enable it too.");
        }
        catch (Exception e) when (e is CertificateException or ConfigException) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }

    private IActionResult Change(Func<CertificateService, string> action)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            var said = web.WithCertificates(action);
            web.Audit(User, said);
            TempData["Notice"] = said;
        }
        catch (Exception e) when (e is CertificateException or ConfigException) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }
}
