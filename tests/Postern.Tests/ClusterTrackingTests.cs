using System.Text.Json;
using Postern.Cluster;
using Postern.Observability;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The tracking store cases of <see cref="TrackingStoreCases"/> on the world's PostgreSQL, each in a database of its own.</summary>
[Collection("cluster")]
public sealed class PostgresTrackingStoreTests : TrackingStoreCases
{
    internal override ITrackingStore NewStore(string directory) =>
        new PostgresTrackingStore(PostgresDatabase.For(ClusterStore.Settings(ClusterStore.CreateDatabase("trkstore"), "a")), "a");
}

/// <summary>
/// Message tracking in a cluster: every member writes to the cluster's database, so a message
/// accepted by one member and delivered by another has one story, whichever member's writes
/// arrive first; `postern track show` on either member tells all of it.
/// </summary>
[Collection("cluster")]
public sealed class ClusterTrackingTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    /// <summary>Two members' trackers on one database (in this process: each is a tracker with its own member name).</summary>
    private static (TrackingHarness A, TrackingHarness B) TwoMembers(string prefix)
    {
        var db = PostgresDatabase.For(ClusterStore.Settings(ClusterStore.CreateDatabase(prefix), "a"));
        return (new TrackingHarness(_ => new PostgresTrackingStore(db, "a")), new TrackingHarness(_ => new PostgresTrackingStore(db, "b")));
    }

    private static string Story(ITrackingStore store, long mid) => string.Join("\n", store.Story(mid)!.Sentences.Select(s => s.Text));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Two_members_writing_about_one_message_tell_one_story_whichever_commits_first(bool deliveryFirst)
    {
        var (a, b) = TwoMembers("trkmerge");
        await using var memberA = a;
        await using var memberB = b;
        var at = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds());
        async Task Accept()
        {
            a.Message(42, at, "Alice@Example.org", "bob@dest.example", "merged story");
            await a.Tracker.FlushAsync();
        }
        async Task Deliver()
        {
            b.DeliveredOverDane(42, 4200, "dest.example", at.AddSeconds(2));
            await b.Tracker.FlushAsync();
        }
        if (deliveryFirst)
        {
            await Deliver();
            // Before the accepting member's entry: a placeholder that searches find, with its outcome.
            var early = Assert.Single(b.Tracker.Store.Search(new TrackingQuery { Status = TrackingStatus.Delivered }));
            Assert.Equal(42, early.Mid);
            Assert.Equal(MessageEntered.Unknown, early.Origin);
            Assert.Equal(TlsOutcome.Dane, early.Tls);
            await Accept();
        }
        else
        {
            await Accept();
            await Deliver();
        }

        foreach (var store in new[] { a.Tracker.Store, b.Tracker.Store })
        {
            var message = Assert.Single(store.Search(new TrackingQuery()));
            Assert.Equal(42, message.Mid);
            Assert.Equal(MessageEntered.FromSmtp, message.Origin);
            Assert.Equal(at, message.Received);
            Assert.Equal(TrackingStatus.Delivered, message.Status);
            Assert.Equal(TlsOutcome.Dane, message.Tls);
            Assert.Equal("merged story", message.Subject);
            var recipient = Assert.Single(message.Recipients);
            Assert.Equal("bob@dest.example", recipient.Address);
            Assert.Equal(TrackingStatus.Delivered, recipient.Status);
            Assert.Equal("250 2.0.0 Ok: queued", recipient.Response);
            // Every search finds the merged message, the recipient's by the message's received time.
            Assert.Equal(42, Assert.Single(store.Search(new TrackingQuery { Sender = "alice@example.org" })).Mid);
            Assert.Equal(42, Assert.Single(store.Search(new TrackingQuery { SubjectContains = "MERGED" })).Mid);
            Assert.Equal(42, Assert.Single(store.Search(new TrackingQuery { Recipient = "dest.example", From = at, To = at.AddSeconds(1) })).Mid);
            Assert.Equal(42, Assert.Single(store.Search(new TrackingQuery { Status = TrackingStatus.Delivered, Tls = TlsOutcome.Dane })).Mid);

            var story = Story(store, 42);
            var lines = story.Split('\n');
            Assert.StartsWith("[member a] Received from 192.0.2.7 (mail.example.org, verified) on IncomingMail (ICID 1042)", lines[0]);
            TrackingTests.Told(story, "[member a] RCPT TO:<bob@dest.example> accepted as RID 0.");
            TrackingTests.Told(story, "[member a] Queued for delivery as MID 42.");
            TrackingTests.Told(story, "[member b] Delivery attempt DCID 4200 to mx1.dest.example [192.0.2.25]:25");
            TrackingTests.Told(story, "[member b] Delivered to <bob@dest.example> via mx1.dest.example [192.0.2.25] over TLSv1.3, certificate verified by DANE-EE (3 1 1)");
            Assert.Equal("[member b] Finished: done.", lines[^1]);
        }
    }

    [Fact]
    public async Task A_MID_entered_again_is_a_new_message_and_the_old_one_goes()
    {
        var (a, b) = TwoMembers("trkreuse");
        await using var memberA = a;
        await using var memberB = b;
        var at = DateTimeOffset.UtcNow.AddMinutes(-30);
        a.Message(7, at, "old@example.org", "x@dest.example", "first life");
        await a.Tracker.FlushAsync();
        b.DeliveredOverDane(7, 700, "dest.example", at.AddSeconds(1));
        await b.Tracker.FlushAsync();
        // The queue was reset: MID 7 now names another message.
        a.Message(7, at.AddMinutes(20), "new@example.org", "y@dest.example", "second life");
        await a.Tracker.FlushAsync();

        var store = b.Tracker.Store;
        var message = Assert.Single(store.Search(new TrackingQuery()));
        Assert.Equal("new@example.org", message.Sender);
        Assert.Equal(TrackingStatus.Queued, message.Status);
        Assert.Equal(TlsOutcome.None, message.Tls);
        Assert.Equal("y@dest.example", Assert.Single(message.Recipients).Address);
        Assert.Empty(store.Search(new TrackingQuery { SubjectContains = "first life" }));
        Assert.Empty(store.Search(new TrackingQuery { Recipient = "x@dest.example" }));
        var story = Story(store, 7);
        Assert.DoesNotContain("old@example.org", story);
        Assert.DoesNotContain("[member b]", story);
    }

    [Fact]
    public async Task Members_writing_about_the_same_messages_at_once_lose_nothing()
    {
        const int Messages = 2000, Rounds = 3;
        var db = PostgresDatabase.For(ClusterStore.Settings(ClusterStore.CreateDatabase("trkrace"), "a"));
        using var a = new PostgresTrackingStore(db, "a");
        using var b = new PostgresTrackingStore(db, "b");
        var at = DateTimeOffset.UtcNow.AddMinutes(-10);
        for (var round = 0; round < Rounds; round++)
        {
            var first = round * Messages + 1;
            var mids = Enumerable.Range(first, Messages).Select(m => (long)m).ToList();
            // a enters the messages in one order while b records their deliveries in the other, in
            // one transaction each and at the same moment: unordered, their row locks would cross
            // (a deadlock, a batch failed); the store's ordered message locks make one wait instead.
            IReadOnlyList<TrackingWrite> entries = mids.Select(mid => (TrackingWrite)new MessageEntered(mid, at, MessageEntered.FromSmtp, TrackingStatus.Queued,
                $"s{mid}@example.org", new Dictionary<string, string>(), $"race {mid}", 100, null, null, [(0, $"r{mid}@dest.example")],
                [new TrackingStep(at, StepKind.Queued, null, null, new Dictionary<string, string>())])).ToList();
            IReadOnlyList<TrackingWrite> deliveries = mids.AsEnumerable().Reverse().SelectMany(mid => new TrackingWrite[]
            {
                new StepAdded(mid, new TrackingStep(at.AddSeconds(1), StepKind.Delivered, 7, 0, new Dictionary<string, string> { ["reply"] = "250 ok" })),
                new RecipientChanged(mid, at.AddSeconds(1), 0, null, TrackingStatus.Delivered, TlsOutcome.Verified, "250 ok", 7, null),
            }).ToList();
            using var start = new Barrier(2);
            await Task.WhenAll(
                Task.Run(() => { start.SignalAndWait(); a.Write(entries); }),
                Task.Run(() => { start.SignalAndWait(); b.Write(deliveries); }));
        }

        var all = a.Search(new TrackingQuery { Limit = TrackingQuery.MaxLimit, Status = TrackingStatus.Delivered, Tls = TlsOutcome.Verified });
        Assert.Equal(TrackingQuery.MaxLimit, all.Count);
        Assert.All(all, m =>
        {
            Assert.Equal(MessageEntered.FromSmtp, m.Origin);
            Assert.Equal($"r{m.Mid}@dest.example", Assert.Single(m.Recipients).Address);
        });
        for (var mid = 1L; mid <= Messages * Rounds; mid += 97)
        {
            var message = a.Get(mid)!;
            Assert.Equal(TrackingStatus.Delivered, message.Summary.Status);
            Assert.Equal($"s{mid}@example.org", message.Summary.Sender);
            Assert.Equal(new[] { (StepKind.Queued, "a"), (StepKind.Delivered, "b") }, message.Steps.Select(s => (s.Kind, s.Member!)));
        }
        // Every message of every round: entered, and delivered.
        using var count = db.Source.CreateCommand("SELECT count(*) FILTER (WHERE entered AND status = 'delivered'), count(*) FROM tracking_messages");
        using var counted = count.ExecuteReader();
        Assert.True(counted.Read());
        Assert.Equal(Messages * Rounds, counted.GetInt64(0));
        Assert.Equal(Messages * Rounds, counted.GetInt64(1));
    }

    [Fact]
    public async Task A_message_accepted_by_one_member_and_delivered_by_another_has_one_story_on_both()
    {
        var database = ClusterStore.CreateDatabase("trkpair");
        var a = ClusterStore.Member(database, "a", "127.0.2.21");
        var b = ClusterStore.Member(database, "b", "127.0.2.22");
        using var memberA = PosternProcess.Serve(a);
        using var memberB = PosternProcess.Serve(b);
        ClusterTests.WaitForLog(a, "message tracking in the cluster database Host=127.0.9.1;");
        Assert.Contains("suspended", ClusterTests.Cli(0, "suspenddel", "--config", ClusterTests.ConfigFile(a)));
        ClusterTests.WaitForLog(a, "Operator: delivery to all domains suspended");

        var rcpt = $"{TestWorld.Unique("trkpair")}@good.test";
        var mid = await TrackingTests.SubmitAsync(memberA.Listener("OutgoingMail"), "cluster@sender.test", rcpt, "one story, two members");
        _world.WaitForMail(rcpt);
        Assert.Matches($@"Delivery start DCID \d+ MID {mid} to RID \[0\]", ClusterTests.MailLog(b));

        foreach (var member in new[] { b, a })
        {
            var file = ClusterTests.ConfigFile(member);
            var story = "";
            TestWorld.WaitUntil(() => (story = PosternProcess.Cli("track", "show", mid.ToString(), "--config", file).Output).Contains("Finished: done."),
                TimeSpan.FromSeconds(20), $"the whole story of MID {mid} through {member.Hostname}");
            TrackingTests.Told(story, $"MID {mid}: delivered, TLS ");
            TrackingTests.Told(story, $"To:   <{rcpt}> RID 0: delivered");
            TrackingTests.Told(story, "[member a] Received from ");
            TrackingTests.Told(story, " on OutgoingMail (ICID ");
            TrackingTests.Told(story, $"[member a] MAIL FROM:<cluster@sender.test>, message MID {mid}.");
            TrackingTests.Told(story, $"[member a] Queued for delivery as MID {mid}.");
            TrackingTests.Told(story, "[member b] Delivery attempt DCID ");
            TrackingTests.Told(story, $"[member b] Delivered to <{rcpt}> via ");
            TrackingTests.Told(story, "[member b] Finished: done.");
            Assert.True(story.IndexOf("[member a] Queued", StringComparison.Ordinal) < story.IndexOf("[member b] Delivery attempt", StringComparison.Ordinal), story);
            Assert.DoesNotContain("[member b] Received", story);
            Assert.DoesNotContain("[member a] Deliver", story);
        }

        var (code, json) = PosternProcess.Cli("track", "--recipient", rcpt, "--json", "--config", ClusterTests.ConfigFile(a));
        Assert.True(code == 0, json);
        var found = Assert.Single(JsonDocument.Parse(json).RootElement.EnumerateArray());
        Assert.Equal(mid, found.GetProperty("mid").GetInt64());
        Assert.Equal("smtp", found.GetProperty("origin").GetString());
        Assert.Equal("delivered", found.GetProperty("status").GetString());
        Assert.Equal("OutgoingMail", found.GetProperty("listener").GetString());
        Assert.Equal("one story, two members", found.GetProperty("subject").GetString());
        memberA.Stop();
        memberB.Stop();
    }
}
