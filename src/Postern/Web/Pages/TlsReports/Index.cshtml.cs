using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Observability;

namespace Postern.Web.Pages.TlsReports;

/// <summary>One line of the failures table: a sending organisation, what failed, at which of our MX hosts, how often.</summary>
public sealed record TlsFailureTotal(string Organization, string ResultType, string ReceivingMx, long Sessions, int Reports);

/// <summary>
/// Monitor &gt; TLS Reports: the reports other organisations sent (RFC 8460), which of them
/// failed to reach us securely and why; with ?id=N one report in whole.
/// </summary>
public sealed class TlsReportsModel(WebContext web) : PageModel
{
    private const int Limit = 100;

    public bool Available => web.TlsReports is not null;
    public string? Domain { get; private set; }
    public bool FailedOnly { get; private set; }
    public List<string> Problems { get; } = [];
    public IReadOnlyList<string> Warnings { get; private set; } = [];
    public IReadOnlyList<TlsRptSummary> Reports { get; private set; } = [];
    public IReadOnlyList<TlsFailureTotal> Failures { get; private set; } = [];
    public StoredTlsReport? Report { get; private set; }
    public long? Id { get; private set; }
    public int Shown => Limit;

    /// <summary>Our own reports: sessions counted today per policy domain, and the reports of the last week.</summary>
    public bool Sending { get; private set; }
    public IReadOnlyList<(string Domain, long Successful, long Failed)> SentToday { get; private set; } = [];
    public IReadOnlyList<TlsRptOutgoing> Sent { get; private set; } = [];

    public async Task<IActionResult> OnGetAsync(long? id, string? domain, bool failed)
    {
        Warnings = TlsRptIntake.Warnings(web.Live);
        Sending = web.Live.TlsReporting.Enabled;
        if (id is null && web.SentReports is { } sent)
        {
            var today = DateOnly.FromDateTime(DateTime.UtcNow);
            SentToday = (await sent.CountsAsync(today)).GroupBy(c => c.Policy.PolicyDomain)
                .Select(g => (g.Key, g.Where(c => c.Failure is null).Sum(c => c.Sessions), g.Where(c => c.Failure is not null).Sum(c => c.Sessions)))
                .OrderByDescending(d => d.Item3).ThenBy(d => d.Key).Take(Limit).ToList();
            Sent = (await sent.ReportsAsync(today.AddDays(-TlsRptReporter.CatchUpDays))).OrderByDescending(r => r.Day).ThenBy(r => r.Domain).Take(Limit).ToList();
        }
        if (web.TlsReports is not { } intake) return Page();
        if (id is { } n)
        {
            Id = n;
            Report = intake.Inbox.Get(n);
            return Page();
        }
        FailedOnly = failed;
        if (!string.IsNullOrWhiteSpace(domain))
        {
            Domain = domain.Trim();
            if (Dns.DomainNames.Normalize(Domain) is null) { Problems.Add($"'{TrackingText.Clean(Domain, 100)}' is not a domain name"); return Page(); }
        }
        Reports = intake.Inbox.List(new TlsRptQuery(Limit, Domain is null ? null : Dns.DomainNames.Normalize(Domain), null, failed));
        // Failures summed over the listed reports: who could not reach us securely, and why.
        Failures = Reports.Where(r => r.FailedSessions > 0)
            .Select(r => intake.Inbox.Get(r.Id)).OfType<StoredTlsReport>()
            .SelectMany(s => s.Report.Policies.SelectMany(p => p.Failures).Select(f => (s.Summary.Id, s.Report.OrganizationName, f)))
            .GroupBy(x => (x.OrganizationName, x.f.ResultType, Mx: x.f.ReceivingMxHostname ?? x.f.ReceivingIp ?? "-"))
            .Select(g => new TlsFailureTotal(g.Key.OrganizationName, g.Key.ResultType, g.Key.Mx, g.Sum(x => x.f.FailedSessionCount), g.Select(x => x.Id).Distinct().Count()))
            .OrderByDescending(t => t.Sessions).Take(200).ToList();
        return Page();
    }

    public static string Clean(string? text, int max = 200) => TrackingText.Clean(text ?? "", max);

    public static string Range(DateTimeOffset start, DateTimeOffset end) =>
        $"{start.UtcDateTime:yyyy-MM-dd HH:mm} – {end.UtcDateTime:yyyy-MM-dd HH:mm}";
}
