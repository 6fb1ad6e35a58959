using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// Clusters on the world's PostgreSQL: Postern members in their own processes on distinct
/// loopback addresses share configuration versions, holds and the queue; the receiving
/// Postfix's mailbox is what is counted.
/// </summary>
[Collection("cluster")]
public sealed class ClusterTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    internal static string ConfigFile(PosternConfig config) => Path.Combine(config.DataDirectory, "postern.json");

    internal static string Cli(int expected, params string[] args)
    {
        var (code, output) = PosternProcess.Cli(args);
        Assert.True(code == expected, $"postern {string.Join(' ', args)} exited {code}:\n{output}");
        return output;
    }

    internal static string MailLog(PosternConfig config)
    {
        var path = Path.Combine(config.DataDirectory, "logs", "mail.current");
        if (!File.Exists(path)) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }

    internal static void WaitForLog(PosternConfig config, string text, int seconds = 30) =>
        TestWorld.WaitUntil(() => MailLog(config).Contains(text), TimeSpan.FromSeconds(seconds), $"'{text}' in {config.Hostname}'s mail log");

    [Fact]
    public async Task Mail_accepted_by_one_member_is_delivered_by_another_and_a_commit_on_one_changes_the_others()
    {
        var database = ClusterStore.CreateDatabase("pair");
        var a = ClusterStore.Member(database, "a", "127.0.2.11");
        var b = ClusterStore.Member(database, "b", "127.0.2.12");
        using var memberA = PosternProcess.Serve(a);
        using var memberB = PosternProcess.Serve(b);
        Assert.DoesNotContain("WARNING: the cluster's configuration", memberB.Output);   // only machine-level settings differ

        // suspenddel on a member holds that member's deliveries (as on the appliance); the other delivers.
        Assert.Contains("suspended", Cli(0, "suspenddel", "--config", ConfigFile(a)));
        WaitForLog(a, "Operator: delivery to all domains suspended");
        var rcpt = $"{TestWorld.Unique("pair")}@good.test";
        await RawSmtp.SubmitAsync(memberA.Listener("OutgoingMail"), "cluster@sender.test", rcpt, "accepted by a");
        _world.WaitForMail(rcpt);
        var mid = Regex.Match(MailLog(a), $@"MID (\d+) ICID \d+ RID 0 To: <{Regex.Escape(rcpt)}>").Groups[1].Value;
        Assert.NotEmpty(mid);
        Assert.Matches($@"Delivery start DCID \d+ MID {mid} to RID \[0\]", MailLog(b));
        Assert.DoesNotContain($"Delivery start DCID", MailLog(a));

        // Membership: both up, each on its own listeners, b's delivery counted (within a heartbeat).
        JsonElement Status() => JsonDocument.Parse(Cli(0, "cluster", "status", "--json", "--config", ConfigFile(b))).RootElement;
        TestWorld.WaitUntil(() => Status().GetProperty("members").EnumerateArray()
            .Any(m => m.GetProperty("name").GetString() == "b" && m.GetProperty("delivered").GetInt64() >= 1), TimeSpan.FromSeconds(15), "b's delivery in cluster status");
        var members = Status().GetProperty("members").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.True(members["a"].GetProperty("alive").GetBoolean());
        Assert.True(members["b"].GetProperty("alive").GetBoolean());
        Assert.Contains(members["a"].GetProperty("listeners").EnumerateArray(), l => l.GetString()!.Contains("127.0.2.11:"));
        Assert.Contains(members["b"].GetProperty("listeners").EnumerateArray(), l => l.GetString()!.Contains("127.0.2.12:"));
        Assert.Contains("b (b.postern.test", Cli(0, "cluster", "status", "--config", ConfigFile(a)));

        // A commit made on a: b's public listener blocks within seconds, on b's own address.
        var incomingB = memberB.Listener("IncomingMail");
        Assert.StartsWith("220", await Banner(incomingB));
        Cli(0, "listenerconfig", "edit", "IncomingMail", "--default-policy", "BLOCKED", "--config", ConfigFile(a));
        Assert.Contains("Changes committed", Cli(0, "commit", "--comment", "block inbound", "--config", ConfigFile(a)));
        WaitForLog(b, "Configuration version 2 applied (committed by");
        foreach (var incoming in new[] { incomingB, memberA.Listener("IncomingMail") })
            TestWorld.WaitUntil(() => Banner(incoming).GetAwaiter().GetResult() is { } banner && banner.StartsWith("554"), TimeSpan.FromSeconds(10), $"{incoming} to refuse with 554");
        memberA.Stop();
        memberB.Stop();
        Assert.Contains("stopped", Cli(0, "cluster", "status", "--config", ConfigFile(a)));
    }

    private static async Task<string> Banner(IPEndPoint endpoint)
    {
        await using var c = await RawSmtp.ConnectAsync(endpoint);
        return await c.ReadReplyAsync() ?? "(closed)";
    }

    [Fact]
    public async Task Kill_9_of_a_member_mid_delivery_over_1000_messages_loses_none_and_duplicates_only_what_it_left_in_doubt()
    {
        const int Messages = 1000;
        var database = ClusterStore.CreateDatabase("kill");
        var token = TestWorld.Unique("k");
        // Ten connections per member: a steady stream, so the kill lands in the middle of transactions.
        static void Steady(PosternConfig c) => c.DestinationControls.Entries.Add(new DestinationEntry
            { Domain = "good.test", ConcurrentConnections = 10, LimitsApplyTo = LimitScope.Hostname });
        var a = ClusterStore.Member(database, "a", "127.0.2.13", leaseSeconds: 6, tweak: Steady);
        var b = ClusterStore.Member(database, "b", "127.0.2.14", leaseSeconds: 6, tweak: Steady);
        using var memberA = PosternProcess.Serve(a);
        using var memberB = PosternProcess.Serve(b);
        // Hold both while the load is queued, so that the kill finds deliveries under way.
        foreach (var member in new[] { a, b })
        {
            Cli(0, "suspenddel", "--config", ConfigFile(member));
            WaitForLog(member, "Operator: delivery to all domains suspended");
        }
        var acknowledged = new ConcurrentDictionary<string, string>();
        async Task Sender(int worker)
        {
            var endpoint = (worker % 2 == 0 ? memberA : memberB).Listener("OutgoingMail");
            await using var c = await RawSmtp.ConnectAsync(endpoint);
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            for (var i = worker; i < Messages; i += 8)
            {
                var rcpt = $"{token}-{i}@good.test";
                Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<load@sender.test>"));
                Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{rcpt}>"));
                Assert.StartsWith("354", await c.CommandAsync("DATA"));
                var reply = await c.CommandAsync($"Subject: cluster load {i}\r\n\r\n{new string('x', 1500)}\r\n.");
                Assert.StartsWith("250 ", reply);
                acknowledged[rcpt] = reply.Split(' ')[4];
            }
            await c.CommandAsync("QUIT");
        }
        await Task.WhenAll(Enumerable.Range(0, 8).Select(Sender));
        Assert.Equal(Messages, acknowledged.Count);

        var mailbox = new MailboxCounter(Path.Combine(_world.MailDirectory, "good.test", "new"), token);
        foreach (var member in new[] { a, b }) Cli(0, "resumedel", "--config", ConfigFile(member));
        TestWorld.WaitUntil(() => Regex.Count(MailLog(a), "Delivery start") >= 100, TimeSpan.FromSeconds(60), "a to be delivering");
        memberA.Kill9();
        Assert.True(mailbox.Scan().Count < Messages, "the kill came after the last delivery");

        // b takes a's claims over once their lease lapses, and delivers everything.
        TestWorld.WaitUntil(() => mailbox.Scan().Count >= Messages, TimeSpan.FromSeconds(180), $"{Messages} recipients delivered");
        TestWorld.WaitUntil(() => Cli(0, "queue", "list", "--config", ConfigFile(b)).Contains("The queue is empty"), TimeSpan.FromSeconds(60), "the shared queue to drain");
        var counts = mailbox.Scan();
        var lost = acknowledged.Keys.Where(r => !counts.ContainsKey(r)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} acknowledged messages never arrived: {string.Join(", ", lost.Take(10))}");
        var logB = MailLog(b);
        Assert.Contains("taken over by cluster member b from member a", logB);
        var inDoubt = Regex.Matches(logB, @"To:<([^>]+)> in doubt: member ").Select(m => m.Groups[1].Value).ToHashSet();
        var duplicates = counts.Where(c => c.Value > 1).Select(c => c.Key).ToList();
        // A second copy only where a's final dot went out and its answer was never recorded (RFC 5321 §6.1).
        Assert.True(duplicates.All(inDoubt.Contains),
            $"duplicates not announced as in doubt: {string.Join(", ", duplicates.Where(d => !inDoubt.Contains(d)))} (in doubt: {inDoubt.Count})");
        Assert.True(duplicates.Count <= inDoubt.Count);
        memberB.Stop();
    }

    [Fact]
    public async Task A_system_wide_connection_limit_holds_across_members_at_the_receiver()
    {
        const int Limit = 2, Messages = 60;
        var database = ClusterStore.CreateDatabase("limit");
        await using var relay = new CountingRelay("127.0.6.20", new IPEndPoint(IPAddress.Parse(TestWorld.GoodMx), 25));
        void Tweak(PosternConfig c)
        {
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "good.test", Hosts = { new SmtpRouteHost { Host = relay.EndPoint.Address.ToString(), Port = relay.EndPoint.Port } } });
            c.DestinationControls.Entries.Add(new DestinationEntry
            {
                Domain = "good.test", ConcurrentConnections = Limit, MaxMessagesPerConnection = 5, LimitsApplyTo = LimitScope.SystemWide,
            });
        }
        var a = ClusterStore.Member(database, "a", "127.0.2.15", tweak: Tweak);
        var b = ClusterStore.Member(database, "b", "127.0.2.16", tweak: Tweak);
        using var memberA = PosternProcess.Serve(a);
        using var memberB = PosternProcess.Serve(b);
        var token = TestWorld.Unique("lim");
        await ClusterStore.SubmitSpreadAsync([memberA, memberB], Messages, token, "limit@sender.test");
        var mailbox = new MailboxCounter(Path.Combine(_world.MailDirectory, "good.test", "new"), token);
        TestWorld.WaitUntil(() => mailbox.Scan().Count >= Messages, TimeSpan.FromSeconds(120), $"{Messages} deliveries");
        Assert.True(relay.Peak <= Limit, $"the receiver saw {relay.Peak} connections at once (limit {Limit} system-wide)");
        Assert.True(relay.Total >= Messages / 5, $"{relay.Total} connections for {Messages} messages at 5 per connection");
        Assert.True(relay.Peak >= 1);
        memberA.Stop();
        memberB.Stop();
    }

    /// <summary>Counts deliveries per recipient in a Maildir, reading each new file once.</summary>
    private sealed class MailboxCounter(string directory, string token)
    {
        private readonly HashSet<string> _seen = new();
        private readonly Dictionary<string, int> _counts = new(StringComparer.OrdinalIgnoreCase);

        public IReadOnlyDictionary<string, int> Scan()
        {
            if (!Directory.Exists(directory)) return _counts;
            foreach (var file in Directory.EnumerateFiles(directory))
            {
                if (_seen.Contains(file)) continue;
                string text;
                try { text = File.ReadAllText(file); } catch (IOException) { continue; }
                _seen.Add(file);
                var m = Regex.Match(text, $@"^Delivered-To: ({Regex.Escape(token)}-\d+@good\.test)$", RegexOptions.Multiline);
                if (m.Success) _counts[m.Groups[1].Value] = _counts.GetValueOrDefault(m.Groups[1].Value) + 1;
            }
            return _counts;
        }
    }
}
