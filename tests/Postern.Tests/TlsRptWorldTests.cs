using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using MimeKit;
using Postern.Admin;
using Postern.Observability;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// SMTP TLS Reporting (RFC 8460) end to end in the test world: real sessions to DANE, MTA-STS
/// and policy-less receivers, good and broken (testworld/README.md, "TLS reporting"), counted
/// from the event stream; the daily run; the reports arriving in the loopback mailbox
/// (tlsrpt@reports.good.test) and at the loopback HTTPS collector, checked against the RFC's
/// schema and against the sessions the mail log shows. One class: the collector's address is one.
/// </summary>
public sealed class TlsRptWorldTests
{
    private readonly TestWorld _world = TestWorld.Instance;
    private const string Mailbox = "tlsrpt@reports.good.test";

    private PosternConfig ReportingConfig(string name, Action<PosternConfig>? tweak = null) => _world.NewConfig(name, c =>
    {
        c.DestinationControls.Default.Tls = TlsLevel.Preferred;
        c.DestinationControls.Default.MtaSts = MtaStsSupport.On;
        c.DestinationControls.Default.Dane = DaneSupport.Opportunistic;
        c.CertificateAuthorities.CustomListEnabled = true;
        c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        c.MtaSts.FetchTimeoutSeconds = 5;
        c.DefaultBounceProfile.InitialRetrySeconds = 600;
        c.DefaultBounceProfile.MaxRetrySeconds = 600;
        c.TlsReporting.Enabled = true;
        c.TlsReporting.OrganizationName = "Postern Test Org";
        c.TlsReporting.Contact = "mailto:tls-admin@sender.test";
        tweak?.Invoke(c);
    });

    /// <summary>The first send hour after today: the run that reports today.</summary>
    private static DateTimeOffset Tomorrow(PosternConfig c) => new(DateTime.UtcNow.Date.AddDays(1).AddHours(c.TlsReporting.SendHourUtc), TimeSpan.Zero);

    private static int Sessions(RunningGateway gw, string domain) =>
        Regex.Matches(gw.MailLogText(), $@"New SMTP DCID \d+ .*\(MX \S+ for {Regex.Escape(domain)}\)").Count;

