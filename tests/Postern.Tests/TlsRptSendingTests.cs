using System.Text.Json;
using Json.Schema;
using Postern.Admin;
using Postern.Cluster;
using Postern.Dns;
using Postern.Observability;
using Postern.Policy;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// TLS reporting's sending side as pure functions and stores: which policy and result type a
/// session reports, how counts become a report, and the store on SQLite and PostgreSQL
/// (counts add up across members, a report is claimed once).
/// </summary>
public sealed class TlsRptSendingTests
{
    private static readonly TlsaRecord Ee = new(3, 1, 1, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    [Fact]
    public void DANE_decides_the_policy_where_it_applies_then_MTA_STS_then_none()
    {
        var sts = new StsPolicy(StsMode.Enforce, ["mx.example.com", "*.example.net"], 86400);
        var dane = new DaneHostPolicy(DaneHostKind.Authenticate, [Ee], "usable");
        var notApplicable = new DaneHostPolicy(DaneHostKind.NotApplicable, [], "off");

        var tlsa = TlsRptPolicy.For("Example.COM", dane, sts);
        Assert.Equal(TlsRptPolicyType.Tlsa, tlsa.Type);
        Assert.Equal("example.com", tlsa.PolicyDomain);
        Assert.Equal(["3 1 1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"], tlsa.Strings);

        var byPolicy = TlsRptPolicy.For("example.com", notApplicable, sts);
        Assert.Equal(TlsRptPolicyType.Sts, byPolicy.Type);
        Assert.Equal(["version: STSv1", "mode: enforce", "mx: mx.example.com", "mx: *.example.net", "max_age: 86400"], byPolicy.Strings);
        Assert.Equal(["mx.example.com", "*.example.net"], byPolicy.MxHosts);

        Assert.Equal(TlsRptPolicyType.NoPolicyFound, TlsRptPolicy.For("example.com", notApplicable, sts with { Mode = StsMode.None }).Type);
        Assert.Equal(TlsRptPolicyType.NoPolicyFound, TlsRptPolicy.For("example.com", notApplicable, null).Type);
        // An unusable DANE host is still DANE's: its (absent) records are the policy.
        Assert.Equal(TlsRptPolicyType.Tlsa, TlsRptPolicy.For("example.com", new DaneHostPolicy(DaneHostKind.Unusable, [], "bogus"), sts).Type);
    }

    [Fact]
    public void Equal_policies_share_a_key_and_different_ones_do_not()
    {
        var sts = new StsPolicy(StsMode.Testing, ["mx.example.com"], 86400);
        var none = new DaneHostPolicy(DaneHostKind.NotApplicable, [], "off");
        var a = TlsRptPolicy.For("example.com", none, sts);
        Assert.Equal(a.Key, TlsRptPolicy.For("example.com", none, sts with { }).Key);
        Assert.Equal(a.Key, (a with { Failure = TlsRptResultType.ValidationFailure, FailureDetail = "x" }).Key);
        Assert.NotEqual(a.Key, TlsRptPolicy.For("example.com", none, sts with { Mode = StsMode.Enforce }).Key);
        Assert.NotEqual(a.Key, TlsRptPolicy.For("example.com", none, sts with { MaxAgeSeconds = 3600 }).Key);
    }

    [Theory]
    [InlineData(StsResult.PolicyFetchError, TlsRptResultType.StsPolicyFetchError)]
    [InlineData(StsResult.PolicyInvalid, TlsRptResultType.StsPolicyInvalid)]
    [InlineData(StsResult.WebPkiInvalid, TlsRptResultType.StsWebpkiInvalid)]
    public void A_policy_that_could_not_be_had_fails_every_session_with_its_type(StsResult result, TlsRptResultType expected)
    {
        var p = TlsRptPolicy.StsUnavailable("Example.com", result, "why");
        Assert.Equal(TlsRptPolicyType.Sts, p.Type);
        Assert.Equal(expected, p.Failure);
        Assert.Empty(p.Strings);
    }

    [Theory]
    [InlineData(false, true, "certificate has expired", TlsRptResultType.CertificateExpired)]
    [InlineData(false, true, "self signed certificate", TlsRptResultType.CertificateNotTrusted)]
    [InlineData(true, false, "peer cert does not match domain mx.example.com", TlsRptResultType.CertificateHostMismatch)]
    [InlineData(true, true, "weak signature algorithm", TlsRptResultType.ValidationFailure)]
    public void A_certificate_that_did_not_verify_reports_why(bool trusted, bool named, string problem, TlsRptResultType expected) =>
        Assert.Equal(expected, TlsRptPolicy.ForCertificate(new CertificateCheck(trusted, named, problem, [])));

    [Theory]
    [InlineData(DaneUnusableCause.DnssecInvalid, TlsRptResultType.DnssecInvalid)]
    [InlineData(DaneUnusableCause.NoUsableTlsa, TlsRptResultType.TlsaInvalid)]
    [InlineData(DaneUnusableCause.DaneRequired, TlsRptResultType.DaneRequired)]
    public void An_unusable_DANE_host_reports_its_cause(DaneUnusableCause cause, TlsRptResultType expected) =>
        Assert.Equal(expected, TlsRptPolicy.ForUnusable(new DaneHostPolicy(DaneHostKind.Unusable, [], "x", Cause: cause)));

    [Fact]
    public void The_DANE_decision_names_the_cause_of_an_unusable_host()
    {
        var bogus = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.example.com", DnsSecurity.Secure, DnsSecurity.Bogus, null, null, null);
        Assert.Equal(DaneUnusableCause.DnssecInvalid, bogus.Cause);
        var required = DanePolicy.ForHost(DaneSupport.Mandatory, "mx.example.com", DnsSecurity.Insecure, DnsSecurity.Insecure, null, null, null);
        Assert.Equal(DaneUnusableCause.DaneRequired, required.Cause);
        var unusable = DanePolicy.ForHost(DaneSupport.Mandatory, "mx.example.com", DnsSecurity.Secure, DnsSecurity.Secure, null, null,
            new TlsaLookup("mx.example.com", DnsSecurity.Secure, DnsOutcome.Ok, [new TlsaRecord(0, 0, 1, new byte[32])]));
        Assert.Equal(DaneUnusableCause.NoUsableTlsa, unusable.Cause);
        // The unusable records are still what the report names as the policy, mandatory or opportunistic (TLS without authentication).
        Assert.Equal(["0 0 1 " + new string('0', 64)], TlsRptPolicy.For("example.com", unusable, null).Strings);
        var encryptOnly = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.example.com", DnsSecurity.Secure, DnsSecurity.Secure, null, null,
            new TlsaLookup("mx.example.com", DnsSecurity.Secure, DnsOutcome.Ok, [new TlsaRecord(0, 0, 1, new byte[32])]));
        Assert.Equal(DaneHostKind.EncryptOnly, encryptOnly.Kind);
        Assert.Equal(["0 0 1 " + new string('0', 64)], TlsRptPolicy.For("example.com", encryptOnly, null).Strings);
    }

