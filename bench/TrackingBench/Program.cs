// trackingbench: fills <data>/tracking/tracking.db with synthetic messages through
// SqliteTrackingStore.Write (the batches the gateway's tracker writes: a message entered with
// its recipients and inbound steps, a delivery attempt with the connection's facts, each
// recipient's outcome, the finish), then refreshes the statistics. Deterministic (seeded), so
// bench/tracking-search.sh knows values to search for; they are printed as shell assignments.
//   trackingbench fill DATA_DIR MESSAGES
// and times one search in-process (what the web page pays; `postern track` adds its process
// start): the median of five runs after one warm-up, in milliseconds, and the number found.
//   trackingbench search DATA_DIR [--sender S] [--recipient R] [--mid N] [--subject T] [--since T] [--until T] [--status S] [--tls O] [--limit N]
//   trackingbench story DATA_DIR MID      (the same for a story: the median time and the number of sentences)
using System.Diagnostics;
using System.Globalization;
using Postern.Admin;
using Postern.Observability;

if (args.Length >= 2 && args[0] == "search") return Search(args[1], args[2..]);
if (args.Length == 3 && args[0] == "story") return Story(args[1], long.Parse(args[2], CultureInfo.InvariantCulture));
if (args.Length != 3 || args[0] != "fill")
{
    Console.Error.WriteLine("usage: trackingbench fill DATA_DIR MESSAGES | trackingbench search DATA_DIR [track options]");
    return 2;
}
var data = Path.GetFullPath(args[1]);
var total = int.Parse(args[2], CultureInfo.InvariantCulture);
var path = SqliteTrackingStore.PathFor(data);
if (File.Exists(path)) { Console.Error.WriteLine($"{path} exists; remove it first"); return 2; }

var random = new Random(20250601);
var now = DateTimeOffset.UtcNow;
var span = TimeSpan.FromDays(30);
string[] words = ["invoice", "order", "meeting", "notes", "project", "status", "report", "quarterly", "update", "review", "contract", "draft",
    "payment", "reminder", "shipping", "delivery", "welcome", "newsletter", "security", "alert", "password", "account", "team", "lunch",
    "agenda", "minutes", "budget", "forecast", "proposal", "offer", "ticket", "support", "release", "plan", "schedule", "travel"];
const int senderDomains = 2_000, sendersPerDomain = 10, recipientDomains = 5_000, recipientsPerDomain = 10;
string[] bigDomains = ["bigmail.example", "webmail.example", "mailhub.example", "postbox.example", "inbox.example"];
string Sender(int i) => $"user{i % sendersPerDomain}@sender{i / sendersPerDomain % senderDomains}.example";
string Recipient()
{
    if (random.NextDouble() < 0.3) return $"person{random.Next(20_000)}@{bigDomains[random.Next(bigDomains.Length)]}";
    var d = random.Next(recipientDomains);
    return $"rcpt{random.Next(recipientsPerDomain)}@dest{d}.example";
}
string Subject(long mid)
{
    var n = random.Next(3, 8);
    var parts = Enumerable.Range(0, n).Select(_ => words[random.Next(words.Length)]).ToList();
    parts.Add(random.Next(100_000).ToString(CultureInfo.InvariantCulture));
    if (mid % 20_000 == 7) parts.Insert(1, "zebra-quartz");   // a rare word: 50 in a million
    if (mid <= total / 30) parts.Insert(0, "campaign-alpha");   // common, but only in the oldest messages (the worst case of "newest first")
    var s = string.Join(' ', parts);
    return char.ToUpperInvariant(s[0]) + s[1..];
}

