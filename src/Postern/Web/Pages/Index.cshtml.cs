using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Observability;

namespace Postern.Web.Pages;

/// <summary>The overview: queue and configuration at a glance, and the traffic since start as charts (server-drawn SVG, no script).</summary>
public sealed class IndexModel(WebContext web) : PageModel
{
    public IReadOnlyList<(string Label, string Value)> Cards { get; private set; } = [];
    public string Uptime { get; private set; } = "";
    public string MessagesChart { get; private set; } = "";
    public string TlsChart { get; private set; } = "";
    public string TrafficChart { get; private set; } = "";
    public string ProtectionChart { get; private set; } = "";

    public async Task OnGetAsync()
    {
        var (messages, recipients, oldest) = await web.Queue.StatsAsync();
        var version = web.Config((s, _) => s.Versions().LastOrDefault()?.Number);
        var c = web.Counters;
        Cards =
        [
            ("messages in the queue", messages.ToString(CultureInfo.InvariantCulture)),
            ("pending recipients", recipients.ToString(CultureInfo.InvariantCulture)),
            ("oldest message", oldest is { } o ? Age(DateTimeOffset.UtcNow - o) : "none"),
            ("configuration version", version?.ToString(CultureInfo.InvariantCulture) ?? "none committed"),
        ];
        var hours = web.Traffic.Last24Hours();
        TrafficChart = HourlyChart(hours);
        var delivered = hours.Sum(h => h.Delivered);
        ProtectionChart = ShareChart(delivered, [
            ("encrypted (TLS)", hours.Sum(h => h.DeliveredTls)),
            ("certificate verified", hours.Sum(h => h.DeliveredVerified)),
            ("authenticated by DANE", hours.Sum(h => h.DeliveredDane)),
            ("under an MTA-STS policy", hours.Sum(h => h.DeliveredMtaSts)),
        ]);
        var up = DateTimeOffset.UtcNow - web.Started;
        Uptime = $"up {Age(up)}";
        MessagesChart = BarChart([
            ("received", c.Get(nameof(MessageQueued))),
            ("delivered", c.Get(nameof(RecipientResponse))),
            ("deferred", c.Get(nameof(RecipientDelayed))),
            ("bounced", c.Get(nameof(RecipientBounced))),
            ("connections in", c.Get(nameof(ConnectionOpened))),
            ("connections out", c.Get(nameof(DeliveryConnectionOpened))),
        ], "Messages and connections since start");
        TlsChart = BarChart(Enum.GetValues<TlsOutcomeKind>().Select(k => (k.ToString(), c.Get($"{nameof(DeliveryTlsOutcome)}.{k}"))).Prepend(("TLS negotiated", c.Get(nameof(DeliveryTlsNegotiated)))).ToList(),
            "Outbound TLS outcomes since start");
    }

    private static string Age(TimeSpan t) => t.TotalDays >= 1 ? $"{(int)t.TotalDays} d {t.Hours} h" : t.TotalHours >= 1 ? $"{(int)t.TotalHours} h {t.Minutes} min" : $"{(int)t.TotalMinutes} min";

    private static readonly (string Name, string Colour)[] Series =
        [("received", "#1f5fa8"), ("delivered", "#1c7a3a"), ("deferred", "#c98a00"), ("bounced", "#a31d1d")];

    /// <summary>Grouped bars per hour (received, delivered, deferred, bounced) as inline SVG, with a legend; numbers only.</summary>
    public static string HourlyChart(IReadOnlyList<TrafficHour> hours)
    {
        const int height = 180, left = 40, groupWidth = 30, barWidth = 6;
        long Value(TrafficHour h, int series) => series switch { 0 => h.Received, 1 => h.Delivered, 2 => h.Deferred, _ => h.Bounced };
        var max = Math.Max(1, hours.Max(h => Math.Max(Math.Max(h.Received, h.Delivered), Math.Max(h.Deferred, h.Bounced))));
        var width = left + hours.Count * groupWidth + 10;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height + 60}\" aria-label=\"Messages per hour\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"0\" y=\"12\" font-size=\"11\" fill=\"#5b6575\">{max}</text><text x=\"0\" y=\"{height}\" font-size=\"11\" fill=\"#5b6575\">0</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left - 4}\" y1=\"{height}\" x2=\"{width}\" y2=\"{height}\" stroke=\"#b9c2cf\"/>");
        for (var i = 0; i < hours.Count; i++)
        {
            var x0 = left + i * groupWidth;
            for (var series = 0; series < Series.Length; series++)
            {
                var v = Value(hours[i], series);
                var h = (int)Math.Round((height - 20) * (double)v / max);
                if (v > 0) h = Math.Max(h, 1);
                svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x0 + series * barWidth}\" y=\"{height - h}\" width=\"{barWidth - 1}\" height=\"{h}\" fill=\"{Series[series].Colour}\"><title>{hours[i].Hour.UtcDateTime:HH}:00 {Series[series].Name} {v}</title></rect>");
            }
            if (i % 3 == 0) svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0}\" y=\"{height + 14}\" font-size=\"11\" fill=\"#5b6575\">{hours[i].Hour.UtcDateTime:HH}:00</text>");
        }
        for (var series = 0; series < Series.Length; series++)
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left + series * 110}\" y=\"{height + 30}\" width=\"10\" height=\"10\" fill=\"{Series[series].Colour}\"/><text x=\"{left + series * 110 + 14}\" y=\"{height + 39}\" font-size=\"12\" fill=\"#1d2430\">{Series[series].Name}</text>");
        svg.Append("</svg>");
        return svg.ToString();
    }

    /// <summary>Shares of a total as percentage bars (the protection of delivered recipients).</summary>
    public static string ShareChart(long total, IReadOnlyList<(string Label, long Value)> parts)
    {
        if (total == 0) return "<p class=\"hint\">Nothing was delivered in the last 24 hours.</p>";
        return BarChart(parts.Select(p => ($"{p.Label} {100.0 * p.Value / total:0}%", p.Value)).Append(("delivered recipients", total)).ToList(), "Protection of delivered recipients");
    }

    /// <summary>A horizontal bar chart as inline SVG; labels are fixed strings, values numbers (nothing from a peer).</summary>
    public static string BarChart(IReadOnlyList<(string Label, long Value)> bars, string title)
    {
        const int rowHeight = 26, labelWidth = 190, barWidth = 520;
        var max = Math.Max(1, bars.Count == 0 ? 1 : bars.Max(b => b.Value));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{labelWidth + barWidth + 80}\" height=\"{bars.Count * rowHeight + 10}\" aria-label=\"{WebUtility.HtmlEncode(title)}\">");
        for (var i = 0; i < bars.Count; i++)
        {
            var (label, value) = bars[i];
            var y = i * rowHeight + 5;
            var width = (int)Math.Round(barWidth * (double)value / max);
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"0\" y=\"{y + 16}\" font-size=\"13\" fill=\"#1d2430\">{WebUtility.HtmlEncode(label)}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{labelWidth}\" y=\"{y + 3}\" width=\"{Math.Max(width, value > 0 ? 2 : 0)}\" height=\"16\" fill=\"#1f5fa8\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{labelWidth + width + 6}\" y=\"{y + 16}\" font-size=\"13\" fill=\"#1d2430\">{value}</text>");
        }
        svg.Append("</svg>");
        return svg.ToString();
    }
}
