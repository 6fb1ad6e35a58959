using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Mvc.Rendering;
using Postern.Admin;
using Postern.Security;

namespace Postern.Web.Pages.Listeners;

/// <summary>A listener's fields as the form posts them; numbers as typed, read by ListenerService's parsers (their words for what is wrong).</summary>
public sealed class ListenerForm
{
    public string? Name { get; set; }
    public ListenerType Type { get; set; }
    public string? Address { get; set; }
    public string? Port { get; set; }
    public string? MaxConcurrency { get; set; }
    public string? StressCommandTimeout { get; set; }
    public string? DefaultPolicy { get; set; }
    /// <summary>A stored certificate's name; "" = none (the PEM files, else the demo certificate).</summary>
    public string? Certificate { get; set; }

    public static ListenerForm From(ListenerSettings l) => new()
    {
        Name = l.Name, Type = l.Type, Address = l.Address, Port = l.Port.ToString(CultureInfo.InvariantCulture),
        MaxConcurrency = l.MaxConcurrency.ToString(CultureInfo.InvariantCulture),
        StressCommandTimeout = l.StressCommandTimeoutSeconds.ToString(CultureInfo.InvariantCulture), DefaultPolicy = l.DefaultPolicy, Certificate = l.Certificate ?? "",
    };
}

/// <summary>Add Listener / Edit: the whole listener, checked with the whole configuration by ListenerService and staged.</summary>
public sealed class EditListenerModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "name")] public string? Name { get; set; }
    [BindProperty] public string? Original { get; set; }
    [BindProperty] public ListenerForm Form { get; set; } = new() { Address = "127.0.0.1", Port = "25", MaxConcurrency = "50", StressCommandTimeout = "10", DefaultPolicy = "ACCEPTED" };
    public List<string> Problems { get; } = [];
    public IReadOnlyList<string> Policies { get; private set; } = [];
    public IReadOnlyList<CertificateInfo> Certificates { get; private set; } = [];
    /// <summary>The listener's certificate when the store no longer has it (shown, kept unless another is chosen).</summary>
    public string? MissingCertificate { get; private set; }
    public string? CertificateFile { get; private set; }
    public string? CertificateStoreError { get; private set; }

    public bool IsNew => string.IsNullOrEmpty(Original);

    private PosternConfig Load()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Policies = working.MailFlowPolicies.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList();
        try { Certificates = CertificateService.StoredCertificates(web.Startup); }
        catch (Exception e) when (e is CertificateException or IOException) { CertificateStoreError = e.Message; }
        var current = IsNew ? null : working.Listeners.FirstOrDefault(l => l.Name.Equals(Original, StringComparison.OrdinalIgnoreCase));
        CertificateFile = current?.CertificateFile;
        if (current?.Certificate is { } c && Certificates.All(s => !s.Name.Equals(c, StringComparison.OrdinalIgnoreCase))) MissingCertificate = c;
        return working;
    }

    public IActionResult OnGet()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (Name is { Length: > 0 } n)
        {
            var listener = web.Config((s, fallback) => s.Working(fallback)).Listeners.FirstOrDefault(l => l.Name.Equals(n, StringComparison.OrdinalIgnoreCase));
            if (listener is null) { TempData["Error"] = $"There is no listener '{n}'."; return RedirectToPage("/Listeners/Index"); }
            Original = listener.Name;
            Form = ListenerForm.From(listener);
        }
        Load();
        return Page();
    }

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        var working = Load();
        var name = Check(() => ListenerService.ParseName((Form.Name ?? "").Trim(), "listener name"));
        var address = Check(() => ListenerService.ParseAddress((Form.Address ?? "").Trim()));
        var port = Check(() => ListenerService.ParsePort((Form.Port ?? "").Trim()));
        var maxConcurrency = Check(() => ListenerService.ParseMaxConcurrency((Form.MaxConcurrency ?? "").Trim()));
        var stressTimeout = Check(() => ListenerService.ParseNumber((Form.StressCommandTimeout ?? "").Trim(), "the command timeout under stress", 1, 3600));
        var policy = Form.DefaultPolicy ?? "";
        if (!working.MailFlowPolicies.ContainsKey(policy)) Problems.Add($"mail flow policy '{policy}' is not defined");
        if (Problems.Count > 0) return Page();
        var before = IsNew ? null : working.Listeners.FirstOrDefault(l => l.Name.Equals(Original, StringComparison.OrdinalIgnoreCase));
        try
        {
            web.Config((s, fallback) =>
            {
                var service = new ListenerService(s, fallback, () => CertificateService.StoredCertificates(web.Startup), WebContext.Who(User));
                var certificate = Form.Certificate is { Length: > 0 } c
                    ? c.Equals(before?.Certificate, StringComparison.OrdinalIgnoreCase) ? before!.Certificate
                      : CertificateService.StoredName(service.StoredCertificates(), c)
                    : null;
                void Apply(ListenerSettings l)
                {
                    l.Name = name!;
                    l.Type = Form.Type;
                    l.Address = address!;
                    l.Port = port;
                    l.MaxConcurrency = maxConcurrency;
                    l.StressCommandTimeoutSeconds = stressTimeout;
                    l.DefaultPolicy = working.MailFlowPolicies.Keys.First(k => k.Equals(policy, StringComparison.OrdinalIgnoreCase));
                    l.Certificate = certificate;
                }
                if (IsNew)
                {
                    var listener = new ListenerSettings();
                    Apply(listener);
                    service.New(listener);
                }
                else service.Edit(Original!, Apply);
                return 0;
            });
        }
        catch (Exception e) when (e is ConfigException or CertificateException)
        {
            Problems.AddRange(ConfigProblems.Lines(e.Message));
            return Page();
        }
        web.Audit(User, $"{(IsNew ? "added" : "changed")} listener {name} (staged)");
        var note = ListenerPages.CommitNote(web.Live, new ListenerSettings { Name = name!, Address = address!, Port = port });
        TempData["Notice"] = $"Listener {name} is staged. Commit to apply it."
            + (note.Length > 0 ? $" It {note.Replace("new: bound", "is bound", StringComparison.Ordinal)}." : "")
            + (!IsNew && !name!.Equals(Original, StringComparison.OrdinalIgnoreCase) ? $" Renamed, it counts as a new listener ({Original} stops accepting when committed)." : "");
        return RedirectToPage("/Listeners/Index");
    }

    public IEnumerable<SelectListItem> TypeChoices() => [new("Public", nameof(ListenerType.Public)), new("Private", nameof(ListenerType.Private))];

    public IEnumerable<SelectListItem> PolicyChoices() => Policies.Select(p => new SelectListItem(p, p, p.Equals(Form.DefaultPolicy, StringComparison.OrdinalIgnoreCase)));

    public IEnumerable<SelectListItem> CertificateChoices()
    {
        bool Chosen(string name) => name.Equals(Form.Certificate, StringComparison.OrdinalIgnoreCase);
        yield return new SelectListItem($"None ({(CertificateFile is { } f ? $"the PEM files, {f}" : "the demo certificate")})", "");
        if (MissingCertificate is { } missing) yield return new SelectListItem($"{missing} (not in the certificate store)", missing, Chosen(missing));
        foreach (var c in Certificates)
            yield return new SelectListItem($"{c.Name} ({c.Subject}, expires {c.NotAfter:yyyy-MM-dd})", c.Name, Chosen(c.Name));
    }

    private T Check<T>(Func<T> parse)
    {
        try { return parse(); }
        catch (ConfigException e) { Problems.Add(e.Message); return default!; }
    }
}