using var store = SqliteTrackingStore.OpenForWriting(path);
var watch = Stopwatch.StartNew();
var batch = new List<TrackingWrite>(20_000);
long dcid = 0;
var statusCounts = new Dictionary<string, int>();
for (long mid = 1; mid <= total; mid++)
{
    if (batch.Count >= 20_000)
    {
        store.Write(batch);   // one transaction, as the tracker's batches
        batch.Clear();
    }
    if (mid % 100_000 == 0) Console.Error.WriteLine($"{mid} messages, {watch.Elapsed.TotalSeconds:F0} s");
    var received = now - span + span * ((double)mid / total);
    var icid = mid;
    var sender = Sender(random.Next(senderDomains * sendersPerDomain));
    var recipients = Enumerable.Range(0, random.NextDouble() < 0.25 ? random.Next(2, 4) : 1).Select(rid => (rid, Recipient())).ToList();
    var subject = Subject(mid);
    var client = $"198.51.{random.Next(256)}.{random.Next(1, 255)}";
    var inbound = new Dictionary<string, string>
    {
        [InboundField.Icid] = icid.ToString(CultureInfo.InvariantCulture), [InboundField.Client] = client,
        [InboundField.ReverseDns] = $"mail{random.Next(1000)}.client.example", [InboundField.ReverseVerified] = "yes",
        [InboundField.Listener] = "IncomingMail", [InboundField.SenderGroup] = "ACCEPTLIST", [InboundField.Policy] = "ACCEPTED",
        [InboundField.Action] = "Accept", [InboundField.Tls] = "TLSv1.3", [InboundField.TlsCipher] = "TLS_AES_256_GCM_SHA384",
    };
    var t = received;
    var steps = new List<TrackingStep>
    {
        new(t.AddMilliseconds(-300), StepKind.Connection, null, null, new Dictionary<string, string>()),
        new(t.AddMilliseconds(-200), StepKind.MailFrom, null, null, new Dictionary<string, string> { ["sender"] = sender }),
    };
    foreach (var (rid, address) in recipients)
        steps.Add(new(t.AddMilliseconds(-150), StepKind.RecipientAccepted, null, rid, new Dictionary<string, string> { ["recipient"] = address }));
    steps.Add(new(t.AddMilliseconds(-20), StepKind.Content, null, null, new Dictionary<string, string>
        { ["size"] = "4711", ["messageId"] = $"<{mid}.{random.Next()}@client.example>", ["subject"] = subject }));
    steps.Add(new(t, StepKind.Queued, null, null, new Dictionary<string, string>()));
    batch.Add(new MessageEntered(mid, t, MessageEntered.FromSmtp, TrackingStatus.Queued, sender, inbound, subject, 4711 + random.Next(50_000),
        $"<{mid}@client.example>", null, recipients, steps));

    // The outcome: mostly delivered, some deferred (TLS failures among them), bounced, still queued.
    var roll = random.NextDouble();
    if (roll < 0.02) { Count("queued"); continue; }
    var (tls, fields) = Facts(random, recipients[0].Item2);
    var d = ++dcid;
    var at = t.AddSeconds(1);
    fields[AttemptField.Rids] = string.Join(",", recipients.Select(r => r.rid));
    fields[AttemptField.Outcome] = tls;
    if (roll < 0.07)
    {
        // Deferred: half of them because TLS (or DANE, or MTA-STS) failed before any message was sent.
        var tlsFailure = random.NextDouble() < 0.5;
        if (tlsFailure)
        {
            fields[AttemptField.Dane] = "Failed";
            fields[AttemptField.DaneReason] = "no usable TLSA record (3 1 1 a9ea4909cd670d02...) matched the end-entity certificate";
            fields[AttemptField.Outcome] = TlsOutcome.Failed;
            batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.HostAttempt, d, null, fields)));
        }
        else batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.DeliveryAttempt, d, null, fields)));
        foreach (var (rid, address) in recipients)
        {
            var reason = tlsFailure ? "all mail hosts failed; last: DANE verification failed" : "('451', ['4.7.1 Try again later'])";
            batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.Deferred, tlsFailure ? null : d, rid, new Dictionary<string, string>
                { ["status"] = "4.7.5", ["reason"] = reason, ["recipient"] = address, ["next"] = "2025-06-01T12:00:00.000Z" })));
            batch.Add(new RecipientChanged(mid, at, rid, address, TrackingStatus.Deferred, tlsFailure ? TlsOutcome.Failed : tls, "4.7.5 " + reason, tlsFailure ? null : d, sender));
        }
        Count("deferred");
        continue;
    }
    batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.DeliveryAttempt, d, null, fields)));
    var bounced = roll < 0.10;
    foreach (var (rid, address) in recipients)
    {
        if (bounced)
        {
            batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.Bounced, d, rid, new Dictionary<string, string>
                { ["status"] = "5.1.1", ["reason"] = $"('550', ['5.1.1 <{address}>: Recipient address rejected: User unknown'])", ["recipient"] = address })));
            batch.Add(new RecipientChanged(mid, at, rid, address, TrackingStatus.Bounced, tls, "5.1.1 User unknown", d, sender));
        }
        else
        {
            batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.Delivered, d, rid, new Dictionary<string, string> { ["reply"] = "2.0.0 Ok: queued as 4B1E2C8" })));
            batch.Add(new RecipientChanged(mid, at, rid, null, TrackingStatus.Delivered, tls, "2.0.0 Ok: queued as 4B1E2C8", d, null));
        }
    }
    batch.Add(new StepAdded(mid, new TrackingStep(at, StepKind.Finished, null, null, new Dictionary<string, string> { ["outcome"] = bounced ? "bounced" : "done" })));
    Count(bounced ? "bounced" : "delivered");
}
store.Write(batch);
Console.Error.WriteLine($"{total} messages written in {watch.Elapsed.TotalSeconds:F0} s ({total / watch.Elapsed.TotalSeconds:F0}/s); statistics...");
store.Optimize();
Console.Error.WriteLine($"done in {watch.Elapsed.TotalSeconds:F0} s; {string.Join(", ", statusCounts.Select(kv => $"{kv.Key} {kv.Value}"))}; database {new FileInfo(path).Length / (1 << 20)} MiB");

