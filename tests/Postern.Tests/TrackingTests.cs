using System.Net;
using System.Text.Json;
using Postern.Admin;
using Postern.Observability;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// Message tracking: real traffic through a gateway to the test world's receivers (plain TLS,
/// DANE, MTA-STS, a DANE failure, a refused recipient), then `postern track` finds each with
/// its status and TLS outcome and `postern track show` tells its story; retention, searches,
/// escaping and the never-block rule on a store of its own.
/// </summary>
public sealed class TrackingTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    /// <summary>DANE opportunistic and MTA-STS on for every destination, the world's CA trusted, retries far away.</summary>
    private PosternConfig TrackingConfig(string name) => _world.NewConfig(name, c =>
    {
        c.DestinationControls.Default.Tls = TlsLevel.Preferred;
        c.DestinationControls.Default.Dane = DaneSupport.Opportunistic;
        c.DestinationControls.Default.MtaSts = MtaStsSupport.On;
        c.CertificateAuthorities.CustomListEnabled = true;
        c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        c.MtaSts.FetchTimeoutSeconds = 5;
        c.DefaultBounceProfile.InitialRetrySeconds = 600;
        c.DefaultBounceProfile.MaxRetrySeconds = 600;
    });

    /// <summary>One message in its own session; returns its MID (from the 250 reply).</summary>
    internal static async Task<long> SubmitAsync(IPEndPoint listener, string sender, string recipient, string subject, bool startTls = false)
    {
        await using var c = await RawSmtp.ConnectAsync(listener);
        await c.ReadReplyAsync();
        Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
        if (startTls)
        {
            Assert.StartsWith("220", await c.CommandAsync("STARTTLS"));
            await c.StartTlsAsync();
            Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
        }
        Assert.StartsWith("250", await c.CommandAsync($"MAIL FROM:<{sender}>"));
        Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{recipient}>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        var reply = await c.CommandAsync($"Subject: {subject}\r\nMessage-ID: <{Guid.NewGuid():N}@client.test>\r\n\r\ntracking test\r\n.");
        Assert.StartsWith("250 2.0.0 Ok: Message ", reply);
        await c.CommandAsync("QUIT");
        return long.Parse(reply.Split(' ')[4]);
    }

    private static TrackedMessageSummary WaitForStatus(MessageTracker tracker, long mid, string status, TimeSpan? timeout = null)
    {
        TrackedMessageSummary? found = null;
        try
        {
            TestWorld.WaitUntil(() =>
            {
                found = tracker.Store.Search(new TrackingQuery { Mid = mid }).FirstOrDefault();
                return found?.Status == status;
            }, timeout ?? TimeSpan.FromSeconds(40), $"MID {mid} tracked as {status}");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; it is {found?.Status ?? "not tracked"}:\n{Story(tracker, mid)}");
        }
        return found!;
    }

    private static string Story(MessageTracker tracker, long mid) =>
        tracker.Store.Story(mid) is { } s ? string.Join("\n", s.Sentences.Select(x => x.Text)) : "(no story)";

    private static string ConfigFile(PosternConfig config) => CliRuns.WriteConfig(config);

    private static JsonElement TrackJson(string file, params string[] args)
    {
        var (code, output) = PosternProcess.Cli(["track", .. args, "--json", "--config", file]);
        Assert.True(code == 0, output);
        return JsonDocument.Parse(output).RootElement;
    }

    /// <summary>Contains, with the whole story in the failure message.</summary>
    internal static void Told(string story, string sentence)
    {
        if (!story.Contains(sentence, StringComparison.Ordinal)) throw new Xunit.Sdk.XunitException($"not told: {sentence}\n--- story ---\n{story}");
    }

    private static string ShowStory(string file, long mid)
    {
        var (code, output) = PosternProcess.Cli("track", "show", mid.ToString(), "--config", file);
        Assert.True(code == 0, output);
        return output;
    }

    [Fact]
    public async Task Real_traffic_is_found_by_the_CLI_with_its_status_and_TLS_outcome_and_told_as_a_story()
    {
        var config = TrackingConfig("tracking");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);
        var tracker = gw.Gateway.Tracking ?? throw new InvalidOperationException("tracking is not on by default");
        var sender = TestWorld.Unique("trk") + "@sender.test";
        var good = TestWorld.Unique("trk") + "@good.test";
        var daneEe = TestWorld.Unique("trk") + "@dane-ee.test";
        var stsGood = TestWorld.Unique("trk") + "@sts-good.test";
        var stsChain = TestWorld.Unique("trk") + "@sts-chain.test";
        var daneFail = TestWorld.Unique("trk") + "@dane-nomatch.test";
        var refused = TestWorld.Unique("reject") + "@good.test";
        const string nastySubject = "Hello \u001b[31mred\u0007 bell \u202Eevil";

        var goodMid = await SubmitAsync(gw.Private, sender, good, nastySubject, startTls: true);
        var daneMid = await SubmitAsync(gw.Private, sender, daneEe, "dane-ee");
        var stsMid = await SubmitAsync(gw.Private, sender, stsGood, "sts-good");
        var chainMid = await SubmitAsync(gw.Private, sender, stsChain, "sts-chain");
        var failMid = await SubmitAsync(gw.Private, sender, daneFail, "dane-nomatch");
        var refusedMid = await SubmitAsync(gw.Private, sender, refused, "refused");

        WaitForStatus(tracker, goodMid, TrackingStatus.Delivered);
        WaitForStatus(tracker, daneMid, TrackingStatus.Delivered);
        WaitForStatus(tracker, stsMid, TrackingStatus.Delivered);
        WaitForStatus(tracker, chainMid, TrackingStatus.Delivered);
        WaitForStatus(tracker, failMid, TrackingStatus.Deferred);
        WaitForStatus(tracker, refusedMid, TrackingStatus.Bounced);
        _world.WaitForMail(sender);   // the DSN for the refused recipient
        await tracker.FlushAsync();

        // The CLI, reading the database the running gateway writes.
        void Found(string recipient, long mid, string status, string tls)
        {
            var hit = Assert.Single(TrackJson(file, "--recipient", recipient).EnumerateArray());
            Assert.Equal(mid, hit.GetProperty("mid").GetInt64());
            Assert.Equal(status, hit.GetProperty("status").GetString());
            Assert.Equal(tls, hit.GetProperty("tls").GetString());
            var r = Assert.Single(hit.GetProperty("recipients").EnumerateArray());
            Assert.Equal(recipient, r.GetProperty("address").GetString());
            Assert.Equal(status, r.GetProperty("status").GetString());
        }
        Found(good, goodMid, "delivered", "verified");
        Found(daneEe, daneMid, "delivered", "dane");
        Found(stsGood, stsMid, "delivered", "mta-sts");
        Found(stsChain, chainMid, "delivered", "dane");
        Found(daneFail, failMid, "deferred", "failed");
        Found(refused, refusedMid, "bounced", "verified");

        // Searches by sender, status and TLS outcome, subject, time range.
        var bySender = TrackJson(file, "--sender", sender, "--limit", "1000").EnumerateArray().Select(m => m.GetProperty("mid").GetInt64()).ToList();
        Assert.Equal(new[] { refusedMid, failMid, chainMid, stsMid, daneMid, goodMid }, bySender);
        Assert.Equal(new[] { failMid }, TrackJson(file, "--sender", "sender.test", "--status", "deferred", "--tls", "failed", "--since", "10m")
            .EnumerateArray().Select(m => m.GetProperty("mid").GetInt64()).Where(bySender.Contains));
        // "@domain" as administrators type it: an argument, never a response file.
        Assert.Equal(new[] { failMid }, TrackJson(file, "--sender", "@sender.test", "--status", "deferred", "--tls", "failed", "--since", "10m")
            .EnumerateArray().Select(m => m.GetProperty("mid").GetInt64()).Where(bySender.Contains));
        Assert.Contains(chainMid, TrackJson(file, "--subject", "STS-CHAIN").EnumerateArray().Select(m => m.GetProperty("mid").GetInt64()));
        Assert.Empty(TrackJson(file, "--sender", sender, "--until", "2000-01-01").EnumerateArray());
        var byMid = Assert.Single(TrackJson(file, "--mid", goodMid.ToString()).EnumerateArray());
        Assert.Equal("OutgoingMail", byMid.GetProperty("listener").GetString());
        Assert.Equal(nastySubject, byMid.GetProperty("subject").GetString());   // stored as received; JSON escapes it

        // The DSN for the refused recipient is tracked too, addressed to the sender.
        var dsn = TrackJson(file, "--recipient", sender).EnumerateArray().Single(m => m.GetProperty("bounceOf").ValueKind == JsonValueKind.Number);
        Assert.Equal(refusedMid, dsn.GetProperty("bounceOf").GetInt64());
        Assert.Equal("dsn", dsn.GetProperty("origin").GetString());

        // The stories.
        var goodStory = ShowStory(file, goodMid);
        Told(goodStory, "on OutgoingMail (ICID ");
        Told(goodStory, ", sender group RELAYLIST (matched 127.0.0.0/8), policy RELAYED (relay), TLS TLSv1.3 (");
        Told(goodStory, $"MAIL FROM:<{sender}>, message MID {goodMid}.");
        Told(goodStory, $"RCPT TO:<{good}> accepted as RID 0.");
        Told(goodStory, "Delivery attempt DCID ");
        Told(goodStory, " to mx1.good.test [127.0.1.10]:25 (MX of good.test) for <" + good + ">: TLSv1.3 with TLS_");
        Told(goodStory, "peer subjectAltName:dNSName=mx1.good.test");
        Told(goodStory, $"Delivered to <{good}> via mx1.good.test [127.0.1.10] over TLSv1.3, certificate verified; " +
            "DANE not applicable: there are no TLSA records for mx1.good.test");
        Told(goodStory, "no MTA-STS policy (");
        Told(goodStory, "Destination Controls entry Default: TLS Preferred, DANE opportunistic (DCID ");
        Told(goodStory, "Reply: 250 2.0.0 Ok: ");
        Told(goodStory, "Finished: done.");
        // Peer text is escaped: no terminal escape, no bell, no direction override reaches the output.
        Told(goodStory, "subject \"Hello \\x1B[31mred\\x07 bell \\u202Eevil\"");
        Assert.DoesNotContain('\u001b', goodStory);
        Assert.DoesNotContain('\u0007', goodStory);
        Assert.DoesNotContain('\u202E', goodStory);
        var table = PosternProcess.Cli("track", "--mid", goodMid.ToString(), "--config", file).Output;
        Assert.Contains("Hello \\x1B[31mred\\x07", table);
        Assert.DoesNotContain('\u001b', table);

        var daneStory = ShowStory(file, daneMid);
        Told(daneStory, $"Delivered to <{daneEe}> via mx.dane-ee.test [");
        Told(daneStory, "over TLSv1.3, certificate verified by DANE-EE (3 1 1); no MTA-STS policy (");

        var chainStory = ShowStory(file, chainMid);
        Told(chainStory, "certificate verified by DANE-TA (2 0 1); MTA-STS not applied because DANE succeeded; Destination Controls entry Default: TLS Preferred");

        var stsStory = ShowStory(file, stsMid);
        Told(stsStory, $"Delivered to <{stsGood}> via ");
        Told(stsStory, "certificate verified; DANE not applicable: ");
        Told(stsStory, "MTA-STS policy (mode enforce) satisfied; Destination Controls entry Default");

        var failStory = ShowStory(file, failMid);
        Told(failStory, "Tried mx.dane-nomatch.test [");
        Told(failStory, "for dane-nomatch.test: over TLSv1.");
        Told(failStory, "DANE verification failed: no usable TLSA record");
        Told(failStory, $"Deferred <{daneFail}> (4.7.5): all mail hosts of dane-nomatch.test failed");
        Told(failStory, "; next attempt ");

        var refusedStory = ShowStory(file, refusedMid);
        Told(refusedStory, $"Bounced <{refused}> (5.1.1) via mx1.good.test [127.0.1.10] over TLSv1.3, certificate verified");
        Told(refusedStory, "Bounce (DSN) to the sender queued as MID ");

        // show --json: the steps as recorded and the story.
        var (code, json) = PosternProcess.Cli("track", "show", daneMid.ToString(), "--json", "--config", file);
        Assert.True(code == 0, json);
        var shown = JsonDocument.Parse(json).RootElement;
        var attempt = shown.GetProperty("steps").EnumerateArray().First(s => s.GetProperty("kind").GetString() == StepKind.DeliveryAttempt);
        Assert.Equal("Authenticated", attempt.GetProperty("fields").GetProperty("dane").GetString());
        Assert.StartsWith("3 1 1 ", attempt.GetProperty("fields").GetProperty("daneRecord").GetString());
        Assert.Contains(shown.GetProperty("story").EnumerateArray(), s => s.GetProperty("text").GetString()!.StartsWith("Delivered to", StringComparison.Ordinal));

        Assert.Equal(1, PosternProcess.Cli("track", "show", "999999999", "--config", file).ExitCode);
        Assert.Equal(2, PosternProcess.Cli("track", "--status", "lost", "--config", file).ExitCode);
    }

    [Fact]
    public void Peer_text_is_escaped_and_cut_when_shown()
    {
        Assert.Equal("a\\x0D\\x0Ab\\x1B[2Jc\\x9B\\u202Ed", TrackingText.Clean("a\r\nb\u001b[2Jc\u009b\u202Ed", 100));
        Assert.Equal("abcde…", TrackingText.Clean("abcdefghij", 5));
        Assert.Equal("DANE-TA (2 0 1)", TrackingStory.DaneRecordName("2 0 1 deadbeef..."));
        Assert.Equal(new DateTimeOffset(2025, 6, 1, 14, 30, 0, TimeSpan.Zero), TrackCommands.ParseTime("2025-06-01T14:30", DateTimeOffset.UtcNow));
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(now.AddHours(-12), TrackCommands.ParseTime("12h", now));
        Assert.Throws<FormatException>(() => TrackCommands.ParseTime("yesterday-ish", now));
    }

    /// <summary>A store that stalls: the tracker's backlog fills and events must be dropped, never waited for.</summary>
    private sealed class StalledStore : ITrackingStore
    {
        public readonly ManualResetEventSlim Release = new(false);
        public void Write(IReadOnlyList<TrackingWrite> batch) => Release.Wait();
        public int DeleteReceivedBefore(DateTimeOffset cutoff, int maxMessages) => 0;
        public IReadOnlyList<TrackedMessageSummary> Search(TrackingQuery query) => [];
        public TrackedMessage? Get(long mid) => null;
        public void Dispose() { }
    }

    [Fact]
    public async Task A_stalled_store_never_blocks_the_publisher_and_the_drops_are_said()
    {
        var stalled = new StalledStore();
        await using var h = new TrackingHarness(_ => stalled);
        h.Events.Publish(new MessageFinished(1, "done"));   // the tracking task takes it and stalls in Write
        // More than the backlog holds: if the publisher waited for room, this loop would never end.
        for (var i = 0; i < MessageTracker.Backlog + 5_000; i++) h.Events.Publish(new MessageFinished(i, "done"));
        lock (h.Published)
            Assert.Contains(h.Published, e => e is SystemWarning w && w.Text.StartsWith("message tracking is behind: ", StringComparison.Ordinal)
                && w.Text.Contains("mail is not affected", StringComparison.Ordinal));
        stalled.Release.Set();
    }
}

