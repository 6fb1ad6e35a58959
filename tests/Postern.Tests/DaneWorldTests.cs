using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// DANE (RFC 7672) against the test world's signed zones and real Postfix receivers
/// (testworld/README.md, "DANE"): each case delivered or deferred, and the log line that
/// says why. Deferrals are read from Postern's own decision (the Delayed line for that
/// recipient, recorded before any message data was sent).
/// </summary>
public sealed class DaneWorldTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private PosternConfig DaneConfig(string name, Action<PosternConfig>? tweak = null) => _world.NewConfig(name, c =>
    {
        c.DestinationControls.Default.Tls = TlsLevel.Preferred;
        c.DestinationControls.Default.Dane = DaneSupport.Opportunistic;
        c.Dns.DnssecProbe = "soa:test.";
        c.DefaultBounceProfile.InitialRetrySeconds = 600;
        c.DefaultBounceProfile.MaxRetrySeconds = 600;
        tweak?.Invoke(c);
    });

    public static TheoryData<string, bool, string> OpportunisticCases() => new()
    {
        { "dane-ee.test", true, "DANE: authenticated mx.dane-ee.test: TLSA 3 1 1" },
        { "dane-ee0.test", true, "DANE: authenticated mx.dane-ee0.test: TLSA 3 0 1" },
        { "dane-expired.test", true, "DANE: authenticated mx.dane-expired.test: TLSA 3 1 1" },
        { "dane-selfsigned.test", true, "DANE: authenticated mx.dane-selfsigned.test: TLSA 3 1 1" },
        { "dane-nomatch.test", false, "DANE: verification of mx.dane-nomatch.test failed: no usable TLSA record" },
        { "dane-ta.test", true, "matched the trust anchor CN=Postern Test Intermediate" },
        { "dane-ta-nochain.test", false, "a DANE-TA trust anchor must be in the chain it sends" },
        { "dane-ta-mismatch.test", false, "do not match mx.ta-mismatch.test" },
        { "dane-ta-root.test", true, "DANE: authenticated mx.ta-root.test: TLSA 2 1 1" },
        { "dane-pkix.test", true, "DANE: TLS without authentication to mx.dane-pkix.test: no usable TLSA record" },
        { "dane-mixed.test", true, "DANE: authenticated mx.dane-mixed.test: TLSA 3 1 2" },
        { "dane-notls.test", false, "TLS is mandatory (1 usable TLSA record(s) at _25._tcp.mx.dane-notls.test), but TLS is required, but" },
        { "dane-cname.test", true, "at _25._tcp.mx.dane-ee.test)" },
        { "dane-alias.test", true, "at _25._tcp.mx.dane-alias.test)" },
        { "dane-bogus-tlsa.test", false, "DANE: MX host mx.dane.badsig.test of dane-bogus-tlsa.test not used: the TLSA lookup at _25._tcp.mx.dane.badsig.test is bogus" },
        { "dane-bogushost.test", false, "DNS lookup of mail host addresses failed" },
        { "bogus.test", false, "DNS lookup of MX for bogus.test failed: ServerFailure" },
        { "dane-insecure.unsigned.test", true, "DANE: not applicable to mx.dane-insecure.unsigned.test: the MX records are not DNSSEC-signed (insecure)" },
        { "unsigned-mx.unsigned.test", true, "DANE: not applicable to mx.dane-nomatch.test: the MX records are not DNSSEC-signed (insecure)" },
        { "good.test", true, "DANE: not applicable to mx1.good.test: there are no TLSA records for mx1.good.test" },
    };

    [Fact]
    public async Task Opportunistic_DANE_against_every_world_case()
    {
        await using var gw = RunningGateway.Start(DaneConfig("dane-opp"));
        await OutcomeMatrix.VerifyAsync(_world, gw, "dane", OutcomeMatrix.Rows(OpportunisticCases()),
            onDelivered: (domain, mail) => { if (domain.StartsWith("dane-", StringComparison.Ordinal)) Assert.Contains("with ESMTPS", mail); });
    }

    [Fact]
    public async Task The_DNSSEC_probe_reports_whether_the_resolver_validates()
    {
        await using (var gw = RunningGateway.Start(DaneConfig("dane-probe")))
            gw.WaitForLogLine("DNSSEC probe soa:test.: validated (AD from trusted resolver 127.0.10.1)");
        // The same resolver, not trusted: its AD bit means nothing, and the log says so.
        await using (var gw = RunningGateway.Start(DaneConfig("dane-probe-untrusted", c => c.Dns.TrustedResolvers = ["192.0.2.53"])))
            gw.WaitForLogLine("DNSSEC probe soa:test.: not validated (no AD bit from a trusted resolver); DANE cannot apply");
        var config = DaneConfig("dane-probe-warn", c => c.Dns.TrustedResolvers = ["192.0.2.53"]);
        Assert.Contains(ConfigPreflight.Warnings(config), w => w.StartsWith("DANE is enabled, but no resolver (127.0.10.1) is trusted", StringComparison.Ordinal));
        Assert.DoesNotContain(ConfigPreflight.Warnings(DaneConfig("dane-probe-ok")), w => w.Contains("DANE"));
    }

    [Fact]
    public void Dane_check_reports_DNSSEC_status_TLSA_records_and_a_live_probe()
    {
        var config = DaneConfig("dane-check");
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        System.Text.Json.JsonElement Check(string domain, int expectedExit)
        {
            var (code, output) = PosternProcess.Cli("dane", "check", domain, "--json", "--config", file);
            Assert.True(code == expectedExit, output);
            return System.Text.Json.JsonDocument.Parse(output).RootElement;
        }

        var ee = Check("dane-ee.test", 0);
        Assert.Equal("secure", ee.GetProperty("mxSecurity").GetString());
        Assert.StartsWith("DANE OK for dane-ee.test: 1 of 1 MX host(s) authenticated", ee.GetProperty("verdict").GetString());
        var host = ee.GetProperty("hosts")[0];
        Assert.Equal("mx.dane-ee.test", host.GetProperty("host").GetString());
        Assert.Equal("secure", host.GetProperty("addressSecurity").GetString());
        Assert.Equal("secure", host.GetProperty("tlsaSecurity").GetString());
        Assert.StartsWith("3 1 1 ", host.GetProperty("tlsa")[0].GetProperty("record").GetString());
        Assert.True(host.GetProperty("tlsa")[0].GetProperty("usable").GetBoolean());
        Assert.Equal("Authenticate", host.GetProperty("decision").GetString());
        Assert.True(host.GetProperty("matched").GetBoolean());
        Assert.Contains("TLSv1.", host.GetProperty("probe").GetString());

        var mixed = Check("dane-mixed.test", 0).GetProperty("hosts")[0].GetProperty("tlsa");
        Assert.Equal(3, mixed.GetArrayLength());
        Assert.Contains(mixed.EnumerateArray(), r => r.TryGetProperty("unusable", out var u) && u.GetString() == "SHA-256 digest of 16 bytes");

        var nomatch = Check("dane-nomatch.test", 1);
        Assert.False(nomatch.GetProperty("hosts")[0].GetProperty("matched").GetBoolean());
        Assert.StartsWith("DANE FAILS for 1 of 1 MX host(s) of dane-nomatch.test", nomatch.GetProperty("verdict").GetString());

        var insecure = Check("dane-insecure.unsigned.test", 0);
        Assert.Equal("insecure", insecure.GetProperty("mxSecurity").GetString());
        Assert.Equal("NotApplicable", insecure.GetProperty("hosts")[0].GetProperty("decision").GetString());
        Assert.StartsWith("DANE does not apply", insecure.GetProperty("verdict").GetString());

        var bogus = Check("dane-bogus-tlsa.test", 1);
        Assert.Equal("bogus", bogus.GetProperty("hosts")[0].GetProperty("tlsaSecurity").GetString());
        Assert.Equal("Unusable", bogus.GetProperty("hosts")[0].GetProperty("decision").GetString());
    }

    [Fact]
    public async Task Answers_from_an_untrusted_fallback_resolver_never_switch_DANE_off()
    {
        // The trusted resolver (first) is down; the fallback answers with AD, but is not trusted.
        await using var gw = RunningGateway.Start(DaneConfig("dane-fallback-resolver", c =>
        {
            c.Dns.Servers = ["127.0.10.9:53", TestWorld.Resolver];
            c.Dns.TrustedResolvers = ["127.0.10.9"];
            c.Dns.TimeoutSeconds = 1;
        }));
        var rcpt = TestWorld.Unique("untrusted") + "@dane-nomatch.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "untrusted resolver");
        gw.WaitForLogLine("DANE: MX host mx.dane-nomatch.test of dane-nomatch.test not used: the MX records are indeterminate");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>");
        Assert.Null(_world.TryWaitForMail(rcpt, TimeSpan.Zero));
        // And a name DnsClient refuses (over 255 octets) is a failed lookup, not an exception.
        var dns = new Postern.Dns.DnsResolver(new DnsSettings { Servers = [TestWorld.Resolver] }, new Postern.Observability.MailEventStream());
        var tlsa = await dns.QueryTlsaAsync("_25._tcp." + string.Join('.', Enumerable.Repeat(new string('a', 60), 5)) + ".test", CancellationToken.None);
        Assert.True(tlsa.IsTemporaryFailure);
        Assert.Equal(Postern.Dns.DnsSecurity.Indeterminate, tlsa.Security);
    }

    [Fact]
    public async Task A_first_MX_failing_DANE_and_a_second_passing_delivers_to_the_second()
    {
        await using var gw = RunningGateway.Start(DaneConfig("dane-fallback"));
        var rcpt = TestWorld.Unique("fallback") + "@dane-fallback.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "dane fallback");
        _world.WaitForMail(rcpt);
        gw.WaitForLogLine("DANE: verification of mx.dane-nomatch.test failed");
        gw.WaitForLogLine("DANE: authenticated mx.dane-ee.test");
        Assert.DoesNotContain("DANE failed for every MX host", gw.MailLogText());
    }

    [Fact]
    public async Task Mandatory_DANE_delivers_only_over_DANE_authenticated_connections()
    {
        await using var gw = RunningGateway.Start(DaneConfig("dane-mandatory", c =>
        {
            foreach (var d in new[] { "dane-ee.test", "dane-pkix.test", "dane-insecure.unsigned.test", "good.test" })
                c.DestinationControls.Entries.Add(new DestinationEntry { Domain = d, Dane = DaneSupport.Mandatory });
        }));
        var ee = TestWorld.Unique("mand") + "@dane-ee.test";
        var pkix = TestWorld.Unique("mand") + "@dane-pkix.test";
        var insecure = TestWorld.Unique("mand") + "@dane-insecure.unsigned.test";
        var none = TestWorld.Unique("mand") + "@good.test";
        foreach (var r in new[] { ee, pkix, insecure, none }) await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", r, "mandatory");
        _world.WaitForMail(ee);
        gw.WaitForLogLine("Destination Controls for domain (dane-ee.test): TLS Preferred (dane-ee.test entry, inherited from Default), DANE mandatory");
        foreach (var (r, why) in new[]
        {
            (pkix, "DANE is mandatory, but no TLSA record at _25._tcp.mx.dane-pkix.test is usable"),
            (insecure, "DANE is mandatory, but the MX records are not DNSSEC-signed (insecure)"),
            (none, "DANE is mandatory, but there are no TLSA records for mx1.good.test"),
        })
        {
            gw.WaitForLogLine("not used: " + why);
            gw.WaitForLogLine("Delayed:", $"To:<{r}>");
            Assert.Null(_world.TryWaitForMail(r, TimeSpan.Zero));
        }
    }

    [Fact]
    public async Task DANE_failing_for_every_MX_host_raises_one_alert()
    {
        var admin = TestWorld.Unique("daneadmin") + "@sender.test";
        await using var gw = RunningGateway.Start(DaneConfig("dane-alert", c =>
        {
            c.Alerts.Recipients.Add(new AlertRecipient { Address = admin, Severities = { AlertSeverity.Warning }, Types = { AlertType.MessageDelivery } });
            c.DefaultBounceProfile.InitialRetrySeconds = 1;
            c.DefaultBounceProfile.MaxRetrySeconds = 1;
        }));
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", TestWorld.Unique("a") + "@dane-nomatch.test", "dane alert");
        var alert = _world.WaitForMail(admin, TimeSpan.FromSeconds(30)).Replace("\n ", " ");
        Assert.Contains("DANE failed for every MX host of dane-nomatch.test", alert);
        Assert.Contains("no usable TLSA record", alert);
        TestWorld.WaitUntil(() => gw.MailLogText().Split('\n').Count(l => l.Contains("DANE failed for every MX host of dane-nomatch.test")) >= 3,
            TimeSpan.FromSeconds(30), "repeated DANE failures");
        gw.WaitForLogLine("alert not sent (throttled until", "dane-nomatch.test");
    }
}
