using System.Globalization;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Observability;

namespace Postern.Web.Pages.Tracking;

/// <summary>Monitor &gt; Message Tracking: the same searches as `postern track`, over the tracking store (read-only).</summary>
public sealed class TrackingModel(WebContext web) : PageModel
{
    public string? Sender { get; private set; }
    public string? Recipient { get; private set; }
    public long? Mid { get; private set; }
    public string? Subject { get; private set; }
    public string? Since { get; private set; }
    public string? Until { get; private set; }
    public string? Status { get; private set; }
    public string? Tls { get; private set; }
    public int Limit => TrackingQuery.DefaultLimit;
    public List<string> Problems { get; } = [];
    public IReadOnlyList<TrackedMessageSummary>? Results { get; private set; }

    public void OnGet(string? sender, string? recipient, long? mid, string? subject, string? since, string? until, string? status, string? tls)
    {
        (Sender, Recipient, Mid, Subject, Since, Until, Status, Tls) = (Blank(sender), Blank(recipient), mid, Blank(subject), Blank(since), Blank(until), Blank(status), Blank(tls));
        if (Request.Query.Count == 0) return;   // the empty form: nothing searched yet
        var query = new TrackingQuery
        {
            Sender = Sender, Recipient = Recipient, Mid = Mid, SubjectContains = Subject,
            From = Time(Since, "since"), To = Time(Until, "until"), Status = Status, Tls = Tls,
        };
        Problems.AddRange(query.Problems());
        if (Problems.Count > 0) return;
        using var store = Cluster.TrackingStores.OpenForReading(web.Startup, web.DataDirectory);
        Results = store?.Search(query) ?? [];
    }

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    private DateTimeOffset? Time(string? text, string what)
    {
        if (text is null) return null;
        if (DateTimeOffset.TryParseExact(text, ["yyyy-MM-dd", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-ddTHH:mm:ssZ"], CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)) return t;
        Problems.Add($"{what} '{text}' is not a time (yyyy-mm-dd or yyyy-mm-dd hh:mm, UTC)");
        return null;
    }
}