    private static readonly DateOnly Day = new(2026, 11, 29);

    private static List<TlsRptCount> Counts()
    {
        var dane = TlsRptPolicy.For("example.com", new DaneHostPolicy(DaneHostKind.Authenticate, [Ee], "usable"), null);
        var none = TlsRptPolicy.For("example.com", new DaneHostPolicy(DaneHostKind.NotApplicable, [], "off"), null);
        return
        [
            new(Day, dane, null, "", "", "", 7, ""),
            new(Day, dane, TlsRptResultType.TlsaInvalid, "192.0.2.1", "mx1.example.com", "198.51.100.1", 2, "no TLSA record matched"),
            new(Day, dane, TlsRptResultType.TlsaInvalid, "192.0.2.1", "mx2.example.com", "198.51.100.2", 1, "no TLSA record matched"),
            new(Day, none, TlsRptResultType.StartTlsNotSupported, "192.0.2.1", "mx3.example.com", "198.51.100.3", 4, "STARTTLS not advertised"),
        ];
    }

    [Fact]
    public void Counts_become_one_entry_per_policy_with_its_failures_and_a_valid_report()
    {
        var config = new PosternConfig { Hostname = "gw.example.org" };
        var outgoing = new TlsRptOutgoing(Day, "example.com", "r1@gw.example.org", "", TlsRptReportState.Sending, "", 0, default, null, [], default);
        var report = TlsRptReporter.Build(config, outgoing, Counts());
        Assert.Equal("gw.example.org", report.OrganizationName);
        Assert.Equal("postmaster@gw.example.org", report.ContactInfo);
        Assert.Equal(2, report.Policies.Count);
        var dane = report.Policies.Single(p => p.Type == TlsRptPolicyType.Tlsa);
        Assert.Equal((7, 3), (dane.SuccessfulSessions, dane.FailedSessions));
        Assert.Equal(2, dane.Failures.Count);
        var none = report.Policies.Single(p => p.Type == TlsRptPolicyType.NoPolicyFound);
        Assert.Equal((0, 4), (none.SuccessfulSessions, none.FailedSessions));
        var json = report.ToJson();
        var result = JsonSchema.FromText(TlsRptTests.ReportSchema).Evaluate(JsonDocument.Parse(json).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, json);
        Assert.Contains("\"start-datetime\":\"2026-11-29T00:00:00Z\"", json);
        Assert.Contains("\"end-datetime\":\"2026-11-29T23:59:59Z\"", json);
        Assert.Contains("\"failure-reason-code\":\"STARTTLS not advertised\"", json);
        Assert.DoesNotContain("\"mx-host\"", json);   // no MTA-STS policy here: the member is left out
    }