/// <summary>A tracker on a store of its own, fed events by hand, its clock set by the test.</summary>
internal sealed class TrackingHarness : IAsyncDisposable
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "postern-tests", "tracking-" + Guid.NewGuid().ToString("N"));
    public MailEventStream Events { get; } = new();
    public DateTimeOffset Now { get; set; } = DateTimeOffset.UtcNow;
    public TrackingSettings Settings { get; } = new();
    public MessageTracker Tracker { get; }
    public List<MailEvent> Published { get; } = [];

    /// <summary>On the store <paramref name="open"/> makes (given <see cref="Directory"/>), or on a SQLite store there.</summary>
    public TrackingHarness(Func<string, ITrackingStore>? open = null)
    {
        Events.Subscribe(e => { lock (Published) Published.Add(e); });
        Tracker = new MessageTracker(open?.Invoke(Directory) ?? SqliteTrackingStore.OpenForWriting(SqliteTrackingStore.PathFor(Directory)), Events, () => Settings,
            () => Now, scheduleRetention: false);
    }

    /// <summary>A message accepted over SMTP, received at the given time.</summary>
    public void Message(long mid, DateTimeOffset at, string sender, string recipient, string subject)
    {
        var icid = mid + 1000;
        Events.Publish(new ConnectionOpened(icid, "IncomingMail", new IPEndPoint(IPAddress.Loopback, 25), IPAddress.Parse("192.0.2.7"), "mail.example.org", true) { Time = at });
        Events.Publish(new SenderGroupMatched(icid, "Accept", "UNKNOWNLIST", "ACCEPTED", null) { Time = at });
        Events.Publish(new MessageStarted(mid, icid) { Time = at });
        Events.Publish(new MessageFrom(mid, icid, sender) { Time = at });
        Events.Publish(new RecipientAccepted(mid, icid, 0, recipient) { Time = at });
        Events.Publish(new MessageHeadersSeen(mid, $"<{mid}@example.org>", subject) { Time = at });
        Events.Publish(new MessageReady(mid, 1234, sender) { Time = at });
        Events.Publish(new MessageQueued(mid) { Time = at });
        Events.Publish(new ConnectionClosed(icid, "") { Time = at });
    }

    /// <summary>A delivery of a message's RID 0 over DANE-authenticated TLS, answered 250, then the message finished.</summary>
    public void DeliveredOverDane(long mid, long dcid, string domain, DateTimeOffset at)
    {
        Events.Publish(new DeliveryConnectionOpened(dcid, new IPEndPoint(IPAddress.Loopback, 4000), IPAddress.Parse("192.0.2.25"), 25, $"mx1.{domain}", domain) { Time = at });
        Events.Publish(new DeliveryPolicyApplied(dcid, domain, "Required (Verify)", $"{domain} entry", "mandatory") { Time = at });
        Events.Publish(new DeliveryTlsNegotiated(dcid, "TLSv1.3", "TLS_AES_256_GCM_SHA384", $"subjectAltName:dNSName=mx1.{domain}") { Time = at });
        Events.Publish(new DaneOutcome(dcid, domain, $"mx1.{domain}", DaneResult.Authenticated, "3 1 1 0123456789abcdef...", 0, "TLSA 3 1 1 matched") { Time = at });
        Events.Publish(new DeliveryStarted(dcid, mid, [0]) { Time = at });
        Events.Publish(new RecipientResponse(mid, 0, "250 2.0.0 Ok: queued") { Time = at });
        Events.Publish(new DeliveryConnectionClosed(dcid, "") { Time = at });
        Events.Publish(new MessageFinished(mid, "done") { Time = at });
    }

    public async ValueTask DisposeAsync()
    {
        await Tracker.DisposeAsync();
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
    }
}

