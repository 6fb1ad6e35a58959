using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Security;

namespace Postern.Web.Pages.Certificates;

/// <summary>Network &gt; Certificates: the stored certificates, CSR download, PKCS#12 export, delete, and the (staged) assignments.</summary>
public sealed class CertificatesModel(WebContext web) : PageModel
{
    public IReadOnlyList<CertificateInfo> Certificates { get; private set; } = [];
    public IReadOnlyList<string> Listeners { get; private set; } = [];
    /// <summary>Every service with what it presents; Assigned is null where no stored certificate is assigned.</summary>
    public IReadOnlyList<(CertificateTarget Target, string? Assigned, string Source)> Assignments { get; private set; } = [];

    public void OnGet()
    {
        web.WithCertificates(certs =>
        {
            Certificates = certs.Certificates();
            var w = certs.Working;
            Listeners = w.Listeners.Select(l => l.Name).ToList();
            var targets = w.Listeners.Select(l => (CertificateTarget)new CertificateTarget.Listener(l.Name))
                .Append(new CertificateTarget.Outbound()).Append(new CertificateTarget.Https());
            Assignments = targets.Select(t => (t, CertificateService.Assigned(w, t), Fallback(w, t))).ToList();
            return 0;
        });
    }

    /// <summary>What a service presents without a stored certificate.</summary>
    private static string Fallback(PosternConfig w, CertificateTarget t) => t switch
    {
        CertificateTarget.Listener l => w.Listeners.First(x => x.Name == l.Name).CertificateFile ?? "Demo certificate",
        CertificateTarget.Outbound => w.DestinationControls.ClientCertificateFile ?? "none",
        _ => "Demo certificate",
    };

    /// <summary>The CSR holds no secret: every signed-in role may download it.</summary>
    public IActionResult OnGetCsr(string name)
    {
        try
        {
            var pem = web.WithCertificates(certs => certs.Store.CreateSigningRequest(name));
            return File(System.Text.Encoding.ASCII.GetBytes(pem + "\n"), "application/pkcs10", FileName(name, "csr"));
        }
        catch (CertificateException e) { TempData["Error"] = e.Message; return RedirectToPage(); }
    }

    public IActionResult OnPostAssign(string name, string service) => Change(() =>
    {
        web.WithCertificates(certs => { certs.Assign(CertificateTarget.Parse(service), name); return 0; });
        web.Audit(User, $"assigned certificate {name} to {CertificateTarget.Parse(service)} (staged)");
        return $"{name} is assigned to {CertificateTarget.Parse(service)} (staged). Commit to apply it.";
    });

    public IActionResult OnPostUnassign(string service) => Change(() =>
    {
        web.WithCertificates(certs => { certs.Unassign(CertificateTarget.Parse(service)); return 0; });
        web.Audit(User, $"removed the certificate assignment of {CertificateTarget.Parse(service)} (staged)");
        return $"{CertificateTarget.Parse(service)} has no assigned certificate (staged). Commit to apply it.";
    });

    public IActionResult OnPostDelete(string name) => Change(() =>
    {
        web.WithCertificates(certs => { certs.Delete(name); return 0; });
        web.Audit(User, $"deleted certificate {name}");
        return $"Certificate {name} deleted.";
    });

    /// <summary>PKCS#12 with the private key, encrypted under the passphrase given twice (administrators only).</summary>
    public IActionResult OnPostExport(string name, string? passphrase, string? confirm)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (passphrase != confirm) { TempData["Error"] = "The passphrases differ; nothing was exported."; return RedirectToPage(); }
        try
        {
            var bytes = web.WithCertificates(certs => certs.Store.ExportPkcs12(name, passphrase ?? ""));
            web.Audit(User, $"exported certificate {name} with its key (PKCS#12)");
            return File(bytes, "application/x-pkcs12", FileName(name, "p12"));
        }
        catch (CertificateException e) { TempData["Error"] = e.Message; return RedirectToPage(); }
    }

    private IActionResult Change(Func<string> action)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try { TempData["Notice"] = action(); }
        catch (Exception e) when (e is ConfigException or CertificateException) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }

    /// <summary>A download name made only of safe characters.</summary>
    public static string FileName(string name, string extension) =>
        new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray()) + "." + extension;
}
