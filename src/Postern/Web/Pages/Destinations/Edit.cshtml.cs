using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Mvc.Rendering;
using Postern.Admin;

namespace Postern.Web.Pages.Destinations;

/// <summary>Every field of a Destination Controls entry (SPEC §2), as the form posts it; empty or "Default" = inherit.</summary>
public sealed class DestinationForm
{
    public string? Domain { get; set; }
    public IpPreference IpPreference { get; set; }
    public int? Concurrency { get; set; }
    public int? MaxMessages { get; set; }
    public int? RecipientLimit { get; set; }
    public int? RecipientMinutes { get; set; }
    public LimitScope LimitsApplyTo { get; set; }
    public TlsLevel Tls { get; set; }
    public DaneSupport Dane { get; set; }
    public MtaStsSupport MtaSts { get; set; }
    /// <summary>"", "on" or "off".</summary>
    public string? BounceVerification { get; set; }
    public string? BounceProfile { get; set; }

    public static DestinationForm From(DestinationEntry e) => new()
    {
        Domain = e.Domain, IpPreference = e.IpPreference, Concurrency = e.ConcurrentConnections, MaxMessages = e.MaxMessagesPerConnection,
        RecipientLimit = e.RecipientLimit?.Recipients, RecipientMinutes = e.RecipientLimit?.Minutes, LimitsApplyTo = e.LimitsApplyTo,
        Tls = e.Tls, Dane = e.Dane, MtaSts = e.MtaSts, BounceVerification = e.BounceVerification switch { true => "on", false => "off", null => "" },
        BounceProfile = e.BounceProfile ?? "",
    };

    public DestinationEntry ToEntry() => new()
    {
        Domain = (Domain ?? "").Trim(), IpPreference = IpPreference, ConcurrentConnections = Concurrency, MaxMessagesPerConnection = MaxMessages,
        RecipientLimit = RecipientLimit is { } r ? new RecipientLimit { Recipients = r, Minutes = RecipientMinutes ?? 60 } : null,
        LimitsApplyTo = LimitsApplyTo, Tls = Tls, Dane = Dane, MtaSts = MtaSts,
        BounceVerification = BounceVerification switch { "on" => true, "off" => false, _ => null },
        BounceProfile = string.IsNullOrEmpty(BounceProfile) ? null : BounceProfile,
    };
}

/// <summary>Add Destination / Edit: the whole entry, checked with the whole configuration by DestinationService and staged.</summary>
public sealed class EditDestinationModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "domain")] public string? Domain { get; set; }
    [BindProperty] public string? Original { get; set; }
    [BindProperty] public DestinationForm Form { get; set; } = new();
    public List<string> Problems { get; } = [];
    private PosternConfig _working = new();

    public bool IsNew => string.IsNullOrEmpty(Original);
    public bool IsDefault => Original?.Equals("default", StringComparison.OrdinalIgnoreCase) == true;

    public IActionResult OnGet()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        _working = web.Config((s, fallback) => s.Working(fallback));
        var dc = _working.DestinationControls;
        if (Domain is { Length: > 0 } d)
        {
            var entry = d.Equals("default", StringComparison.OrdinalIgnoreCase) ? dc.Default
                : dc.Entries.FirstOrDefault(e => e.Domain.Equals(d, StringComparison.OrdinalIgnoreCase));
            if (entry is null) { TempData["Error"] = $"There is no destination '{d}'."; return RedirectToPage("/Destinations/Index"); }
            Original = entry == dc.Default ? "default" : entry.Domain;
            Form = DestinationForm.From(entry);
        }
        return Page();
    }

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        _working = web.Config((s, fallback) => s.Working(fallback));
        if (!ModelState.IsValid)
        {
            Problems.AddRange(ModelState.Where(m => m.Value?.Errors.Count > 0).Select(m => $"{m.Key}: {string.Join(" ", m.Value!.Errors.Select(e => e.ErrorMessage))}"));
            return Page();
        }
        try
        {
            var notes = web.Config((s, fallback) => new DestinationService(s, fallback, who: WebContext.Who(User)).Save(IsNew ? null : Original, Form.ToEntry()));
            var name = IsDefault ? "the Default entry" : (Form.Domain ?? "").Trim().ToLowerInvariant();
            web.Audit(User, $"{(IsNew ? "added" : "changed")} destination {name} (staged)");
            TempData["Notice"] = string.Join(" ", notes.Prepend($"{name} is staged. Commit to apply it."));
            return RedirectToPage("/Destinations/Index");
        }
        catch (ConfigException e)
        {
            Problems.AddRange(e.Message.Split('\n').Select(l => l.Trim().TrimStart('-', ' ')).Where(l => l.Length > 0 && l != "invalid configuration:"));
            return Page();
        }
    }

    public IEnumerable<SelectListItem> Choices<T>() where T : struct, Enum =>
        Enum.GetValues<T>().Where(v => !IsDefault || Convert.ToInt32(v, System.Globalization.CultureInfo.InvariantCulture) != 0)
            .Select(v => new SelectListItem(Convert.ToInt32(v, System.Globalization.CultureInfo.InvariantCulture) == 0 ? "Use Default" : v.ToString(), v.ToString()));

    public IEnumerable<SelectListItem> TlsChoices() =>
        Enum.GetValues<TlsLevel>().Where(v => !IsDefault || v != TlsLevel.Default)
            .Select(v => new SelectListItem(v == TlsLevel.Default ? "Use Default" : $"{(int)v}. {EffectiveDestination.LevelName(v)}", v.ToString()));

    public IEnumerable<SelectListItem> BounceChoices() =>
        [new(IsDefault ? "Off" : "Use Default", ""), new("On", "on"), new("Off", "off")];

    public IEnumerable<SelectListItem> Profiles() =>
        _working.BounceProfiles.Keys.Order().Select(k => new SelectListItem(k, k)).Prepend(new SelectListItem(IsDefault ? "Default" : "Use Default", ""));
}
