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
