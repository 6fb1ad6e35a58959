using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Observability;

namespace Postern.Web.Pages.TlsReports;

/// <summary>The TLS reporting settings as the form posts them (an unchecked box is absent: false).</summary>
public sealed class TlsReportingForm
{
    public bool Enabled { get; set; }
    public string? OrganizationName { get; set; }
    public string? Contact { get; set; }
    public string? From { get; set; }
    public string? SendHourUtc { get; set; }
    public string? Mailbox { get; set; }
    public bool HttpsEndpoint { get; set; }
}

/// <summary>Monitor &gt; TLS Reports &gt; Settings: tlsReporting, staged through the configuration service and applied on commit.</summary>
public sealed class TlsReportSettingsModel(WebContext web) : PageModel
{
    [BindProperty] public TlsReportingForm Form { get; set; } = new();
    public List<string> Problems { get; } = [];
    public IReadOnlyList<string> Warnings { get; private set; } = [];
    /// <summary>The staged (or committed) settings differ from those the gateway runs with.</summary>
    public bool NotInForce { get; private set; }
    public string Hostname { get; private set; } = "";

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        var t = working.TlsReporting;
        Form = new TlsReportingForm
        {
            Enabled = t.Enabled, OrganizationName = t.OrganizationName, Contact = t.Contact, From = t.From,
            SendHourUtc = t.SendHourUtc.ToString(CultureInfo.InvariantCulture), Mailbox = t.Mailbox, HttpsEndpoint = t.HttpsEndpoint,
        };
        Describe(working);
    }

    private void Describe(PosternConfig working)
    {
        Hostname = working.Hostname;
        Warnings = TlsRptIntake.Warnings(working);
        NotInForce = JsonSerializer.Serialize(working.TlsReporting) != JsonSerializer.Serialize(web.Live.TlsReporting);
    }

    public IActionResult OnPost()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        int hour = 0;
        try { hour = ListenerService.ParseNumber((Form.SendHourUtc ?? "").Trim(), "the send hour (UTC)", 0, 23); }
        catch (ConfigException e) { Problems.Add(e.Message); }
        string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
        if (Problems.Count == 0)
        {
            try
            {
                web.Config((s, fallback) =>
                {
                    new TlsReportingService(s, fallback, WebContext.Who(User)).Change(t =>
                    {
                        t.Enabled = Form.Enabled;
                        t.OrganizationName = Blank(Form.OrganizationName) ?? "";
                        t.Contact = Blank(Form.Contact) ?? "";
                        t.From = Blank(Form.From);
                        t.SendHourUtc = hour;
                        t.Mailbox = Blank(Form.Mailbox);
                        t.HttpsEndpoint = Form.HttpsEndpoint;
                    });
                    return 0;
                });
                web.Audit(User, "changed the TLS reporting settings (staged)");
                TempData["Notice"] = "The TLS reporting settings are staged. Commit to apply them.";
                return RedirectToPage();
            }
            catch (ConfigException e) { Problems.AddRange(ConfigProblems.Lines(e.Message)); }
        }
        Describe(web.Config((s, fallback) => s.Working(fallback)));
        return Page();
    }
}
