using Postern.Admin;
using Postern.Observability;
using Postern.Security;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// MTA-STS (RFC 8461) against the test world's policy hosts (nginx on 127.0.8.1) and Postfix
/// receivers (testworld/README.md, "MTA-STS"): each case delivered or deferred, and the log
/// line that says why. Deferrals are read from Postern's own recorded decision.
/// </summary>
public sealed class MtaStsWorldTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private PosternConfig StsConfig(string name, Action<PosternConfig>? tweak = null) => _world.NewConfig(name, c =>
    {
        c.DestinationControls.Default.Tls = TlsLevel.Preferred;
        c.DestinationControls.Default.MtaSts = MtaStsSupport.On;
        c.CertificateAuthorities.CustomListEnabled = true;
        c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        c.MtaSts.FetchTimeoutSeconds = 5;
        c.DefaultBounceProfile.InitialRetrySeconds = 600;
        c.DefaultBounceProfile.MaxRetrySeconds = 600;
        tweak?.Invoke(c);
    });

    public static TheoryData<string, bool, string> Cases() => new()
    {
        { "sts-good.test", true, "MTA-STS policy for the domain (sts-good.test) Successful." },
        { "sts-outside.test", false, "MTA-STS policy for the domain (sts-outside.test) failed for mx.mxname.test: mx.mxname.test is not in the policy's mx list (mx.elsewhere.test)" },
        { "sts-second.test", true, "MTA-STS policy for the domain (sts-second.test) Successful." },
        { "sts-expired.test", false, "MTA-STS policy for the domain (sts-expired.test) failed for mx.expired.test: certificate: certificate has expired" },
        { "sts-wrongname.test", false, "failed for mx.domainonly.test: certificate: peer cert does not match domain mx.domainonly.test" },
        { "sts-selfsigned.test", false, "failed for mx.selfsigned.test: certificate: self signed certificate" },
        { "sts-untrusted.test", false, "failed for mx.untrusted.test: certificate: unable to get local issuer certificate" },
        { "sts-nochain.test", false, "failed for mx.ta-nochain.test: certificate: unable to get local issuer certificate" },
        { "sts-chain.test", true, "MTA-STS policy for the domain (sts-chain.test) Successful." },
        { "sts-notls.test", false, "failed for mx.notls.test: STARTTLS not advertised" },
        { "sts-otherhost.test", false, "failed for mx.sts-otherhost.test: certificate: peer cert does not match domain mx.sts-otherhost.test" },
        { "sts-testing.test", true, "would fail for mx.expired.test (mode testing, delivering anyway): certificate: certificate has expired" },
        { "sts-none.test", true, "MTA-STS policy fetched for the domain (sts-none.test) id 20261130a: mode none" },
        { "sts-wild.test", true, "MTA-STS policy for the domain (sts-wild.test) Successful." },
        { "sts-wild2.test", false, "failed for a.b.wild.test: a.b.wild.test is not in the policy's mx list (*.wild.test)" },
        { "sts-twotxt.test", true, "No MTA-STS policy for the domain (sts-twotxt.test): _mta-sts.sts-twotxt.test: 2 TXT records start with v=STSv1" },
        { "sts-noid.test", true, "No MTA-STS policy for the domain (sts-noid.test): _mta-sts.sts-noid.test: no id field" },
        { "sts-refused.test", true, "Request to fetch STS policy failed due to connection refused, for the domain sts-refused.test" },
        { "sts-404.test", true, "Request to fetch STS policy failed due to HTTP status 404" },
        { "sts-badcert.test", true, "Request to fetch STS policy failed due to certificate of mta-sts.sts-badcert.test: peer cert does not match domain mta-sts.sts-badcert.test" },
        { "sts-redirect.test", true, "Request to fetch STS policy failed due to HTTP status 301 (to https://mta-sts.sts-good.test/.well-known/mta-sts.txt)" },
        { "sts-mediatype.test", true, "Request to fetch STS policy failed due to media type text/html is not text/plain" },
        { "sts-oversize.test", true, "over the limit of 65536" },
        { "sts-badversion.test", true, "Request to fetch STS policy failed due to invalid policy: version 'STSv2' is not STSv1" },
        { "sts-unsigned.unsigned.test", true, "MTA-STS policy for the domain (sts-unsigned.unsigned.test) Successful." },
    };

    [Fact]
    public async Task Every_world_case()
    {
        await using var gw = RunningGateway.Start(StsConfig("sts-all"));
        await OutcomeMatrix.VerifyAsync(_world, gw, "sts", OutcomeMatrix.Rows(Cases()),
            onDeferred: delayed => Assert.Contains("MTA-STS policy enforced", delayed));
        // Testing mode's would-be refusals are counted apart from enforced ones.
        Assert.Equal(1, gw.Gateway.Counters.Get("StsHostWouldFail"));
        Assert.True(gw.Gateway.Counters.Get(nameof(StsHostFailed)) >= 10);
        // The SPEC §7 lines, in order, for one successful delivery.
        var lines = gw.MailLogText().Split('\n');
        int At(string text) => Array.FindIndex(lines, l => l.Contains(text, StringComparison.Ordinal));
        var order = new[]
        {
            At("Successfully fetched MTA-STS TXT record for domain(sts-good.test)"),
            At("Debug: Fetch MTA-STS policy for the domain(sts-good.test)"),
            At("Applying MTA-STS policy for the domain (sts-good.test)"),
            At("MTA-STS policy for the domain (sts-good.test) Successful."),
        };
        Assert.All(order, i => Assert.True(i >= 0));
        Assert.Equal(order.OrderBy(i => i), order);
    }

    [Fact]
    public async Task DANE_failing_is_never_overridden_by_a_passing_MTA_STS_policy()
    {
        await using var gw = RunningGateway.Start(StsConfig("sts-dane", c => c.DestinationControls.Default.Dane = DaneSupport.Opportunistic));
        var rcpt = TestWorld.Unique("stsdane") + "@sts-dane.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "dane beats sts");
        gw.WaitForLogLine("DANE: verification of mx.sts-dane.test failed");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>");
        Assert.Null(_world.TryWaitForMail(rcpt, TimeSpan.Zero));
        Assert.DoesNotContain("MTA-STS policy for the domain (sts-dane.test) Successful.", gw.MailLogText());
    }

    [Fact]
    public async Task A_routed_domain_never_gets_MTA_STS()
    {
        await using var gw = RunningGateway.Start(StsConfig("sts-routed", c =>
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "sts-routed.test", Hosts = { new SmtpRouteHost { Host = "mx.mxname.test" } } })));
        var rcpt = TestWorld.Unique("routed") + "@sts-routed.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "routed");
        _world.WaitForMail(rcpt);
        gw.WaitForLogLine("MTA-STS not applied for the domain (sts-routed.test): an SMTP route is configured for it");
        Assert.DoesNotContain("Fetch MTA-STS policy for the domain(sts-routed.test)", gw.MailLogText());
    }

    private static void Seed(PosternConfig config, string domain, string id, string policy, DateTimeOffset expires)
    {
        using var cache = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(Path.GetFullPath(config.DataDirectory)));
        cache.Put(new StsCacheEntry(domain, id, policy, DateTimeOffset.UtcNow.AddDays(-1), expires, DateTimeOffset.UtcNow.AddDays(-1)));
    }

    private const string RefusingPolicy = "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n";

    [Fact]
    public async Task A_cached_policy_keeps_applying_while_the_policy_host_is_down()
    {
        var config = StsConfig("sts-cache-down");
        Seed(config, "sts-cache.test", "old1", RefusingPolicy, DateTimeOffset.UtcNow.AddDays(1));
        await using var gw = RunningGateway.Start(config);
        var rcpt = TestWorld.Unique("cache") + "@sts-cache.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "cached");
        gw.WaitForLogLine("Failure encountered while fetching MTA-STS policy for the domain(sts-cache.test)");
        gw.WaitForLogLine("Using the cached MTA-STS policy for the domain (sts-cache.test)");
        gw.WaitForLogLine("failed for mx.mxname.test: mx.mxname.test is not in the policy's mx list (mx.elsewhere.test)");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>");
    }

    [Fact]
    public async Task A_new_TXT_id_fetches_the_policy_again_and_an_expired_one_is_not_used()
    {
        var config = StsConfig("sts-cache-id");
        Seed(config, "sts-cache.test", "old1", RefusingPolicy, DateTimeOffset.UtcNow.AddDays(1));
        await using (var server = new StsPolicyServer("127.0.8.98", "sts-cache.test", "version: STSv1\nmode: enforce\nmx: mx.mxname.test\nmax_age: 3600\n", _world))
        await using (var gw = RunningGateway.Start(config))
        {
            var rcpt = TestWorld.Unique("newid") + "@sts-cache.test";
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "new id");
            _world.WaitForMail(rcpt);
            gw.WaitForLogLine("MTA-STS policy fetched for the domain (sts-cache.test) id new1: mode enforce, mx mx.mxname.test, max_age 3600");
            Assert.Equal(1, server.Requests);
        }
        // Expired (same id): not used, and with the policy host down there is no policy at all.
        var expired = StsConfig("sts-cache-expired");
        Seed(expired, "sts-cache.test", "new1", RefusingPolicy, DateTimeOffset.UtcNow.AddMinutes(-1));
        await using (var gw = RunningGateway.Start(expired))
        {
            var rcpt = TestWorld.Unique("expired") + "@sts-cache.test";
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "expired policy");
            _world.WaitForMail(rcpt);
            gw.WaitForLogLine("Failure encountered while fetching MTA-STS policy for the domain(sts-cache.test)");
            Assert.DoesNotContain("Using the cached MTA-STS policy for the domain (sts-cache.test)", gw.MailLogText());
        }
    }

    [Fact]
    public async Task Policies_are_refreshed_before_expiry_only_for_domains_with_recent_mail()
    {
        var config = StsConfig("sts-refresh");
        const string policy = "version: STSv1\nmode: enforce\nmx: mx.mxname.test\nmax_age: 86400\n";
        using (var cache = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(Path.GetFullPath(config.DataDirectory))))
        {
            cache.Put(new StsCacheEntry("sts-good.test", "20261130a", policy, DateTimeOffset.UtcNow.AddHours(-23), DateTimeOffset.UtcNow.AddHours(1), DateTimeOffset.UtcNow.AddMinutes(-5)));
            cache.Put(new StsCacheEntry("sts-chain.test", "20261130a", policy, DateTimeOffset.UtcNow.AddHours(-23), DateTimeOffset.UtcNow.AddHours(1), DateTimeOffset.UtcNow.AddDays(-3)));
        }
        await using var gw = RunningGateway.Start(config);
        gw.WaitForLogLine("MTA-STS proactive refresh: 1 policy refreshed, 1 expiring without recent traffic left alone");
        gw.WaitForLogLine("MTA-STS policy fetched for the domain (sts-good.test) id 20261130a");
        Assert.DoesNotContain("Fetch MTA-STS policy for the domain(sts-chain.test)", gw.MailLogText());
        using var after = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(Path.GetFullPath(config.DataDirectory)));
        Assert.True(after.Get("sts-good.test")!.ExpiresAt > DateTimeOffset.UtcNow.AddHours(20));
    }

    [Fact]
    public async Task Policies_can_be_fetched_through_a_configured_HTTP_proxy()
    {
        await using var proxy = new ConnectProxy("127.0.8.97", target => new System.Net.IPEndPoint(System.Net.IPAddress.Parse("127.0.8.1"), 443));
        await using var gw = RunningGateway.Start(StsConfig("sts-proxy", c => c.MtaSts.Proxy = proxy.Url));
        var rcpt = TestWorld.Unique("proxy") + "@sts-good.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "proxy");
        _world.WaitForMail(rcpt);
        gw.WaitForLogLine("MTA-STS policy fetched for the domain (sts-good.test)", $"via proxy {proxy.Url}");
        lock (proxy.Targets) Assert.Contains("mta-sts.sts-good.test:443", proxy.Targets);
    }

    [Fact]
    public async Task A_policy_host_that_never_answers_is_a_logged_timeout_and_no_policy()
    {
        // Accepts the TCP connection, then says nothing (no TLS handshake).
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse("127.0.8.98"), 443);
        silent.Start();
        var held = new List<System.Net.Sockets.TcpClient>();
        var accepting = Task.Run(async () => { try { while (true) held.Add(await silent.AcceptTcpClientAsync()); } catch (Exception) { } });
        await using var gw = RunningGateway.Start(StsConfig("sts-timeout", c => c.MtaSts.FetchTimeoutSeconds = 2));
        var rcpt = TestWorld.Unique("timeout") + "@sts-cache.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "timeout");
        gw.WaitForLogLine("Failure encountered while fetching MTA-STS policy for the domain(sts-cache.test)");
        gw.WaitForLogLine("Debug: Request to fetch STS policy failed due to a connection timeout., for the domain sts-cache.test");
        _world.WaitForMail(rcpt);   // no policy: delivered under the TLS level
        silent.Stop();
        foreach (var c in held) c.Dispose();
        // MTA-STS on the Default entry works, and is warned about.
        Assert.Contains(ConfigPreflight.Warnings(StsConfig("sts-default-warning")), w => w.Contains("MTA-STS is on for the Default entry"));
    }

    [Fact]
    public async Task A_policy_body_cut_short_is_a_fetch_error_and_the_cached_policy_applies()
    {
        var config = StsConfig("sts-truncated");
        Seed(config, "sts-cache.test", "old1", RefusingPolicy, DateTimeOffset.UtcNow.AddDays(1));
        await using var server = new StsPolicyServer("127.0.8.98", "sts-cache.test", "version: STSv1\nmode: enforce\nmx: mx.mxname.test\nmax_age: 3600\n", _world, truncate: true);
        await using var gw = RunningGateway.Start(config);
        var rcpt = TestWorld.Unique("cut") + "@sts-cache.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "cut short");
        gw.WaitForLogLine("Failure encountered while fetching MTA-STS policy for the domain(sts-cache.test)");
        gw.WaitForLogLine("Using the cached MTA-STS policy for the domain (sts-cache.test)");
        var delayed = gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>");
        Assert.Contains("MTA-STS policy enforced", delayed);   // the cached policy, not an internal error
        Assert.DoesNotContain("internal error", delayed);
    }

    [Fact]
    public async Task The_cache_survives_a_restart()
    {
        var config = StsConfig("sts-restart");
        await using (var gw = RunningGateway.Start(config))
        {
            var rcpt = TestWorld.Unique("first") + "@sts-good.test";
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "first");
            _world.WaitForMail(rcpt);
            gw.WaitForLogLine("MTA-STS policy fetched for the domain (sts-good.test) id 20261130a");
        }
        using (var cache = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(Path.GetFullPath(config.DataDirectory))))
            Assert.Equal("20261130a", cache.Get("sts-good.test")!.Id);
        await using (var gw = RunningGateway.Start(config))
        {
            var before = gw.MailLogText().Length;   // the same data folder: the first run's lines are in the log too
            var rcpt = TestWorld.Unique("second") + "@sts-good.test";
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "second");
            _world.WaitForMail(rcpt);
            gw.WaitForLogLine("Valid cache entry found for the domain (sts-good.test).");
            Assert.DoesNotContain("Fetch MTA-STS policy for the domain(sts-good.test)", gw.MailLogText()[before..]);
        }
    }
    private string ConfigFile(string name)
    {
        var config = StsConfig(name);
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        return file;
    }

    [Fact]
    public void Check_tells_whether_MTA_STS_enforcement_is_safe_with_its_reasons_in_JSON()
    {
        var file = ConfigFile("sts-check");
        System.Text.Json.JsonElement Check(string domain, int exit)
        {
            var (code, output) = PosternProcess.Cli("check", domain, "--json", "--config", file);
            Assert.True(code == exit, output);
            return System.Text.Json.JsonDocument.Parse(output).RootElement;
        }
        var good = Check("sts-good.test", 0);
        Assert.True(good.GetProperty("safeToEnforce").GetBoolean());
        Assert.Equal("20261130a", good.GetProperty("txtId").GetString());
        Assert.Equal("mode enforce, mx mx.mxname.test, max_age 86400", good.GetProperty("policy").GetString());
        Assert.Equal("subjectAltName:dNSName=mta-sts.sts-good.test", good.GetProperty("policyHostCertificate").GetString());
        var mx = good.GetProperty("mxHosts")[0];
        Assert.Equal("mx.mxname.test", mx.GetProperty("host").GetString());
        Assert.True(mx.GetProperty("inPolicy").GetBoolean());
        Assert.True(mx.GetProperty("pkixVerified").GetBoolean());
        Assert.StartsWith("TLSv1.", mx.GetProperty("tls").GetString());
        Assert.StartsWith("DANE does not apply", good.GetProperty("dane").GetProperty("verdict").GetString());
        Assert.StartsWith("SAFE to enable MTA-STS enforcement for sts-good.test", good.GetProperty("verdict").GetString());

        Assert.StartsWith("NOT READY: MX host mx.expired.test would fail enforcement: certificate: certificate has expired", Check("sts-expired.test", 1).GetProperty("verdict").GetString());
        Assert.StartsWith("NOT READY: MX host mx.mxname.test is not in the policy", Check("sts-outside.test", 1).GetProperty("verdict").GetString());
        var twotxt = Check("sts-twotxt.test", 1);
        Assert.Equal(2, twotxt.GetProperty("txtRecords").GetArrayLength());
        Assert.StartsWith("NOT READY: no usable MTA-STS TXT record (2 TXT records start with v=STSv1", twotxt.GetProperty("verdict").GetString());
        Assert.StartsWith("NOT READY: the policy cannot be used (HTTP status 404", Check("sts-404.test", 1).GetProperty("verdict").GetString());
    }

    [Fact]
    public void The_sts_commands_refresh_list_show_and_flush_the_cache()
    {
        var file = ConfigFile("sts-cli");
        var (refresh, refreshed) = PosternProcess.Cli("sts", "refresh", "sts-good.test", "--config", file);
        Assert.True(refresh == 0, refreshed);
        Assert.Contains("Successfully fetched MTA-STS TXT record for domain(sts-good.test)", refreshed);
        var (_, list) = PosternProcess.Cli("sts", "list", "--json", "--config", file);
        var entry = System.Text.Json.JsonDocument.Parse(list).RootElement[0];
        Assert.Equal("sts-good.test", entry.GetProperty("domain").GetString());
        Assert.Equal("enforce", entry.GetProperty("mode").GetString());
        Assert.Equal("mx.mxname.test", entry.GetProperty("mx")[0].GetString());
        Assert.Contains("mode: enforce", PosternProcess.Cli("sts", "show", "sts-good.test", "--config", file).Output);
        Assert.Equal(0, PosternProcess.Cli("sts", "flush", "sts-good.test", "--config", file).ExitCode);
        Assert.Contains("No MTA-STS policies are cached.", PosternProcess.Cli("sts", "list", "--config", file).Output);
        Assert.Equal(1, PosternProcess.Cli("sts", "refresh", "sts-404.test", "--config", file).ExitCode);
    }
}
