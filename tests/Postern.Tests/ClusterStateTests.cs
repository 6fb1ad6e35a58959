using System.Text.Json;
using Postern.Admin;
using Postern.Cluster;
using Postern.Security;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The cluster's shared state besides the queue, against the world's PostgreSQL: MTA-STS cache, alert throttle, recipient-rate windows.</summary>
[Collection("cluster")]
public sealed class ClusterStateTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static PostgresDatabase Database(string prefix) =>
        PostgresDatabase.For(ClusterStore.Settings(ClusterStore.CreateDatabase(prefix), "test"));

    [Fact]
    public void A_policy_cached_by_one_member_is_the_cache_of_all()
    {
        var db = Database("sts");
        using var cacheA = new PostgresStsPolicyCache(db);
        using var cacheB = new PostgresStsPolicyCache(db);
        var now = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        cacheA.Put(new StsCacheEntry("Sts-Good.test", "id1", "version: STSv1\nmode: enforce\nmx: mx.sts-good.test\nmax_age: 86400\n", now, now.AddDays(1), now));
        var seen = cacheB.Get("sts-good.test");
        Assert.NotNull(seen);
        Assert.Equal("id1", seen.Id);
        Assert.Equal(now.AddDays(1), seen.ExpiresAt);
        cacheB.Touch("sts-good.test", now.AddHours(1));
        cacheA.Touch("sts-good.test", now.AddMinutes(1));   // an older use never moves last-used back
        Assert.Equal(now.AddHours(1), cacheA.Get("sts-good.test")!.LastUsed);
        cacheB.Put(seen with { Id = "id2" });
        Assert.Equal("id2", Assert.Single(cacheA.List()).Id);
        Assert.True(cacheA.Remove("sts-good.test"));
        Assert.Null(cacheB.Get("sts-good.test"));
    }

    [Fact]
    public async Task Members_racing_to_send_the_same_alert_send_it_once_per_window()
    {
        var db = Database("alert");
        var members = Enumerable.Range(0, 4).Select(_ => new PostgresAlertThrottle(db)).ToList();
        var now = DateTimeOffset.UtcNow;
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => members[i % 4].TryPassAsync("tls-required:x.test", now, TimeSpan.FromHours(1))));
        Assert.Single(results, r => r is null);
        Assert.All(results.Where(r => r is not null), r => Assert.Equal(now.ToUnixTimeMilliseconds(), r!.Value.ToUnixTimeMilliseconds()));
        // Another kind is not throttled by it; the same kind passes again after the window.
        Assert.Null(await members[0].TryPassAsync("dane:x.test", now, TimeSpan.FromHours(1)));
        Assert.Null(await members[1].TryPassAsync("tls-required:x.test", now.AddHours(1).AddSeconds(1), TimeSpan.FromHours(1)));
    }

    [Fact]
    public async Task Members_reserving_recipients_together_never_exceed_the_limit()
    {
        var db = Database("rate");
        var a = new PostgresRecipientRate(db, "a");
        var b = new PostgresRecipientRate(db, "b");
        var window = TimeSpan.FromMinutes(60);
        var results = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => (i % 2 == 0 ? a : b).TryReserveAsync("rate.test", 25, window, 3, CancellationToken.None)));
        Assert.Equal(8, results.Count(r => r is null));   // 8 × 3 = 24 ≤ 25; a ninth would make 27
        Assert.All(results.Where(r => r is not null), r => Assert.True(r!.Value > TimeSpan.FromMinutes(59)));
        Assert.Null(await a.TryReserveAsync("other.test", 25, window, 3, CancellationToken.None));
    }

    [Fact]
    public async Task A_system_wide_recipient_limit_holds_across_members()
    {
        const int Limit = 10, Messages = 24;
        var database = ClusterStore.CreateDatabase("rcptlimit");
        static void Tweak(PosternConfig c) => c.DestinationControls.Entries.Add(new DestinationEntry
        {
            Domain = "good.test", RecipientLimit = new RecipientLimit { Recipients = Limit, Minutes = 60 }, LimitsApplyTo = LimitScope.SystemWide,
        });
        var a = ClusterStore.Member(database, "a", "127.0.2.17", tweak: Tweak);
        var b = ClusterStore.Member(database, "b", "127.0.2.18", tweak: Tweak);
        using var memberA = PosternProcess.Serve(a);
        using var memberB = PosternProcess.Serve(b);
        var token = TestWorld.Unique("rl");
        await ClusterStore.SubmitSpreadAsync([memberA, memberB], Messages, token, "limit@sender.test");
        // The definite answer first: every message is either delivered or held back by the limit.
        var file = Path.Combine(a.DataDirectory, "postern.json");
        int HeldBack() => JsonDocument.Parse(PosternProcess.Cli("queue", "list", "--json", "--config", file).Output).RootElement.EnumerateArray()
            .Count(m => m.GetProperty("recipients").EnumerateArray().All(r => r.GetProperty("lastResponse").GetString()?.Contains("recipient limit for good.test reached") == true));
        TestWorld.WaitUntil(() => HeldBack() == Messages - Limit, TimeSpan.FromSeconds(60), $"{Messages - Limit} messages held back by the limit");
        // The receiving Postfix answers 250 before its local delivery writes the file: wait for the files.
        int Delivered() => Directory.EnumerateFiles(Path.Combine(_world.MailDirectory, "good.test", "new"))
            .Count(f => File.ReadAllText(f).Contains($"Delivered-To: {token}-"));
        TestWorld.WaitUntil(() => Delivered() >= Limit, TimeSpan.FromSeconds(30), $"{Limit} deliveries in the mailbox");
        Assert.Equal(Limit, Delivered());
        memberA.Stop();
        memberB.Stop();
    }

    [Fact]
    public void Certificates_are_cluster_wide_or_each_members_own_and_members_share_the_sealing_key()
    {
        var database = ClusterStore.CreateDatabase("certs");
        string File_(PosternConfig c)
        {
            Directory.CreateDirectory(c.DataDirectory);
            var file = Path.Combine(c.DataDirectory, "postern.json");
            File.WriteAllText(file, c.ToJson());
            return file;
        }
        var a = File_(ClusterStore.Member(database, "a", "127.0.2.19"));
        var bConfig = ClusterStore.Member(database, "b", "127.0.2.20");
        var b = File_(bConfig);
        string Cli(int expected, params string[] args)
        {
            var (code, output) = PosternProcess.Cli(args);
            Assert.True(code == expected, $"postern {string.Join(' ', args)} exited {code}:\n{output}");
            return output;
        }
        Cli(0, "certconfig", "create", "--cn", "*.cluster.test", "--name", "shared", "--scope", "cluster", "--config", a);
        Cli(0, "certconfig", "create", "--cn", "mx.a.test", "--name", "mx", "--scope", "machine", "--config", a);

        // A member with a sealing key of its own sees the cluster's certificates but cannot unseal or add cluster-wide ones.
        Assert.Contains("shared", Cli(0, "certconfig", "list", "--config", b));
        var early = Path.Combine(bConfig.DataDirectory, "early.p12");
        Assert.Contains("cannot be decrypted", Cli(1, "certconfig", "export", "shared", "--pkcs12", early, "--passphrase", "cluster-pass", "--confirm", "cluster-pass", "--config", b));
        Assert.Contains("is not the cluster's", Cli(1, "certconfig", "create", "--cn", "*.other.test", "--name", "other", "--scope", "cluster", "--config", b));
        var keyA = Path.Combine(Path.GetDirectoryName(a)!, "secrets", "certificate-store.key");
        var keyB = Path.Combine(bConfig.DataDirectory, "secrets", "certificate-store.key");
        File.Copy(keyA, keyB, overwrite: true);

        JsonElement List(string file) => JsonDocument.Parse(Cli(0, "certconfig", "list", "--json", "--config", file)).RootElement;
        string? Subject(string file, string name) => List(file).EnumerateArray()
            .Where(c => c.GetProperty("name").GetString() == name).Select(c => c.GetProperty("subject").GetString()).FirstOrDefault();
        Assert.Equal("CN=*.cluster.test", Subject(b, "shared"));
        Assert.Null(Subject(b, "mx"));   // a's machine certificate is a's
        Cli(0, "certconfig", "create", "--cn", "mx.b.test", "--name", "mx", "--scope", "machine", "--config", b);
        Assert.Equal("CN=mx.b.test", Subject(b, "mx"));
        Assert.Equal("CN=mx.a.test", Subject(a, "mx"));
        // The cluster-wide key opens on the other member: its PKCS#12 export works there.
        var p12 = Path.Combine(bConfig.DataDirectory, "shared.p12");
        Cli(0, "certconfig", "export", "shared", "--pkcs12", p12, "--passphrase", "cluster-pass", "--confirm", "cluster-pass", "--config", b);
        Assert.True(new FileInfo(p12).Length > 500);
        Cli(0, "certconfig", "delete", "mx", "--config", b);
        Assert.Null(Subject(b, "mx"));
        Assert.Equal("CN=mx.a.test", Subject(a, "mx"));
    }

    [Fact]
    public async Task A_single_machine_migrates_into_a_cluster_without_losing_a_message()
    {
        const int Messages = 30;
        var single = _world.NewConfig("migrate", c => c.Hostname = "m1.postern.test");
        var file = Path.Combine(single.DataDirectory, "postern.json");
        string Cli(int expected, params string[] args)
        {
            var (code, output) = PosternProcess.Cli(args);
            Assert.True(code == expected, $"postern {string.Join(' ', args)} exited {code}:\n{output}");
            return output;
        }
        var token = TestWorld.Unique("mig");
        using (var gateway = PosternProcess.Serve(single))
        {
            // Held, so the queue is full when the machine moves.
            Cli(0, "suspenddel", "--config", file);
            TestWorld.WaitUntil(() => File.ReadAllText(Path.Combine(single.DataDirectory, "logs", "mail.current")).Contains("delivery to all domains suspended"),
                TimeSpan.FromSeconds(10), "the hold");
            for (var i = 0; i < Messages; i++)
                await RawSmtp.SubmitAsync(gateway.Listener("OutgoingMail"), "migrate@sender.test", $"{token}-{i}@good.test");
            Cli(0, "listenerconfig", "edit", "IncomingMail", "--max-concurrency", "77", "--config", file);
            Cli(0, "commit", "--comment", "before the move", "--config", file);
            Cli(0, "certconfig", "create", "--cn", "mx.migrate.test", "--name", "mx", "--config", file);
            gateway.Stop();
        }
        var versionsBefore = Cli(0, "config", "versions", "--config", file);

        var database = ClusterStore.CreateDatabase("migrate");
        var settings = ClusterStore.Settings(database, "m1");
        var output = Cli(0, "store", "migrate", "--to", "postgres", settings.Postgres, "--password-file", settings.PasswordFile!, "--member", "m1", "--config", file);
        Assert.Contains($"{Messages} message(s) with {Messages} pending recipient(s)", output);
        Assert.False(File.Exists(Path.Combine(single.DataDirectory, "queue", "queue.db")));
        Assert.Contains("\"cluster\"", output);
        // A second run finds no queue left to move (it was renamed, never deleted).
        Assert.Contains("no queue at", Cli(1, "store", "migrate", "--to", "postgres", settings.Postgres, "--password-file", settings.PasswordFile!, "--config", file));

        // The machine comes back as member m1 (its hold came along), and member m2 delivers what m1 had queued.
        single.Cluster = settings;
        File.WriteAllText(file, single.ToJson());
        Assert.Equal(versionsBefore, Cli(0, "config", "versions", "--config", file));
        Assert.Contains("mx.migrate.test", Cli(0, "certconfig", "list", "--config", file));
        using var m1 = PosternProcess.Serve(single);
        var m2Config = ClusterStore.Member(database, "m2", "127.0.2.24");
        using var m2 = PosternProcess.Serve(m2Config);
        var mailbox = Path.Combine(_world.MailDirectory, "good.test", "new");
        TestWorld.WaitUntil(() => Directory.EnumerateFiles(mailbox).Count(f => File.ReadAllText(f).Contains($"Delivered-To: {token}-")) >= Messages,
            TimeSpan.FromSeconds(60), $"the {Messages} migrated messages delivered");
        Assert.DoesNotContain("Delivery start", File.ReadAllText(Path.Combine(single.DataDirectory, "logs", "mail.current")).Split("Cluster member m1 started")[1]);
        m1.Stop();
        m2.Stop();
    }

    [Fact]
    public async Task The_web_interface_shows_the_members_of_the_cluster()
    {
        var database = ClusterStore.CreateDatabase("webcl");
        var a = ClusterStore.Member(database, "a", "127.0.2.25", tweak: c => { c.Web.Enabled = true; c.Web.Port = 0; });
        await using var gw = RunningGateway.Start(a);
        using var b = PosternProcess.Serve(ClusterStore.Member(database, "b", "127.0.2.26"));
        await using var browser = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(The_web_interface_shows_the_members_of_the_cluster));
        var password = File.ReadAllText(Path.Combine(a.DataDirectory, "web", "initial-admin-password")).Split(' ', 2)[1].Trim();
        await browser.LoginAsync("admin", password);
        await browser.GoAsync("/cluster");
        foreach (var (member, address) in new[] { ("a", "127.0.2.25"), ("b", "127.0.2.26") })
        {
            var row = browser.Page.Locator($"#members tr[data-member='{member}']");
            TestWorld.WaitUntil(() =>
            {
                browser.GoAsync("/cluster").GetAwaiter().GetResult();
                var text = row.InnerTextAsync().GetAwaiter().GetResult();
                return text.Contains("up") && text.Contains(address);
            }, TimeSpan.FromSeconds(20), $"member {member} up on {address} in the page");
        }
        await browser.ShotAsync("cluster");
        b.Stop();
        TestWorld.WaitUntil(() =>
        {
            browser.GoAsync("/cluster").GetAwaiter().GetResult();
            return browser.Page.Locator("#members tr[data-member='b']").InnerTextAsync().GetAwaiter().GetResult().Contains("stopped");
        }, TimeSpan.FromSeconds(20), "member b shown as stopped");
    }
}