    private static async Task StoreBehavesAsync(ITlsRptStore store, ITlsRptStore otherMember)
    {
        await store.AddAsync(Counts());
        await otherMember.AddAsync(Counts().Take(2).ToList());   // the other member's sessions add up, once each
        var counts = await store.CountsAsync(Day, "example.com");
        Assert.Equal(4, counts.Count);
        Assert.Equal(14, counts.Single(c => c.Failure is null).Sessions);
        Assert.Equal(4, counts.Single(c => c.MxHost == "mx1.example.com").Sessions);
        Assert.Equal("no TLSA record matched", counts.Single(c => c.MxHost == "mx1.example.com").Detail);
        Assert.Equal(["3 1 1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"], counts.Single(c => c.Failure is null).Policy.Strings);
        Assert.Equal([(Day, "example.com")], await store.UnreportedAsync(Day, Day.AddDays(1)));
        Assert.Empty(await store.UnreportedAsync(Day.AddDays(1), Day.AddDays(2)));

        var at = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        var claim = new TlsRptOutgoing(Day, "example.com", "id1", "a", TlsRptReportState.Sending, "", 0, at, null, [], at);
        var both = await Task.WhenAll(store.ClaimAsync(claim), otherMember.ClaimAsync(claim with { Member = "b" }));
        Assert.Single(both, won => won);   // one member sends it
        Assert.Empty(await store.UnreportedAsync(Day, Day.AddDays(1)));

        var retry = claim with { State = TlsRptReportState.Retry, Attempts = 1, Payload = [1, 2, 3], PostTo = ["https://a.example/x", "https://b.example/y"], Detail = "HTTP status 503" };
        Assert.True(await store.UpdateAsync(retry, 0));
        Assert.False(await otherMember.UpdateAsync(retry with { Attempts = 2 }, 0));   // moved on already: the stale writer loses
        var stored = Assert.Single(await otherMember.ReportsAsync(Day));
        Assert.Equal(TlsRptReportState.Retry, stored.State);
        Assert.Equal([1, 2, 3], stored.Payload);
        Assert.Equal(["https://a.example/x", "https://b.example/y"], stored.PostTo);
        Assert.Equal(at, stored.NextAttempt);

        await store.PruneAsync(Day.AddDays(1));
        Assert.Empty(await store.CountsAsync(Day));
        Assert.Empty(await store.ReportsAsync(Day));
    }