/// <summary>
/// What every tracking store must do alike, run against each (SQLite below, PostgreSQL in
/// ClusterTrackingTests): retention, and searches that combine criteria newest first.
/// </summary>
public abstract class TrackingStoreCases
{
    /// <summary>A new, empty store (a file store goes in the given folder).</summary>
    internal abstract ITrackingStore NewStore(string directory);

    /// <summary>The MIDs a search finds, in order (a store may check here that its plans agree).</summary>
    internal virtual List<long> Mids(ITrackingStore store, TrackingQuery query) => store.Search(query).Select(m => m.Mid).ToList();

    [Fact]
    public async Task Retention_deletes_the_messages_received_before_it_and_nothing_else()
    {
        await using var h = new TrackingHarness(NewStore);
        h.Settings.RetentionDays = 30;
        h.Message(1, h.Now.AddDays(-40), "old@example.org", "bob@example.com", "ancient invoice");
        h.Message(2, h.Now.AddDays(-29), "new@example.org", "bob@example.com", "recent invoice");
        await h.Tracker.FlushAsync();
        var store = h.Tracker.Store;
        Assert.Equal(2, store.Search(new TrackingQuery { Recipient = "bob@example.com" }).Count);

        Assert.Equal(1, await h.Tracker.RunRetentionAsync());
        Assert.Null(store.Get(1));
        Assert.Empty(store.Search(new TrackingQuery { SubjectContains = "ancient" }));   // the subject index follows
        Assert.Equal(2, Assert.Single(store.Search(new TrackingQuery { SubjectContains = "invoice" })).Mid);
        Assert.Contains(h.Published, e => e is SystemNotice n && n.Text.StartsWith("message tracking: 1 messages received before", StringComparison.Ordinal));

        // The setting is read at each run: a shorter retention takes the other one too.
        h.Settings.RetentionDays = 7;
        Assert.Equal(1, await h.Tracker.RunRetentionAsync());
        Assert.Empty(store.Search(new TrackingQuery()));
        Assert.Null(store.Get(2));
    }

