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
    public IReadOnlyList<(string Service, string Source)> Assignments { get; private set; } = [];
    public HashSet<string> Unassignable { get; } = [];

    private T With<T>(Func<CertificateService, T> action) => web.Config((service, fallback) =>
    {
        using var store = new CertificateStore(web.DataDirectory);
        return action(new CertificateService(service, fallback, store));
    });

    public void OnGet()
    {
        With(certs =>
        {
            Certificates = certs.Certificates();
            var w = certs.Working;
            Listeners = w.Listeners.Select(l => l.Name).ToList();
            var rows = w.Listeners.Select(l => ($"listener {l.Name}", l.Certificate ?? l.CertificateFile ?? "Demo certificate")).ToList();
            rows.Add(("the outbound client certificate", w.DestinationControls.ClientCertificate ?? w.DestinationControls.ClientCertificateFile ?? "none"));
            rows.Add(("the HTTPS interface", w.Web.Certificate ?? "Demo certificate"));
            Assignments = rows;
            foreach (var l in w.Listeners.Where(l => l.Certificate is not null)) Unassignable.Add($"listener {l.Name}");
            if (w.DestinationControls.ClientCertificate is not null) Unassignable.Add("the outbound client certificate");
            if (w.Web.Certificate is not null) Unassignable.Add("the HTTPS interface");
            return 0;
        });
    }

    public string ServiceKey(string shown) => shown switch
    {
        "the outbound client certificate" => "outbound",
        "the HTTPS interface" => "https",
        _ => "listener:" + shown["listener ".Length..],
    };

    private static CertificateTarget Target(string service) => service switch
    {
        "outbound" => new CertificateTarget.Outbound(),
        "https" => new CertificateTarget.Https(),
        _ when service.StartsWith("listener:", StringComparison.Ordinal) => new CertificateTarget.Listener(service["listener:".Length..]),
        _ => throw new ConfigException($"'{service}' is not a service"),
    };

    /// <summary>The CSR holds no secret: every signed-in role may download it.</summary>
    public IActionResult OnGetCsr(string name)
    {
        try
        {
            var pem = With(certs => certs.Store.CreateSigningRequest(name));
            return File(System.Text.Encoding.ASCII.GetBytes(pem + "\n"), "application/pkcs10", FileName(name, "csr"));
        }
        catch (CertificateException e) { TempData["Error"] = e.Message; return RedirectToPage(); }
    }

    public IActionResult OnPostAssign(string name, string service) => Change(() =>
    {
        With(certs => { certs.Assign(Target(service), name); return 0; });
        web.Audit(User, $"assigned certificate {name} to {Target(service)} (staged)");
        return $"{name} is assigned to {Target(service)} (staged). Commit to apply it.";
    });

    public IActionResult OnPostUnassign(string service) => Change(() =>
    {
        With(certs => { certs.Unassign(Target(service)); return 0; });
        web.Audit(User, $"removed the certificate assignment of {Target(service)} (staged)");
        return $"{Target(service)} has no assigned certificate (staged). Commit to apply it.";
    });

    public IActionResult OnPostDelete(string name) => Change(() =>
    {
        With(certs => { certs.Delete(name); return 0; });
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
            var bytes = With(certs => certs.Store.ExportPkcs12(name, passphrase ?? ""));
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