    [Fact]
    public async Task The_SQLite_store_adds_counts_claims_once_and_prunes()
    {
        var path = Path.Combine(Path.GetTempPath(), "postern-tests", $"tlsrpt-store-{Guid.NewGuid():N}", "queue", "tlsrpt.db");
        using var store = new SqliteTlsRptStore(path);
        using var second = new SqliteTlsRptStore(path);
        await StoreBehavesAsync(store, second);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public async Task The_PostgreSQL_store_counts_each_members_sessions_once_and_one_member_claims()
    {
        var settings = ClusterStore.Settings(ClusterStore.CreateDatabase("tlsrpt"), "a");
        using var a = new PostgresTlsRptStore(PostgresDatabase.For(settings));
        using var b = new PostgresTlsRptStore(PostgresDatabase.For(settings));
        await StoreBehavesAsync(a, b);
    }

    [Fact]
    public void Receiving_settings_that_cannot_work_are_warned_about()
    {
        var config = PosternConfig.CreateDefault();
        config.TlsReporting.Mailbox = "tlsrpt@elsewhere.example";
        config.TlsReporting.HttpsEndpoint = true;
        config.Web.Enabled = false;
        var warnings = ConfigPreflight.Warnings(config);
        Assert.Contains(warnings, w => w.StartsWith("tlsReporting.mailbox tlsrpt@elsewhere.example: the Recipient Access Table does not accept it", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("tlsReporting.httpsEndpoint is on but the web interface is off", StringComparison.Ordinal));
        config.TlsReporting.Mailbox = "tlsrpt@localdomain";
        config.Web.Enabled = true;
        Assert.DoesNotContain(ConfigPreflight.Warnings(config), w => w.Contains("tlsReporting", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("sendHourUtc", "tlsReporting.sendHourUtc must be 0-23")]
    [InlineData("maxReportBytes", "tlsReporting.maxReportBytes must be 4096-104857600")]
    [InlineData("from", "tlsReporting.from 'not an address' is not a mail address")]
    [InlineData("mailbox", "tlsReporting.mailbox 'not an address' is not a mail address")]
    public void Bad_reporting_settings_are_refused(string field, string message)
    {
        var config = PosternConfig.CreateDefault();
        switch (field)
        {
            case "sendHourUtc": config.TlsReporting.SendHourUtc = 24; break;
            case "maxReportBytes": config.TlsReporting.MaxReportBytes = 10; break;
            case "from": config.TlsReporting.From = "not an address"; break;
            default: config.TlsReporting.Mailbox = "not an address"; break;
        }
        Assert.Contains(message, Assert.Throws<ConfigException>(config.Validate).Message);
    }

    [Fact]
    public async Task The_CLI_stages_the_settings_and_shows_what_was_counted_and_sent()
    {
        var config = TestWorld.Instance.NewConfig("tlsrpt-cli");
        var file = CliRuns.WriteConfig(config);
        var staged = CliRuns.Expect(0, "tlsrpt", "setup", "--enable", "on", "--organization", "Example Corp", "--send-hour", "3",
            "--mailbox", "tlsrpt@elsewhere.example", "--config", file);
        Assert.Contains("Changes are staged", staged);
        Assert.Contains("warning: tlsReporting.mailbox tlsrpt@elsewhere.example: the Recipient Access Table does not accept it", staged);
        Assert.Contains("tlsReporting.sendHourUtc must be 0-23", CliRuns.Expect(2, "tlsrpt", "setup", "--send-hour", "24", "--config", file));
        Assert.Contains("--enable 'maybe' is not on or off", CliRuns.Expect(2, "tlsrpt", "setup", "--enable", "maybe", "--config", file));
        CliRuns.Expect(0, "commit", "--config", file);

        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        using (var store = new SqliteTlsRptStore(SqliteTlsRptStore.PathFor(Path.GetFullPath(config.DataDirectory))))
            await store.AddAsync(Counts().Select(c => c with { Day = today }).ToList());
        var status = CliRuns.Expect(0, "tlsrpt", "status", "--config", file);
        Assert.Contains("TLS reporting is on: reports go out daily at 03:00 UTC as Example Corp", status);
        Assert.Matches(@"example\.com\s+tlsa/no-policy-found\s+successful\s+7\s+failed\s+7", status);
        Assert.Contains("starttls-not-supported         4 x mx3.example.com [198.51.100.3] from 192.0.2.1: STARTTLS not advertised", status);
        var json = JsonDocument.Parse(CliRuns.Expect(0, "tlsrpt", "status", "--json", "--config", file)).RootElement;
        Assert.True(json.GetProperty("enabled").GetBoolean());
        Assert.Equal(7, json.GetProperty("domains")[0].GetProperty("failed").GetInt64());
        Assert.Contains("is not YYYY-MM-DD", CliRuns.Expect(2, "tlsrpt", "status", "--day", "yesterday", "--config", file));
    }

    [Fact]
    public async Task A_record_listing_many_addresses_gets_the_report_at_the_first_five_only()
    {
        var config = TestWorld.Instance.NewConfig("tlsrpt-many", c => c.TlsReporting.Enabled = true);
        using var store = new SqliteTlsRptStore(SqliteTlsRptStore.PathFor(Path.GetFullPath(config.DataDirectory)));
        var none = TlsRptPolicy.For("rpt-many.test", new DaneHostPolicy(DaneHostKind.NotApplicable, [], "off"), null);
        await store.AddAsync([new TlsRptCount(Day, none, null, "", "", "", 1, "")]);
        var events = new MailEventStream();
        await using var queue = new Queue.SqliteQueueStore(Path.Combine(config.DataDirectory, "queue", "queue.db"));
        await using var reporter = new TlsRptReporter(() => config, store, queue, new DnsResolver(config.Dns, events), events, () => { },
            () => [], new VerificationOptions(), () => DateTimeOffset.UtcNow, "", background: false);
        var sent = Assert.Single(await reporter.RunAsync(new DateTimeOffset(Day.AddDays(1).ToDateTime(new TimeOnly(2, 0)), TimeSpan.Zero), CancellationToken.None));
        Assert.Equal(TlsRptReportState.Sent, sent.State);
        Assert.Contains("only the first 5 mailto: and https: addresses used (7 and 0 listed)", sent.Detail);
        var queued = await queue.ListAsync();
        Assert.Equal(5, queued.Count);   // one message per address: nobody sees the others
        Assert.Equal(Enumerable.Range(1, 5).Select(i => $"many{i}@reports.good.test"), queued.OrderBy(m => m.Mid).Select(m => Assert.Single(m.Recipients).Address));
    }

    [Theory]
    [InlineData("tlsrpt")]
    [InlineData("Alerts")]
    public void Listener_names_Postern_queues_its_own_mail_under_are_refused(string name)
    {
        var config = PosternConfig.CreateDefault();
        config.Listeners[0].Name = name;
        Assert.Contains($"listener name '{name}' is reserved", Assert.Throws<ConfigException>(config.Validate).Message);
    }

    [Fact]
    public async Task Two_members_running_the_daily_reports_at_once_send_each_report_once()
    {
        // Sessions both members counted about reports.good.test (whose record asks for mail only), in one cluster store.
        var settings = ClusterStore.Settings(ClusterStore.CreateDatabase("tlsrptrace"), "a");
        using var store = new PostgresTlsRptStore(PostgresDatabase.For(settings));
        var none = TlsRptPolicy.For("reports.good.test", new DaneHostPolicy(DaneHostKind.NotApplicable, [], "off"), null);
        await store.AddAsync([new TlsRptCount(Day, none, null, "", "", "", 3, "")]);
        await store.AddAsync([new TlsRptCount(Day, none, null, "", "", "", 2, "")]);
        var config = TestWorld.Instance.NewConfig("tlsrpt-race", c => c.TlsReporting.Enabled = true);
        var events = new MailEventStream();
        var dns = new DnsResolver(config.Dns, events);
        var queues = new[] { "a", "b" }.Select(m => new Queue.SqliteQueueStore(Path.Combine(config.DataDirectory, m, "queue.db"))).ToList();
        var reporters = queues.Select((q, i) => new TlsRptReporter(() => config, store, q, dns, events, () => { },
            () => [], new VerificationOptions(), () => DateTimeOffset.UtcNow, i == 0 ? "a" : "b", background: false)).ToList();
        var at = new DateTimeOffset(Day.AddDays(1).ToDateTime(new TimeOnly(config.TlsReporting.SendHourUtc, 5)), TimeSpan.Zero);
        var runs = await Task.WhenAll(reporters.Select(r => r.RunAsync(at, CancellationToken.None)));

        var sent = Assert.Single(runs.SelectMany(r => r));
        Assert.Equal(TlsRptReportState.Sent, sent.State);
        Assert.Contains("mail MID", sent.Detail);
        var queued = (await Task.WhenAll(queues.Select(q => q.ListAsync()))).SelectMany(l => l).ToList();
        var mail = Assert.Single(queued);   // one report mail between the two members
        Assert.Equal("tlsrpt@reports.good.test", Assert.Single(mail.Recipients).Address);
        Assert.Equal(TlsRptReporter.QueueListener, mail.Listener);
        Assert.Equal("", mail.Sender);
        Assert.Equal(sent.Member, Assert.Single(await store.ReportsAsync(Day)).Member);
        foreach (var r in reporters) await r.DisposeAsync();
        foreach (var q in queues) await q.DisposeAsync();
    }
}