    [Fact]
    public async Task Searches_combine_criteria_newest_first_and_addresses_compare_without_case()
    {
        await using var h = new TrackingHarness(NewStore);
        var start = h.Now.AddHours(-10);
        for (var i = 1; i <= 30; i++)
            h.Message(i, start.AddMinutes(i), $"user{i % 3}@Sender{i % 2}.example", $"rcpt{i % 5}@dest{i % 4}.example", i % 10 == 0 ? $"Quarterly REPORT {i}" : $"note {i}");
        // Message 7 is delivered over DANE, 8 deferred after a TLS failure.
        var t = start.AddHours(1);
        h.DeliveredOverDane(7, 70, "dest3.example", t);
        h.Events.Publish(new DeliveryConnectionOpened(80, new IPEndPoint(IPAddress.Loopback, 4001), IPAddress.Parse("192.0.2.26"), 25, "mx.dest0.example", "dest0.example") { Time = t });
        h.Events.Publish(new DeliveryPolicyApplied(80, "dest0.example", "Required", "Default entry") { Time = t });
        h.Events.Publish(new DeliveryTlsOutcome(80, TlsOutcomeKind.HandshakeFailed, "handshake with mx.dest0.example failed: \u001b]0;owned\u0007") { Time = t });
        h.Events.Publish(new DeliveryConnectionClosed(80, "TLS handshake failed") { Time = t });
        h.Events.Publish(new RecipientDelayed(0, 8, 0, "user2@sender0.example", "rcpt3@dest0.example", "4.7.5", "all mail hosts of dest0.example failed",
            t.AddMinutes(10)) { Time = t });
        await h.Tracker.FlushAsync();
        var store = h.Tracker.Store;
        List<long> Mids(TrackingQuery q) => this.Mids(store, q);

        Assert.Equal(new long[] { 30, 24, 18, 12, 6 }, Mids(new TrackingQuery { Sender = "USER0@sender0.EXAMPLE" }));
        Assert.Equal(new long[] { 30, 24, 18, 12, 6 }, Mids(new TrackingQuery { Sender = "user0@sender0.example", Limit = 10 }));
        Assert.Equal(new long[] { 29, 27, 25 }, Mids(new TrackingQuery { Sender = "sender1.example", Limit = 3 }));
        Assert.Equal(new long[] { 29, 27, 25 }, Mids(new TrackingQuery { Sender = "@Sender1.example", Limit = 3 }));
        Assert.Equal(new long[] { 27, 23, 19, 15, 11, 7, 3 }, Mids(new TrackingQuery { Recipient = "dest3.example" }));
        Assert.Equal(new long[] { 24, 4 }, Mids(new TrackingQuery { Recipient = "rcpt4@dest0.example" }));
        Assert.Equal(new long[] { 30, 20, 10 }, Mids(new TrackingQuery { SubjectContains = "quarterly report" }));   // trigram index
        Assert.Equal(new long[] { 30, 20, 10 }, Mids(new TrackingQuery { SubjectContains = "REP" }));
        Assert.Throws<ArgumentException>(() => store.Search(new TrackingQuery { SubjectContains = "RE" }));   // too short for the index
        Assert.Equal(new long[] { 1 }, Mids(new TrackingQuery { SubjectContains = "note 1", To = start.AddMinutes(2) }));
        Assert.Equal(new long[] { 12, 11, 10 }, Mids(new TrackingQuery { From = start.AddMinutes(10), To = start.AddMinutes(13) }));
        Assert.Equal(new long[] { 7 }, Mids(new TrackingQuery { Status = TrackingStatus.Delivered }));
        Assert.Equal(new long[] { 7 }, Mids(new TrackingQuery { Tls = TlsOutcome.Dane }));
        Assert.Equal(new long[] { 8 }, Mids(new TrackingQuery { Status = TrackingStatus.Deferred, Tls = TlsOutcome.Failed }));
        Assert.Equal(28, Mids(new TrackingQuery { Status = TrackingStatus.Queued, Limit = 1000 }).Count);
        Assert.Equal(new long[] { 5 }, Mids(new TrackingQuery { Mid = 5 }));
        Assert.Throws<ArgumentException>(() => store.Search(new TrackingQuery { Limit = 1001 }));
        // Text a LIKE pattern would take as wildcards is matched as itself.
        Assert.Empty(Mids(new TrackingQuery { SubjectContains = "not%" }));
        Assert.Empty(Mids(new TrackingQuery { SubjectContains = "no_e" }));

        var found = Assert.Single(store.Search(new TrackingQuery { Mid = 7 }));
        Assert.Equal(MessageEntered.FromSmtp, found.Origin);
        Assert.Equal("user1@Sender1.example", found.Sender);
        Assert.Equal("note 7", found.Subject);
        Assert.Equal(1234, found.Size);
        Assert.Equal("<7@example.org>", found.MessageId);
        Assert.Equal("192.0.2.7", found.ClientAddress);
        Assert.Equal("IncomingMail", found.Listener);
        Assert.Equal(1007, found.Icid);
        var recipient = Assert.Single(found.Recipients);
        Assert.Equal("rcpt2@dest3.example", recipient.Address);
        Assert.Equal(TrackingStatus.Delivered, recipient.Status);
        Assert.Equal(TlsOutcome.Dane, recipient.Tls);
        Assert.Equal("250 2.0.0 Ok: queued", recipient.Response);
        Assert.Equal(70, recipient.Dcid);

        var dane = string.Join("\n", store.Story(7)!.Sentences.Select(s => s.Text));
        Assert.Contains("Received from 192.0.2.7 (mail.example.org, verified) on IncomingMail (ICID 1007), sender group UNKNOWNLIST, policy ACCEPTED (accept), no TLS.", dane);
        Assert.Contains("Delivered to <rcpt2@dest3.example> via mx1.dest3.example [192.0.2.25] over TLSv1.3, certificate verified by DANE-EE (3 1 1); " +
            "Destination Controls entry dest3.example: TLS Required (Verify), DANE mandatory (DCID 70). Reply: 250 2.0.0 Ok: queued", dane);
        var failed = string.Join("\n", store.Story(8)!.Sentences.Select(s => s.Text));
        Assert.Contains("Tried mx.dest0.example [192.0.2.26]:25 (DCID 80) for dest0.example: TLS failed: handshake with mx.dest0.example failed: \\x1B]0;owned\\x07; " +
            "Destination Controls entry Default: TLS Required; closed: TLS handshake failed.", failed);
        Assert.Contains("Deferred <rcpt3@dest0.example> (4.7.5): all mail hosts of dest0.example failed; next attempt ", failed);
        var inbound = store.Get(8)!.Inbound;
        Assert.Equal("yes", inbound[InboundField.ReverseVerified]);
        Assert.Equal("mail.example.org", inbound[InboundField.ReverseDns]);
        Assert.Equal("UNKNOWNLIST", inbound[InboundField.SenderGroup]);
        Assert.Equal("Accept", inbound[InboundField.Action]);
    }
}

/// <summary>The store cases on SQLite, where both of its search plans must agree.</summary>
public sealed class SqliteTrackingStoreTests : TrackingStoreCases
{
    internal override ITrackingStore NewStore(string directory) => SqliteTrackingStore.OpenForWriting(SqliteTrackingStore.PathFor(directory));

    internal override List<long> Mids(ITrackingStore store, TrackingQuery query)
    {
        // Both plans give the same answer: the narrowest criterion driving, and the walk of the newest.
        var sqlite = (SqliteTrackingStore)store;
        sqlite.DriverCap = 50_000;
        var driven = base.Mids(store, query);
        sqlite.DriverCap = -1;
        var walked = base.Mids(store, query);
        Assert.Equal(driven, walked);
        return driven;
    }

    [Fact]
    public async Task The_database_and_its_folder_are_the_service_users_alone()
    {
        await using var h = new TrackingHarness();
        var db = SqliteTrackingStore.PathFor(h.Directory);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(db));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(db)!));
    }
}
