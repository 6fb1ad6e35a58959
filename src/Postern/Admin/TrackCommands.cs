using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Postern.Cluster;
using Postern.Observability;

namespace Postern.Admin;

/// <summary>
/// `postern track` (search) and `postern track show MID` (the story): read
/// &lt;data&gt;/tracking/tracking.db read-only, so they work while the gateway writes it; a
/// member of a cluster reads the cluster's database, where every member's tracking is.
/// </summary>
public static class TrackCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var sender = new Option<string?>("--sender") { Description = "Envelope sender: an address, or a domain (example.com)" };
        var recipient = new Option<string?>("--recipient") { Description = "Recipient: an address, or a domain (example.com)" };
        var mid = new Option<long?>("--mid") { Description = "Message ID (MID)" };
        var subject = new Option<string?>("--subject") { Description = "Text the Subject header contains, 3 characters or more (case-insensitive)" };
        var since = new Option<string?>("--since") { Description = "Received at or after TIME: 2025-06-01, 2025-06-01T14:30 (UTC unless an offset is given), or 90m, 12h, 7d ago" };
        var until = new Option<string?>("--until") { Description = "Received before TIME (the same forms as --since)" };
        var status = new Option<string?>("--status") { Description = "One of " + string.Join(", ", TrackingStatus.All) };
        var tls = new Option<string?>("--tls") { Description = "TLS outcome of the latest delivery attempt: one of " + string.Join(", ", TlsOutcome.All) };
        var limit = new Option<int>("--limit") { Description = $"At most this many messages, newest first (1-{TrackingQuery.MaxLimit})", DefaultValueFactory = _ => TrackingQuery.DefaultLimit };

        var track = new Command("track", "Search message tracking: every message's life, newest first")
        {
            sender, recipient, mid, subject, since, until, status, tls, limit, configOption, jsonOption,
        };
        track.SetAction(parse =>
        {
            var now = DateTimeOffset.UtcNow;
            DateTimeOffset? from = null, to = null;
            try
            {
                if (parse.GetValue(since) is { } s) from = ParseTime(s, now);
                if (parse.GetValue(until) is { } u) to = ParseTime(u, now);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"postern: {e.Message}");
                return 2;
            }
            var query = new TrackingQuery
            {
                Sender = Blank(parse.GetValue(sender)), Recipient = Blank(parse.GetValue(recipient)), Mid = parse.GetValue(mid),
                SubjectContains = Blank(parse.GetValue(subject)), From = from, To = to,
                Status = Blank(parse.GetValue(status))?.ToLowerInvariant(), Tls = Blank(parse.GetValue(tls))?.ToLowerInvariant(),
                Limit = parse.GetValue(limit),
            };
            if (query.Problems() is { Count: > 0 } problems)
            {
                foreach (var p in problems) Console.Error.WriteLine($"postern: {p}");
                return 2;
            }
            return WithStore(parse.GetValue(configOption), loadConfig, store =>
            {
                var found = store.Search(query);
                if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(found.Select(SummaryJson), JsonOut)); return 0; }
                if (found.Count == 0) { Console.WriteLine("No tracked message matches."); return 0; }
                Console.WriteLine($"{"MID",-10} {"Received (UTC)",-19} {"Status",-9} {"TLS",-9} {"Sender",-30} {"Recipients",-30} Subject");
                foreach (var m in found)
                {
                    var first = m.Recipients.FirstOrDefault()?.Address ?? "";
                    var recipients = m.RecipientCount > 1 ? $"{first} +{m.RecipientCount - 1}" : first;
                    Console.WriteLine($"{m.Mid,-10} {m.Received.UtcDateTime:yyyy-MM-dd HH:mm:ss} {m.Status,-9} {m.Tls,-9} {Cell(m.Sender.Length == 0 ? "<>" : m.Sender, 30),-30} " +
                        $"{Cell(recipients, 30),-30} {Cell(m.Subject ?? "", 50)}");
                }
                Console.WriteLine($"{found.Count} message(s){(found.Count == query.Limit ? $" (the newest {query.Limit}; --limit shows more)" : "")}");
                return 0;
            });
        });

        var midArgument = new Argument<long>("mid") { Description = "Message ID (MID)" };
        var show = new Command("show", "Tell one message's life as a story: received, each delivery attempt with its TLS, DANE and MTA-STS decisions, the outcome")
        {
            midArgument, configOption, jsonOption,
        };
        show.SetAction(parse => WithStore(parse.GetValue(configOption), loadConfig, store =>
        {
            var id = parse.GetValue(midArgument);
            if (store.Story(id) is not { } story)
            {
                Console.Error.WriteLine($"postern: MID {id} is not tracked (never seen, or older than the retention)");
                return 1;
            }
            var m = story.Message.Summary;
            if (parse.GetValue(jsonOption))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    message = SummaryJson(m),
                    inbound = story.Message.Inbound,
                    steps = story.Message.Steps.Select(s => new { time = TrackingTime.Iso(s.Time), s.Kind, s.Dcid, s.Rid, s.Member, s.Fields }),
                    stepsTruncated = story.Message.StepsTruncated,
                    story = story.Sentences.Select(s => new { time = TrackingTime.Iso(s.Time), s.Text }),
                }, JsonOut));
                return 0;
            }
            Console.WriteLine($"MID {m.Mid}: {m.Status}, TLS {m.Tls}; received {m.Received.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC" +
                (m.Origin == MessageEntered.FromSmtp ? "" : $" ({m.Origin})"));
            Console.WriteLine($"From: <{Cell(m.Sender, 200)}>");
            foreach (var r in m.Recipients)
                Console.WriteLine($"To:   <{Cell(r.Address, 200)}> RID {r.Rid}: {r.Status}, TLS {r.Tls}");
            if (m.RecipientCount > m.Recipients.Count) Console.WriteLine($"      and {m.RecipientCount - m.Recipients.Count} more recipients");
            if (m.Subject is not null) Console.WriteLine($"Subject: {Cell(m.Subject, 200)}");
            Console.WriteLine();
            foreach (var s in story.Sentences)
                Console.WriteLine($"{s.Time.UtcDateTime:yyyy-MM-dd HH:mm:ss.fff}  {s.Text}");
            return 0;
        }));
        track.Subcommands.Add(show);
        return track;
    }

    private static string? Blank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    /// <summary>Peer text in a table cell: escaped, cut.</summary>
    private static string Cell(string text, int width) => TrackingText.Clean(text, width - 1);

    /// <summary>"2025-06-01", "2025-06-01T14:30", "2025-06-01 14:30:00+02:00" (UTC unless an offset is given), or "90m", "12h", "7d" (ago).</summary>
    public static DateTimeOffset ParseTime(string text, DateTimeOffset now)
    {
        var t = text.Trim();
        if (t.Length >= 2 && long.TryParse(t[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 100_000)
        {
            switch (char.ToLowerInvariant(t[^1]))
            {
                case 's': return now.AddSeconds(-n);
                case 'm': return now.AddMinutes(-n);
                case 'h': return now.AddHours(-n);
                case 'd': return now.AddDays(-n);
            }
        }
        if (DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var parsed)) return parsed;
        throw new FormatException($"'{TrackingText.Clean(text, 60)}' is not a time (2025-06-01, 2025-06-01T14:30, 2025-06-01T14:30+02:00, or 90m, 12h, 7d ago)");
    }

    private static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static object SummaryJson(TrackedMessageSummary m) => new
    {
        m.Mid, received = TrackingTime.Iso(m.Received), updated = TrackingTime.Iso(m.Updated), m.Status, m.Tls, m.Origin, m.Sender, m.Subject, m.Size,
        m.MessageId, m.ClientAddress, m.Listener, m.Icid, m.BounceOf, m.RecipientCount,
        recipients = m.Recipients.Select(r => new { r.Rid, r.Address, r.Status, r.Tls, r.Response, r.Dcid, updated = TrackingTime.Iso(r.Updated) }),
    };

    private static int WithStore(FileInfo? configFile, Func<FileInfo?, PosternConfig?> loadConfig, Func<ITrackingStore, int> action)
    {
        var config = loadConfig(configFile);
        if (config is null) return 2;
        var data = Path.GetFullPath(config.DataDirectory);
        var location = TrackingStores.Location(config, data);
        ITrackingStore? opened;
        try { opened = TrackingStores.OpenForReading(config, data); }
        catch (Exception e) when (TrackingStores.IsUnavailable(e))
        {
            Console.Error.WriteLine($"postern: tracking database {location}: {e.Message}");
            return 1;
        }
        if (opened is null)
        {
            Console.Error.WriteLine($"postern: no tracking database at {location} (tracking.enabled is {(config.Tracking.Enabled ? "on; has the gateway run since?" : "off")})");
            return 1;
        }
        using var store = opened;
        try { return action(store); }
        catch (Exception e) when (TrackingStores.IsUnavailable(e))
        {
            Console.Error.WriteLine($"postern: tracking database {location}: {e.Message}");
            return 1;
        }
    }
}