    /// <summary>One message to the domain, delivered, its session (if any) counted into the store.</summary>
    private async Task DeliverOneAndCountAsync(RunningGateway gw, string domain, string subject)
    {
        var rcpt = TestWorld.Unique("rpt") + "@" + domain;
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, subject);
        _world.WaitForMail(rcpt);
        gw.WaitForLogLine("Message finished MID");
        await gw.Gateway.TlsSessions.FlushAsync();
    }

    private static void AssertSchema(string json)
    {
        var result = JsonSchema.FromText(TlsRptTests.ReportSchema).Evaluate(JsonDocument.Parse(json).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, json);
    }

    private static string Gunzip(byte[] gz)
    {
        using var input = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return System.Text.Encoding.UTF8.GetString(output.ToArray());
    }

    [Fact]
    public async Task Daily_reports_count_the_sessions_made_and_arrive_by_mail_and_by_POST()
    {
        await using var collector = new ReportCollector(_world);
        var config = ReportingConfig("tlsrpt-e2e");
        await using var gw = RunningGateway.Start(config);
        string Rcpt(string domain) => TestWorld.Unique("rpt") + "@" + domain;
        var delivered = new[] { "rpt-dane.test", "rpt-sts.test", "rpt-sts-testing.test", "rpt-none.test", "rpt-notls.test", "sts-404.test" };
        var sent = new Dictionary<string, string>();
        foreach (var domain in delivered.Append("rpt-dane-bad.test"))
        {
            sent[domain] = Rcpt(domain);
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", sent[domain], "tls reporting");
        }
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", Rcpt("rpt-dane.test"), "a second one");
        foreach (var domain in delivered) _world.WaitForMail(sent[domain]);
        gw.WaitForLogLine("Delayed:", $"To:<{sent["rpt-dane-bad.test"]}>");
        gw.WaitForLogLine("would fail for mx.expired.test (mode testing, delivering anyway)");
        await gw.Gateway.TlsSessions.FlushAsync();

        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var run = await gw.Gateway.TlsReports.RunAsync(Tomorrow(config), CancellationToken.None);
        Assert.All(run, r => Assert.Equal(TlsRptReportState.Sent, r.State));
        Assert.Equal(delivered.Append("rpt-dane-bad.test").Order(), run.Select(r => r.Domain).Distinct().Order());

        // By POST: one per domain, gzipped JSON under the RFC's media type, valid against the schema.
        TestWorld.WaitUntil(() => collector.Posts.Count >= 7, TimeSpan.FromSeconds(30), "seven POSTs");
        var posted = collector.Posts.ToDictionary(p => JsonNode.Parse(Gunzip(p.Body))!["policies"]![0]!["policy"]!["policy-domain"]!.GetValue<string>(), p => p);
        foreach (var p in posted.Values)
        {
            Assert.Equal("/v1/tlsrpt", p.Path);
            Assert.Equal("application/tlsrpt+gzip", p.ContentType);
            AssertSchema(Gunzip(p.Body));
        }

        JsonNode Report(string domain) => JsonNode.Parse(Gunzip(posted[domain].Body))!;
        JsonNode Policy(string domain) => Assert.Single(Report(domain)["policies"]!.AsArray())!;
        long Count(JsonNode p, string member) => p["summary"]![member]!.GetValue<long>();
        JsonNode Failure(JsonNode p) => Assert.Single(p["failure-details"]!.AsArray())!;

        // The counts are the sessions the mail log shows, and each outcome has its result type.
        var dane = Policy("rpt-dane.test");
        Assert.Equal("tlsa", dane["policy"]!["policy-type"]!.GetValue<string>());
        Assert.Matches("^3 1 1 [0-9a-f]{64}$", Assert.Single(dane["policy"]!["policy-string"]!.AsArray())!.GetValue<string>());
        Assert.Equal(Sessions(gw, "rpt-dane.test"), Count(dane, "total-successful-session-count"));
        Assert.Equal(0, Count(dane, "total-failure-session-count"));

        var daneBad = Policy("rpt-dane-bad.test");
        Assert.Equal("tlsa", daneBad["policy"]!["policy-type"]!.GetValue<string>());
        Assert.Equal(0, Count(daneBad, "total-successful-session-count"));
        Assert.Equal(Sessions(gw, "rpt-dane-bad.test"), Count(daneBad, "total-failure-session-count"));
        var f = Failure(daneBad);
        Assert.Equal("tlsa-invalid", f["result-type"]!.GetValue<string>());
        Assert.Equal("mx.dane-nomatch.test", f["receiving-mx-hostname"]!.GetValue<string>());
        Assert.Equal("127.0.4.1", f["receiving-ip"]!.GetValue<string>());
        Assert.StartsWith("127.", f["sending-mta-ip"]!.GetValue<string>());

        var sts = Policy("rpt-sts.test");
        Assert.Equal("sts", sts["policy"]!["policy-type"]!.GetValue<string>());
        Assert.Equal(["version: STSv1", "mode: enforce", "mx: mx.mxname.test", "max_age: 86400"],
            sts["policy"]!["policy-string"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(["mx.mxname.test"], sts["policy"]!["mx-host"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(Sessions(gw, "rpt-sts.test"), Count(sts, "total-successful-session-count"));

        var testing = Policy("rpt-sts-testing.test");
        Assert.Contains("mode: testing", testing["policy"]!["policy-string"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(Sessions(gw, "rpt-sts-testing.test"), Count(testing, "total-failure-session-count"));
        Assert.Equal("certificate-expired", Failure(testing)["result-type"]!.GetValue<string>());
        Assert.Equal("mx.expired.test", Failure(testing)["receiving-mx-hostname"]!.GetValue<string>());

        var none = Policy("rpt-none.test");
        Assert.Equal("no-policy-found", none["policy"]!["policy-type"]!.GetValue<string>());
        Assert.Equal(Sessions(gw, "rpt-none.test"), Count(none, "total-successful-session-count"));
        var notls = Policy("rpt-notls.test");
        Assert.Equal(Sessions(gw, "rpt-notls.test"), Count(notls, "total-failure-session-count"));
        Assert.Equal("starttls-not-supported", Failure(notls)["result-type"]!.GetValue<string>());

        // A policy that could not be fetched: every session under it fails with the fetch error, though the mail went.
        var unfetched = Policy("sts-404.test");
        Assert.Equal("sts", unfetched["policy"]!["policy-type"]!.GetValue<string>());
        Assert.Equal(Sessions(gw, "sts-404.test"), Count(unfetched, "total-failure-session-count"));
        Assert.Equal("sts-policy-fetch-error", Failure(unfetched)["result-type"]!.GetValue<string>());
        Assert.Contains("HTTP status 404", Failure(unfetched)["failure-reason-code"]!.GetValue<string>());

        var report = Report("rpt-dane.test");
        Assert.Equal("Postern Test Org", report["organization-name"]!.GetValue<string>());
        Assert.Equal("mailto:tls-admin@sender.test", report["contact-info"]!.GetValue<string>());
        Assert.Equal($"{today:yyyy-MM-dd}T00:00:00Z", report["date-range"]!["start-datetime"]!.GetValue<string>());

        // By mail: the same report, with the RFC 8460 §5.3 headers, in the loopback mailbox.
        foreach (var r in run)
        {
            var text = _world.WaitForMail(Mailbox, TimeSpan.FromSeconds(60), m => m.Contains(r.ReportId, StringComparison.Ordinal));
            var mail = MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)));
            Assert.Equal(r.Domain, mail.Headers["TLS-Report-Domain"]);
            Assert.Equal("postern.test", mail.Headers["TLS-Report-Submitter"]);
            Assert.Equal($"Report Domain: {r.Domain} Submitter: postern.test Report-ID: <{r.ReportId}>", mail.Subject);
            Assert.Equal("multipart/report", mail.Body!.ContentType.MimeType);
            Assert.Equal("tlsrpt", mail.Body.ContentType.Parameters["report-type"]);
            var part = Assert.Single(mail.BodyParts.OfType<MimePart>(), p => p.ContentType.MimeType == "application/tlsrpt+gzip");
            Assert.EndsWith(".json.gz", part.FileName);
            Assert.Matches($@"^postern\.test!{Regex.Escape(r.Domain)}!\d+!\d+![0-9a-f]+\.json\.gz$", part.FileName);
            using var gz = new MemoryStream();
            part.Content!.DecodeTo(gz);
            var json = Gunzip(gz.ToArray());
            AssertSchema(json);
            Assert.Equal(Gunzip(posted[r.Domain].Body), json);
        }

        // The report mail's own sessions (to reports.good.test, which asks for reports too) are never counted.
        TestWorld.WaitUntil(() => Sessions(gw, "reports.good.test") > 0, TimeSpan.FromSeconds(10), "report mail sessions");
        await gw.Gateway.TlsSessions.FlushAsync();
        Assert.Empty(await gw.Gateway.TlsReports.Store.CountsAsync(today, "reports.good.test"));
        Assert.DoesNotContain("of reports.good.test", gw.MailLogText());
        Assert.Empty(await gw.Gateway.TlsReports.RunAsync(Tomorrow(config).AddHours(1), CancellationToken.None));
        Assert.Contains("TLS report for rpt-dane.test", gw.MailLogText());

        // The same events feed the metrics.
        var metrics = gw.Gateway.Metrics.Render(new MailMetrics.Gauges(null, new Dictionary<string, int>(), [], 3, DateTimeOffset.UtcNow));
        Assert.Contains("postern_tls_report_sessions_total{policy_type=\"tlsa\",result=\"tlsa_invalid\"} " + Sessions(gw, "rpt-dane-bad.test"), metrics);
        Assert.Contains("postern_tls_reports_total{state=\"sent\"} 7", metrics);
    }

    [Fact]
    public async Task A_refused_POST_is_retried_later_with_the_same_report_and_counts_survive_a_restart()
    {
        await using var collector = new ReportCollector(_world, 503);
        var config = ReportingConfig("tlsrpt-retry");
        await using (var first = RunningGateway.Start(config))
        {
            var rcpt = TestWorld.Unique("rpt") + "@rpt-none.test";
            await RawSmtp.SubmitAsync(first.Private, "s@sender.test", rcpt, "before the restart");
            _world.WaitForMail(rcpt);
            first.WaitForLogLine("TLS report: session to mx.mxname.test under no policy (rpt-none.test): success");
        }
        await using var gw = RunningGateway.Start(config);
        var second = TestWorld.Unique("rpt") + "@rpt-none.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", second, "after the restart");
        _world.WaitForMail(second);
        await gw.Gateway.TlsSessions.FlushAsync();
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        // Both sessions, the one before the restart too (it was written when the first gateway stopped).
        Assert.Equal(2, (await gw.Gateway.TlsReports.Store.CountsAsync(today, "rpt-none.test")).Sum(c => c.Sessions));

        var at = Tomorrow(config);
        var first503 = Assert.Single(await gw.Gateway.TlsReports.RunAsync(at, CancellationToken.None));
        Assert.Equal(TlsRptReportState.Retry, first503.State);
        Assert.Contains("HTTP status 503", first503.Detail);
        Assert.Contains("mail MID", first503.Detail);
        Assert.Equal(1, collector.Requests);
        // Not before its time; then the same report again, by POST only (the mail is queued once).
        Assert.Empty(await gw.Gateway.TlsReports.RunAsync(at.AddMinutes(1), CancellationToken.None));
        var retried = Assert.Single(await gw.Gateway.TlsReports.RunAsync(at.AddMinutes(6), CancellationToken.None));
        Assert.Equal(TlsRptReportState.Sent, retried.State);
        var post = Assert.Single(collector.Posts);
        var json = JsonNode.Parse(Gunzip(post.Body))!;
        Assert.Equal(first503.ReportId, json["report-id"]!.GetValue<string>());
        Assert.Equal(2, json["policies"]![0]!["summary"]!["total-successful-session-count"]!.GetValue<long>());
        Assert.Contains("POST https://collector.rpt.test:8443/v1/tlsrpt accepted", retried.Detail);
        Assert.DoesNotContain("mail MID", retried.Detail);
    }

    [Fact]
    public async Task With_reporting_off_no_session_is_counted()
    {
        var config = ReportingConfig("tlsrpt-off", c => c.TlsReporting.Enabled = false);
        await using var gw = RunningGateway.Start(config);
        await DeliverOneAndCountAsync(gw, "rpt-none.test", "no reporting");
        Assert.DoesNotContain("TLS report: session", gw.MailLogText());
        Assert.Empty(await gw.Gateway.TlsReports.Store.CountsAsync(DateOnly.FromDateTime(DateTime.UtcNow)));
        Assert.Empty(await gw.Gateway.TlsReports.RunAsync(Tomorrow(config), CancellationToken.None));
    }

    [Fact]
    public async Task Report_mail_is_delivered_where_ordinary_mail_would_wait_for_DANE()
    {
        // rpt-relaxed.test wants its reports at tlsrpt@rpt-dane-bad.test, whose MX fails DANE.
        var config = ReportingConfig("tlsrpt-relaxed");
        await using var gw = RunningGateway.Start(config);
        var rcpt = TestWorld.Unique("rpt") + "@rpt-relaxed.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "to a domain that wants reports");
        _world.WaitForMail(rcpt);
        var ordinary = TestWorld.Unique("rpt") + "@rpt-dane-bad.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", ordinary, "ordinary mail waits");
        gw.WaitForLogLine("Delayed:", $"To:<{ordinary}>");
        await gw.Gateway.TlsSessions.FlushAsync();

        var sent = (await gw.Gateway.TlsReports.RunAsync(Tomorrow(config), CancellationToken.None)).Single(r => r.Domain == "rpt-relaxed.test");
        Assert.Equal(TlsRptReportState.Sent, sent.State);
        var mail = _world.WaitForMail("tlsrpt@rpt-dane-bad.test", TimeSpan.FromSeconds(30), m => m.Contains(sent.ReportId, StringComparison.Ordinal));
        Assert.Contains("TLS-Report-Domain: rpt-relaxed.test", mail);
        gw.WaitForLogLine("Destination Controls for domain (rpt-dane-bad.test): TLS Preferred (TLS report delivery (RFC 8460 §5.3))");
        Assert.Null(_world.TryWaitForMail(ordinary, TimeSpan.Zero));
    }

    [Fact]
    public async Task Sessions_through_an_SMTP_route_are_not_reported()
    {
        // A smarthost is not the domain's MX: its name and addresses are not the receiver's business.
        var config = ReportingConfig("tlsrpt-route", c =>
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "rpt-none.test", Hosts = { new SmtpRouteHost { Host = "mx.mxname.test" } } }));
        await using var gw = RunningGateway.Start(config);
        await DeliverOneAndCountAsync(gw, "rpt-none.test", "via a route");
        Assert.True(Sessions(gw, "rpt-none.test") > 0);
        Assert.DoesNotContain("TLS report: session", gw.MailLogText());
        Assert.Empty(await gw.Gateway.TlsReports.Store.CountsAsync(DateOnly.FromDateTime(DateTime.UtcNow)));
    }
}