// Values for the searches (the same seed gives the same database).
var probe = new Random(7);
Console.WriteLine($"SENDER={Sender(probe.Next(senderDomains * sendersPerDomain))}");
Console.WriteLine($"SENDER_DOMAIN=sender{probe.Next(senderDomains)}.example");
Console.WriteLine($"RECIPIENT=rcpt{probe.Next(recipientsPerDomain)}@dest{probe.Next(recipientDomains)}.example");
Console.WriteLine($"BIG_DOMAIN={bigDomains[0]}");
Console.WriteLine($"MID={total / 2}");
Console.WriteLine($"DAY_FROM={(now - TimeSpan.FromDays(10)).UtcDateTime:yyyy-MM-ddTHH:mm:ss}Z");
Console.WriteLine($"DAY_UNTIL={(now - TimeSpan.FromDays(9)).UtcDateTime:yyyy-MM-ddTHH:mm:ss}Z");
return 0;

static int Story(string dataDirectory, long mid)
{
    using var opened = SqliteTrackingStore.OpenForReading(SqliteTrackingStore.PathFor(Path.GetFullPath(dataDirectory)));
    ITrackingStore store = opened;
    var sentences = store.Story(mid)?.Sentences.Count ?? 0;   // warm-up
    var times = new List<double>();
    for (var run = 0; run < 5; run++)
    {
        var watch = Stopwatch.StartNew();
        sentences = store.Story(mid)?.Sentences.Count ?? 0;
        times.Add(watch.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    Console.WriteLine($"{times[2]:F1} {sentences}");
    return 0;
}

static int Search(string dataDirectory, string[] options)
{
    var now = DateTimeOffset.UtcNow;
    var query = new TrackingQuery();
    for (var i = 0; i + 1 < options.Length; i += 2)
    {
        var v = options[i + 1];
        query = options[i] switch
        {
            "--sender" => query with { Sender = v },
            "--recipient" => query with { Recipient = v },
            "--mid" => query with { Mid = long.Parse(v, CultureInfo.InvariantCulture) },
            "--subject" => query with { SubjectContains = v },
            "--since" => query with { From = TrackCommands.ParseTime(v, now) },
            "--until" => query with { To = TrackCommands.ParseTime(v, now) },
            "--status" => query with { Status = v },
            "--tls" => query with { Tls = v },
            "--limit" => query with { Limit = int.Parse(v, CultureInfo.InvariantCulture) },
            _ => throw new ArgumentException($"unknown option {options[i]}"),
        };
    }
    using var store = SqliteTrackingStore.OpenForReading(SqliteTrackingStore.PathFor(Path.GetFullPath(dataDirectory)));
    var found = store.Search(query).Count;   // warm-up (JIT, first open)
    var times = new List<double>();
    for (var run = 0; run < 5; run++)
    {
        var watch = Stopwatch.StartNew();
        found = store.Search(query).Count;
        times.Add(watch.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    Console.WriteLine($"{times[2]:F1} {found}");
    return 0;
}

void Count(string status) => statusCounts[status] = statusCounts.GetValueOrDefault(status) + 1;

static (string Tls, Dictionary<string, string> Fields) Facts(Random random, string recipient)
{
    var domain = recipient[(recipient.IndexOf('@') + 1)..];
    var f = new Dictionary<string, string>
    {
        [AttemptField.Mx] = "mx1." + domain, [AttemptField.Address] = $"203.0.113.{random.Next(1, 255)}", [AttemptField.Port] = "25",
        [AttemptField.Domain] = domain, [AttemptField.Level] = "Preferred", [AttemptField.LevelSource] = "Default entry", [AttemptField.DaneMode] = "opportunistic",
    };
    var roll = random.NextDouble();
    if (roll < 0.05) return (TlsOutcome.Clear, f);
    f[AttemptField.Protocol] = "TLSv1.3";
    f[AttemptField.Cipher] = "TLS_AES_256_GCM_SHA384";
    f[AttemptField.Peer] = "subjectAltName:dNSName=mx1." + domain;
    if (roll < 0.15)
    {
        f[AttemptField.Dane] = "Authenticated";
        f[AttemptField.DaneRecord] = "3 1 1 9f86d081884c7d65...";
        f[AttemptField.DaneReason] = "TLSA 3 1 1 9f86d081884c7d65... matched the end-entity certificate (depth 0)";
        return (TlsOutcome.Dane, f);
    }
    f[AttemptField.Dane] = "NotApplicable";
    f[AttemptField.DaneReason] = $"there are no TLSA records for mx1.{domain}; TLS Preferred applies";
    if (roll < 0.25)
    {
        f[AttemptField.StsMode] = "enforce";
        f[AttemptField.Sts] = "ok";
        f[AttemptField.TlsOutcome] = "CertificateVerified";
        return (TlsOutcome.MtaSts, f);
    }
    if (roll < 0.75)
    {
        f[AttemptField.TlsOutcome] = "CertificateVerified";
        return (TlsOutcome.Verified, f);
    }
    return (TlsOutcome.Encrypted, f);
}
