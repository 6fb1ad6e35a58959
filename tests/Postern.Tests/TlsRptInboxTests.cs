using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using MimeKit;
using Postern.Admin;
using Postern.Cluster;
using Postern.Observability;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The receiving side of SMTP TLS Reporting (RFC 8460): the parser, the inbox stores (SQLite
/// and the test world's PostgreSQL), `postern tlsrpt import|list|show`, the report mailbox
/// through a running gateway, POST /tlsrpt, and the web pages in chromium.
/// </summary>
public sealed class TlsRptInboxTests
{
    /// <summary>The structure of RFC 8460's example report (Appendix B): one MTA-STS policy, three failure lines.</summary>
    internal const string RfcExample = """
        {
          "organization-name": "Company-X",
          "date-range": { "start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z" },
          "contact-info": "sts-reporting@company-x.example",
          "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
          "policies": [{
            "policy": {
              "policy-type": "sts",
              "policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
              "policy-domain": "company-y.example",
              "mx-host": ["*.mail.company-y.example"]
            },
            "summary": { "total-successful-session-count": 5326, "total-failure-session-count": 303 },
            "failure-details": [{
              "result-type": "certificate-expired",
              "sending-mta-ip": "2001:db8:abcd:0012::1",
              "receiving-mx-hostname": "mx1.mail.company-y.example",
              "failed-session-count": 100
            }, {
              "result-type": "starttls-not-supported",
              "sending-mta-ip": "2001:db8:abcd:0013::1",
              "receiving-mx-hostname": "mx2.mail.company-y.example",
              "receiving-ip": "203.0.113.56",
              "failed-session-count": 200,
              "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
            }, {
              "result-type": "validation-failure",
              "sending-mta-ip": "198.51.100.62",
              "receiving-ip": "203.0.113.58",
              "receiving-mx-hostname": "mx-backup.mail.company-y.example",
              "failed-session-count": 3,
              "failure-error-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
            }]
          }]
        }
        """;

    /// <summary>A second, clean report from another organisation about another of our domains.</summary>
    private const string CleanReport = """
        {"organization-name":"Other Org","date-range":{"start-datetime":"2026-11-29T00:00:00Z","end-datetime":"2026-11-29T23:59:59Z"},
         "contact-info":"mailto:tlsrpt@other.example","report-id":"other-1",
         "policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"company-z.example"},
                      "summary":{"total-successful-session-count":12,"total-failure-session-count":0}}]}
        """;

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.SmallestSize)) gzip.Write(data);
        return output.ToArray();
    }

    private static byte[] Gzip(string text) => Gzip(Encoding.UTF8.GetBytes(text));

    /// <summary>The example with one member changed (or removed, when value is null) at a path of names and indexes.</summary>
    private static string Changed(Action<JsonObject> change)
    {
        var node = JsonNode.Parse(RfcExample)!.AsObject();
        change(node);
        return node.ToJsonString();
    }

    private static JsonObject Policy(JsonObject root) => root["policies"]![0]!.AsObject();

    private static string Refusal(string payload) => Refusal(Encoding.UTF8.GetBytes(payload));

    private static string Refusal(byte[] payload) => Assert.Throws<TlsRptParseException>(() => TlsRptReader.Parse(payload)).Message;

    private static void AssertIsRfcExample(ReceivedTlsReport r)
    {
        Assert.Equal("Company-X", r.OrganizationName);
        Assert.Equal(new DateTimeOffset(2016, 4, 1, 0, 0, 0, TimeSpan.Zero), r.Start);
        Assert.Equal(new DateTimeOffset(2016, 4, 1, 23, 59, 59, TimeSpan.Zero), r.End);
        Assert.Equal("sts-reporting@company-x.example", r.ContactInfo);
        Assert.Equal("5065427c-23d3-47ca-b6e0-946ea0e8c4be", r.ReportId);
        var p = Assert.Single(r.Policies);
        Assert.Equal("sts", p.PolicyType);
        Assert.Equal(["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"], p.PolicyStrings);
        Assert.Equal("company-y.example", p.PolicyDomain);
        Assert.Equal(["*.mail.company-y.example"], p.MxHosts);
        Assert.Equal((5326, 303), (p.SuccessfulSessions, p.FailedSessions));
        Assert.Equal(["certificate-expired", "starttls-not-supported", "validation-failure"], p.Failures.Select(f => f.ResultType));
        Assert.Equal([100L, 200L, 3L], p.Failures.Select(f => f.FailedSessionCount));
        Assert.Null(p.Failures[0].ReceivingIp);
        Assert.Equal("203.0.113.56", p.Failures[1].ReceivingIp);
        Assert.StartsWith("https://reports.company-x.example/", p.Failures[1].AdditionalInformation);
        Assert.Equal("mx-backup.mail.company-y.example", p.Failures[2].ReceivingMxHostname);
        Assert.Equal("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED", p.Failures[2].FailureReasonCode);   // the example's "failure-error-code"
        Assert.Equal(["company-y.example"], r.PolicyDomains);
    }

    [Fact]
    public void The_parser_reads_the_RFC_example_plain_and_gzipped()
    {
        var schema = JsonSchema.FromText(TlsRptSchema.Report).Evaluate(JsonDocument.Parse(RfcExample).RootElement);
        Assert.True(schema.IsValid);   // the fixture has the §4.4 structure

        var plain = TlsRptReader.Parse(Encoding.UTF8.GetBytes(RfcExample));
        AssertIsRfcExample(plain.Report);
        Assert.Equal(RfcExample, plain.Json);

        var gzipped = Gzip(RfcExample);
        Assert.True(TlsRptReader.IsGzip(gzipped));
        var fromGzip = TlsRptReader.Parse(gzipped);
        AssertIsRfcExample(fromGzip.Report);
        Assert.Equal(RfcExample, fromGzip.Json);

        // A byte-order mark and a lone mx-host string (some senders write one) are taken.
        var lenient = TlsRptReader.Parse([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(Changed(r => Policy(r)["policy"]!["mx-host"] = "mx.company-y.example"))]);
        Assert.Equal(["mx.company-y.example"], lenient.Report.Policies[0].MxHosts);
    }

    [Fact]
    public void The_parser_refuses_what_is_not_a_report_and_names_the_member()
    {
        Assert.Contains("empty", Refusal(""));
        Assert.Contains("not JSON", Refusal("this is not json"));
        Assert.Contains("not JSON", Refusal(RfcExample[..200]));
        Assert.Contains("must be a JSON object, not an array", Refusal("[]"));
        Assert.Contains("not UTF-8", Refusal([(byte)'{', 0xFF, 0xFE, (byte)'}']));
        Assert.Contains("not valid gzip", Refusal([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));

        Assert.Equal("organization-name is missing", Refusal(Changed(r => r.Remove("organization-name"))));
        Assert.Equal("report-id is missing", Refusal(Changed(r => r.Remove("report-id"))));
        Assert.Equal("policies[0].summary is missing", Refusal(Changed(r => Policy(r).Remove("summary"))));
        Assert.Equal("policies[0].policy.policy-domain is missing", Refusal(Changed(r => Policy(r)["policy"]!.AsObject().Remove("policy-domain"))));
        Assert.Equal("policies[0].failure-details[1].failed-session-count is missing",
            Refusal(Changed(r => Policy(r)["failure-details"]![1]!.AsObject().Remove("failed-session-count"))));
        Assert.Equal("contact-info is empty", Refusal(Changed(r => r["contact-info"] = "")));

        // Wrong types, each named with its path.
        Assert.Equal("policies[0].summary.total-failure-session-count must be a number, not a string",
            Refusal(Changed(r => Policy(r)["summary"]!["total-failure-session-count"] = "303")));
        Assert.Equal("policies must be an array, not a string", Refusal(Changed(r => r["policies"] = "all of them")));
        Assert.Equal("date-range must be an object, not a number", Refusal(Changed(r => r["date-range"] = 7)));
        Assert.Equal("organization-name must be a string, not true or false", Refusal(Changed(r => r["organization-name"] = true)));
        Assert.Equal("policies[0].policy.policy-string[1] must be a string, not a number", Refusal(Changed(r => Policy(r)["policy"]!["policy-string"]![1] = 5)));
        Assert.Contains("policies[0].failure-details[0].failed-session-count must be a whole number", Refusal(Changed(r => Policy(r)["failure-details"]![0]!["failed-session-count"] = -1)));
        Assert.Contains("must be a whole number", Refusal(Changed(r => Policy(r)["summary"]!["total-successful-session-count"] = 1.5)));
        Assert.Contains("date-range.start-datetime '2016-04-01' is not an RFC 3339 date-time", Refusal(Changed(r => r["date-range"]!["start-datetime"] = "2016-04-01")));
        Assert.Equal("date-range.end-datetime is before start-datetime", Refusal(Changed(r => r["date-range"]!["end-datetime"] = "2016-03-31T00:00:00Z")));
        Assert.Contains("policy-type 'dane' is not tlsa, sts or no-policy-found", Refusal(Changed(r => Policy(r)["policy"]!["policy-type"] = "dane")));

        // Peer text in a reason is escaped: no terminal escape or line break survives into a log line or a reply.
        var hostile = Refusal(Changed(r => Policy(r)["policy"]!["policy-type"] = "\u001b[31mred\r\nInjected: line\u202E"));
        Assert.DoesNotContain('\u001b', hostile);
        Assert.DoesNotContain('\n', hostile);
        Assert.DoesNotContain('\u202E', hostile);
        Assert.Contains(@"\x1B[31mred\x0D\x0AInjected", hostile);
    }

    [Fact]
    public void The_parser_stops_a_gzip_bomb_at_the_decompression_cap_and_refuses_oversized_payloads()
    {
        // 30 MB of JSON white space compresses to a few tens of kilobytes.
        var bomb = Gzip(Encoding.ASCII.GetBytes("{" + new string(' ', 30 * 1024 * 1024) + "}"));
        Assert.True(bomb.Length < 100_000);
        Assert.Equal($"the report decompresses to more than {TlsRptReader.MaxJsonBytes} bytes", Refusal(bomb));

        var huge = new byte[TlsRptReader.MaxPayloadBytes + 1];
        huge.AsSpan().Fill((byte)' ');
        Assert.Equal($"the report is larger than {TlsRptReader.MaxPayloadBytes} bytes", Refusal(huge));
    }

    /// <summary>A report mail as RFC 8460 §5.3 describes it: multipart/report, a text part, the gzipped report, the two headers.</summary>
    internal static MimeMessage ReportMail(string json, string recipient, string mediaType = "application/tlsrpt+gzip",
        string fileName = "company-x.example!company-y.example!1459468800!1459555199.json.gz")
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("noreply-smtp-tls-reporting@company-x.example"));
        message.To.Add(MailboxAddress.Parse(recipient));
        message.Subject = "Report Domain: company-y.example Submitter: company-x.example Report-ID: <5065427c-23d3@company-x.example>";
        message.Headers.Add("TLS-Report-Domain", "company-y.example");
        message.Headers.Add("TLS-Report-Submitter", "company-x.example");
        var report = new MultipartReport("tlsrpt")
        {
            new TextPart("plain") { Text = "This is an aggregate TLS report from company-x.example" },
            new MimePart(mediaType)
            {
                Content = new MimeContent(new MemoryStream(mediaType.EndsWith("json", StringComparison.Ordinal) ? Encoding.UTF8.GetBytes(json) : Gzip(json))),
                ContentDisposition = new ContentDisposition(ContentDisposition.Attachment),
                ContentTransferEncoding = ContentEncoding.Base64,
                FileName = fileName,
            },
        };
        message.Body = report;
        return message;
    }

    private static byte[] Bytes(MimeMessage message)
    {
        using var stream = new MemoryStream();
        message.WriteTo(stream);
        return stream.ToArray();
    }

    [Fact]
    public void A_mailed_report_is_found_by_its_media_type_with_the_submitter_headers()
    {
        var mail = TlsRptReader.FromMail(Bytes(ReportMail(RfcExample, "tlsrpt@good.test")));
        AssertIsRfcExample(mail.Parsed.Report);
        Assert.Equal("company-y.example", mail.ReportDomain);
        Assert.Equal("company-x.example", mail.Submitter);

        var json = TlsRptReader.FromMail(Bytes(ReportMail(RfcExample, "tlsrpt@good.test", "application/tlsrpt+json", "report.json")));
        AssertIsRfcExample(json.Parsed.Report);

        // Lenient: a gzip part named *.json.gz is taken too; a gzip part with another name is not a report part.
        AssertIsRfcExample(TlsRptReader.FromMail(Bytes(ReportMail(RfcExample, "tlsrpt@good.test", "application/gzip", "report.json.gz"))).Parsed.Report);
        var notReport = Assert.Throws<TlsRptParseException>(() => TlsRptReader.FromMail(Bytes(ReportMail(RfcExample, "tlsrpt@good.test", "application/gzip", "photo.bin"))));
        Assert.Contains("has no application/tlsrpt+gzip or application/tlsrpt+json part", notReport.Message);

        // A report part that is not a report: the parser's reason, as a typed error.
        var broken = Assert.Throws<TlsRptParseException>(() => TlsRptReader.FromMail(Bytes(ReportMail("{\"policies\": []}", "tlsrpt@good.test"))));
        Assert.Equal("date-range is missing", broken.Message);
    }

    /// <summary>What both stores must do alike: one row per report, duplicates stored once, filters, the whole report back.</summary>
    private static void AssertInboxRoundTrip(ITlsRptInbox inbox)
    {
        var now = DateTimeOffset.UtcNow;
        var example = TlsRptReader.Parse(Gzip(RfcExample));
        var first = inbox.Add(example, new TlsRptOrigin("mail MID 7 from <>", "company-y.example", "company-x.example"), now);
        Assert.False(first.Duplicate);
        var again = inbox.Add(example, new TlsRptOrigin("https from 192.0.2.1"), now.AddMinutes(1));
        Assert.Equal(new TlsRptStored(first.Id, true), again);   // the same report-id from the same organisation: once
        var other = inbox.Add(TlsRptReader.Parse(Encoding.UTF8.GetBytes(CleanReport)), new TlsRptOrigin("import of other.json"), now.AddMinutes(2));
        Assert.False(other.Duplicate);
        Assert.True(other.Id > first.Id);

        var all = inbox.List(new TlsRptQuery());
        Assert.Equal([other.Id, first.Id], all.Select(r => r.Id));   // newest first
        var row = all[1];
        Assert.Equal(("Company-X", "mail MID 7 from <>", "company-x.example"), (row.Organization, row.Via, row.Submitter));
        Assert.Equal(["company-y.example"], row.PolicyDomains);
        Assert.Equal((5326L, 303L), (row.SuccessfulSessions, row.FailedSessions));
        Assert.Equal(new DateTimeOffset(2016, 4, 1, 0, 0, 0, TimeSpan.Zero), row.Start);
        Assert.Equal(now.ToUnixTimeMilliseconds(), row.ReceivedAt.ToUnixTimeMilliseconds());

        Assert.Equal([first.Id], inbox.List(new TlsRptQuery(PolicyDomain: "company-y.example")).Select(r => r.Id));
        Assert.Equal([other.Id], inbox.List(new TlsRptQuery(PolicyDomain: "COMPANY-Z.example")).Select(r => r.Id));
        Assert.Empty(inbox.List(new TlsRptQuery(PolicyDomain: "y.example")));   // a whole name, not a suffix
        Assert.Empty(inbox.List(new TlsRptQuery(PolicyDomain: "company_y.example")));   // LIKE's wildcard is escaped
        Assert.Equal([first.Id], inbox.List(new TlsRptQuery(FailedOnly: true)).Select(r => r.Id));
        Assert.Equal([other.Id], inbox.List(new TlsRptQuery(Since: now.AddMinutes(1))).Select(r => r.Id));
        Assert.Single(inbox.List(new TlsRptQuery(Limit: 1)));

        var stored = inbox.Get(first.Id)!;
        AssertIsRfcExample(stored.Report);
        Assert.Equal(RfcExample, stored.RawJson);
        Assert.Equal("company-y.example", stored.ReportDomain);
        Assert.Null(inbox.Get(other.Id + 1000));
    }

    [Fact]
    public void The_sqlite_inbox_keeps_each_report_once_and_lists_it_by_domain_and_failure()
    {
        var data = Path.Combine(Path.GetTempPath(), "postern-tests", $"tlsrpt-sqlite-{Guid.NewGuid():N}");
        var path = SqliteTlsRptInbox.PathFor(data);
        using (var inbox = new SqliteTlsRptInbox(path)) AssertInboxRoundTrip(inbox);
        Assert.Equal(Path.Combine(data, "queue", "tlsrpt-received.db"), path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var reopened = new SqliteTlsRptInbox(path);   // durable: a restart finds them
        Assert.Equal(2, reopened.List(new TlsRptQuery()).Count);
    }

    [Fact]
    public void The_postgres_inbox_keeps_each_report_once_and_lists_it_by_domain_and_failure()
    {
        _ = TestWorld.Instance;   // the world's PostgreSQL
        var database = ClusterStore.CreateDatabase("tlsrpt");
        var config = TestWorld.Instance.NewConfig("tlsrpt-pg", c => c.Cluster = ClusterStore.Settings(database, "m1"));
        using (var inbox = Stores.TlsRptInbox(config))
        {
            Assert.IsType<PostgresTlsRptInbox>(inbox);
            AssertInboxRoundTrip(inbox);
        }
        using var second = Stores.TlsRptInbox(config);   // another member sees the same reports
        Assert.Equal(2, second.List(new TlsRptQuery()).Count);
    }

    [Fact]
    public void The_cli_imports_a_gzipped_report_and_a_mail_and_lists_and_shows_them()
    {
        var config = TestWorld.Instance.NewConfig("tlsrpt-cli");
        var file = CliRuns.WriteConfig(config);
        var gz = Path.Combine(config.DataDirectory, "company-x.example!company-y.example!1459468800!1459555199.json.gz");
        File.WriteAllBytes(gz, Gzip(RfcExample));
        var eml = Path.Combine(config.DataDirectory, "report.eml");
        File.WriteAllBytes(eml, Bytes(ReportMail(CleanReport, "tlsrpt@good.test")));
        var bad = Path.Combine(config.DataDirectory, "bad.json");
        File.WriteAllText(bad, Changed(r => r.Remove("policies")));

        Assert.Contains("No TLS reports have been received.", CliRuns.Expect(0, "tlsrpt", "list", "--config", file));
        Assert.Contains("Stored as TLS report 1.", CliRuns.Expect(0, "tlsrpt", "import", gz, "--config", file));
        Assert.Contains("Already stored as TLS report 1", CliRuns.Expect(0, "tlsrpt", "import", gz, "--config", file));
        Assert.Contains("Stored as TLS report 2.", CliRuns.Expect(0, "tlsrpt", "import", eml, "--config", file));
        Assert.Contains("bad.json is not a TLS report: policies is missing", CliRuns.Expect(1, "tlsrpt", "import", bad, "--config", file));

        var list = CliRuns.Expect(0, "tlsrpt", "list", "--config", file);
        var lines = list.Split('\n');
        string Row(long id) => lines.Single(l => l.StartsWith($"{id,-6} ", StringComparison.Ordinal));
        var row = Row(1);
        foreach (var part in new[] { "Company-X", "company-y.example", "2016-04-01 00:00:00 to 2016-04-01 23:59:59", "5326", "303" }) Assert.Contains(part, row);
        Assert.Contains("Other Org", Row(2));
        Assert.True(Array.IndexOf(lines, Row(2)) < Array.IndexOf(lines, row));   // newest first
        var failedOnly = JsonDocument.Parse(CliRuns.Expect(0, "tlsrpt", "list", "--failed", "--json", "--config", file)).RootElement;
        Assert.Equal(1, failedOnly.GetArrayLength());
        Assert.Equal("Company-X", failedOnly[0].GetProperty("organization").GetString());
        Assert.Equal(303, failedOnly[0].GetProperty("failedSessions").GetInt64());

        var show = CliRuns.Expect(0, "tlsrpt", "show", "1", "--config", file);
        foreach (var part in new[]
        {
            "Organization: Company-X", "Report-ID:    5065427c-23d3-47ca-b6e0-946ea0e8c4be", "Policy sts for company-y.example: 5326 successful, 303 failed sessions",
            "policy:  version: STSv1 | mode: testing | mx: *.mail.company-y.example | max_age: 86400", "mx-host: *.mail.company-y.example",
            "failure certificate-expired: 100 session(s); sending MTA 2001:db8:abcd:0012::1, receiving MX mx1.mail.company-y.example, receiving IP -",
            "failure starttls-not-supported: 200 session(s)", "receiving IP 203.0.113.56",
            "failure validation-failure: 3 session(s)", "reason code X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED", "via import of company-x.example!company-y.example",
        })
            Assert.Contains(part, show);
        var mailed = CliRuns.Expect(0, "tlsrpt", "show", "2", "--config", file);
        Assert.Contains("TLS-Report-Submitter: company-x.example", mailed);
        Assert.Contains("TLS-Report-Domain:    company-y.example", mailed);
        Assert.Contains("Policy no-policy-found for company-z.example: 12 successful, 0 failed sessions", mailed);

        var json = JsonDocument.Parse(CliRuns.Expect(0, "tlsrpt", "show", "1", "--json", "--config", file)).RootElement;
        Assert.Equal("5065427c-23d3-47ca-b6e0-946ea0e8c4be", json.GetProperty("report-id").GetString());
        Assert.Equal("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED", json.GetProperty("policies")[0].GetProperty("failure-details")[2].GetProperty("failure-error-code").GetString());
        Assert.Contains("no received TLS report has that number", CliRuns.Expect(1, "tlsrpt", "show", "99", "--config", file));
    }

    [Fact]
    public async Task Report_mail_to_the_mailbox_is_stored_and_logged_never_sent_on_or_bounced()
    {
        var config = TestWorld.Instance.HoldingConfig("tlsrpt-mail", c => c.TlsReporting.Mailbox = "tlsrpt@good.test");
        await using var gw = RunningGateway.Start(config);

        // The mailbox matches in any case; report mail usually comes with a null sender.
        await SubmitAsync(gw, "", "TLSRPT@good.test", Bytes(ReportMail(RfcExample, "TLSRPT@good.test")));
        var received = gw.WaitForLogLine("TLS report 1 received via mail MID");
        foreach (var part in new[] { "Company-X", "report-id 5065427c-23d3-47ca-b6e0-946ea0e8c4be", "for company-y.example", "5326 successful, 303 failed sessions" })
            Assert.Contains(part, received);
        gw.WaitForLogLine("Response 'stored as TLS report 1'");
        var mid = received.Split("via mail MID ")[1].Split(' ')[0];
        gw.WaitForLogLine($"Message finished MID {mid} done");
        var stored = gw.Gateway.ReceivedTlsReports.Inbox.Get(1)!;
        Assert.Equal("company-x.example", stored.Summary.Submitter);
        Assert.Equal("company-y.example", stored.ReportDomain);
        AssertIsRfcExample(stored.Report);

        // A copy is stored once; a mail without a report is discarded with a warning, not bounced to its sender.
        await SubmitAsync(gw, "reporter@sender.test", "tlsrpt@good.test", Bytes(ReportMail(RfcExample, "tlsrpt@good.test")));
        gw.WaitForLogLine("TLS report 1 received again via mail MID", "stored once, this copy discarded");
        await SubmitAsync(gw, "someone@sender.test", "tlsrpt@good.test", Encoding.ASCII.GetBytes("Subject: hello\r\n\r\nnot a report\r\n"));
        var warning = gw.WaitForLogLine("Warning:", "to the TLS report mailbox: not a TLS report: the mail has no application/tlsrpt+gzip");
        var discardedMid = warning.Split("MID ")[1].Split(' ')[0];
        gw.WaitForLogLine($"MID {discardedMid} RID [0] Response 'not a TLS report:", "discarded'");
        gw.WaitForLogLine($"Message finished MID {discardedMid} done");
        var log = gw.MailLogText();
        Assert.DoesNotContain("Bounced:", log);
        Assert.DoesNotContain("generated for bounce", log);
        Assert.DoesNotContain("Delayed:", log);   // never handed to outbound delivery (it would defer on this world's closed port)
        Assert.DoesNotContain("New SMTP DCID", log);
        Assert.Single(gw.Gateway.ReceivedTlsReports.Inbox.List(new TlsRptQuery()));
    }

    /// <summary>One SMTP transaction with a whole message (dot-stuffed), on the public listener.</summary>
    private static async Task SubmitAsync(RunningGateway gw, string sender, string recipient, byte[] message)
    {
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        Assert.StartsWith("220", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.CommandAsync("EHLO reporter.test"));
        Assert.StartsWith("250", await c.CommandAsync($"MAIL FROM:<{sender}>"));
        Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{recipient}>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        var text = Encoding.ASCII.GetString(message).Replace("\r\n", "\n").Replace("\n", "\r\n");
        var stuffed = string.Join("\r\n", text.Split("\r\n").Select(l => l.StartsWith('.') ? "." + l : l));
        Assert.StartsWith("250", await c.CommandAsync(stuffed.TrimEnd('\r', '\n') + "\r\n."));
        await c.CommandAsync("QUIT");
    }

    private static HttpClient Https(IPEndPoint endpoint) => new(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true, AllowAutoRedirect = false })
    {
        BaseAddress = new Uri($"https://{endpoint}"),
        Timeout = TimeSpan.FromSeconds(60),
    };

    private static ByteArrayContent Body(byte[] bytes, string type)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
        return content;
    }

    [Fact]
    public async Task Reports_posted_over_https_are_stored_and_bad_ones_answered_with_the_reason()
    {
        var config = TestWorld.Instance.HoldingConfig("tlsrpt-https", c =>
        {
            c.Web.Enabled = true;
            c.Web.Port = 0;
            c.TlsReporting.HttpsEndpoint = true;
        });
        var file = CliRuns.WriteConfig(config);
        await using var gw = RunningGateway.Start(config);
        using var http = Https(gw.Gateway.Web!.Endpoint);   // no login, no cookie: senders are other MTAs

        var created = await http.PostAsync("/tlsrpt", Body(Gzip(RfcExample), "application/tlsrpt+gzip"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("stored as TLS report 1", (await created.Content.ReadAsStringAsync()).Trim());
        gw.WaitForLogLine("TLS report 1 received via https from 127.0.0.1", "Company-X");

        var retried = await http.PostAsync("/tlsrpt", Body(Encoding.UTF8.GetBytes(RfcExample), "application/tlsrpt+json; charset=utf-8"));
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal("already stored as TLS report 1", (await retried.Content.ReadAsStringAsync()).Trim());

        var invalid = await http.PostAsync("/tlsrpt", Body(Gzip(Changed(r => Policy(r)["summary"]!["total-failure-session-count"] = "many")), "application/tlsrpt+gzip"));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal("not a TLS report: policies[0].summary.total-failure-session-count must be a number, not a string", (await invalid.Content.ReadAsStringAsync()).Trim());
        gw.WaitForLogLine("Warning: TLS report by HTTPS from 127.0.0.1 refused: policies[0].summary.total-failure-session-count");

        var wrongType = await http.PostAsync("/tlsrpt", Body(Encoding.UTF8.GetBytes(RfcExample), "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);
        // Refused on its Content-Length, before a byte of it is read (the client waits for 100-continue, as large uploads should).
        using var large = new HttpRequestMessage(HttpMethod.Post, "/tlsrpt") { Content = Body(new byte[TlsRptReader.MaxPayloadBytes + 1], "application/tlsrpt+gzip") };
        large.Headers.ExpectContinue = true;
        var tooLarge = await http.SendAsync(large);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        var bomb = await http.PostAsync("/tlsrpt", Body(Gzip(Encoding.ASCII.GetBytes("{" + new string(' ', 25 * 1024 * 1024) + "}")), "application/tlsrpt+gzip"));
        Assert.Equal(HttpStatusCode.BadRequest, bomb.StatusCode);
        Assert.Contains("decompresses to more than", await bomb.Content.ReadAsStringAsync());

        // What arrived by HTTPS is what `tlsrpt show` prints.
        var show = CliRuns.Expect(0, "tlsrpt", "show", "1", "--config", file);
        Assert.Contains("via https from 127.0.0.1", show);
        Assert.Contains("failure validation-failure: 3 session(s)", show);
        Assert.Single(gw.Gateway.ReceivedTlsReports.Inbox.List(new TlsRptQuery()));

        // Switched off by a committed version: the endpoint is gone at once, without a restart.
        using (var store = Stores.Config(config))
        {
            var service = Stores.ConfigService(store, config);
            new TlsReportingService(service, config, "test").Change(t => t.HttpsEndpoint = false);
            service.Commit("no HTTPS reports", "test");
        }
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version", "applied (committed by test: no HTTPS reports)");
        var gone = await http.PostAsync("/tlsrpt", Body(Gzip(CleanReport), "application/tlsrpt+gzip"));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Single(gw.Gateway.ReceivedTlsReports.Inbox.List(new TlsRptQuery()));
    }

    private static string InitialPassword(PosternConfig config) =>
        File.ReadAllText(Path.Combine(config.DataDirectory, "web", "initial-admin-password")).Split(' ', 2)[1].Trim();

    [Fact]
    public async Task The_web_page_shows_who_failed_to_reach_us_and_the_settings_form_stages_a_change()
    {
        var config = TestWorld.Instance.HoldingConfig("tlsrpt-web", c =>
        {
            c.Web.Enabled = true;
            c.Web.Port = 0;
        });
        var file = CliRuns.WriteConfig(config);
        await using var gw = RunningGateway.Start(config);
        gw.Gateway.ReceivedTlsReports.Accept(TlsRptReader.Parse(Gzip(RfcExample)), new TlsRptOrigin("mail MID 1 from <>", "company-y.example", "company-x.example"));
        gw.Gateway.ReceivedTlsReports.Accept(TlsRptReader.Parse(Encoding.UTF8.GetBytes(CleanReport)), new TlsRptOrigin("https from 192.0.2.7"));
        // Our own side: sessions counted today and a report of yesterday that waits for a retry.
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var none = Postern.Policy.TlsRptPolicy.For("rpt-none.test", new Postern.Policy.DaneHostPolicy(Postern.Policy.DaneHostKind.NotApplicable, [], "off"), null);
        await gw.Gateway.TlsReports.Store.AddAsync([
            new TlsRptCount(today, none, null, "", "", "", 5, ""),
            new TlsRptCount(today, none, Postern.Policy.TlsRptResultType.StartTlsNotSupported, "127.0.5.1", "mx.notls.test", "127.0.4.9", 2, "STARTTLS not advertised")]);
        var now = DateTimeOffset.UtcNow;
        await gw.Gateway.TlsReports.Store.ClaimAsync(new TlsRptOutgoing(today.AddDays(-1), "rpt-dane.test", "id-1", "", TlsRptReportState.Retry,
            "POST https://collector.rpt.test:8443/v1/tlsrpt: HTTP status 503", 1, now, null, [], now));
        await using var b = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(The_web_page_shows_who_failed_to_reach_us_and_the_settings_form_stages_a_change));
        await b.LoginAsync("admin", InitialPassword(config));

        await b.GoAsync("/tlsreports");
        var first = await b.Page.InnerTextAsync("#reports tr[data-id='1']");
        foreach (var part in new[] { "Company-X", "company-y.example", "5326", "303" }) Assert.Contains(part, first);
        Assert.Contains("Other Org", await b.Page.InnerTextAsync("#reports tr[data-id='2']"));
        var failures = await b.Page.InnerTextAsync("#failures");
        foreach (var part in new[] { "certificate-expired", "mx1.mail.company-y.example", "starttls-not-supported", "200", "validation-failure" }) Assert.Contains(part, failures);
        var sentToday = await b.Page.InnerTextAsync("#sent-today");
        foreach (var part in new[] { "rpt-none.test", "5", "2" }) Assert.Contains(part, sentToday);
        var sent = await b.Page.InnerTextAsync("#sent-reports");
        foreach (var part in new[] { "rpt-dane.test", "Retry", "HTTP status 503" }) Assert.Contains(part, sent);
        await b.Page.FillAsync("#domain", "company-z.example");
        await b.Page.ClickAsync("#filter-button");
        await b.ShotAsync("filtered");
        Assert.Equal(1, await b.Page.Locator("#reports tr[data-id]").CountAsync());
        Assert.Equal(1, await b.Page.Locator("#reports tr[data-id='2']").CountAsync());

        await b.GoAsync("/tlsreports?id=1");
        Assert.Contains("Company-X", await b.Page.InnerTextAsync("#organization"));
        Assert.Contains("company-x.example", await b.Page.InnerTextAsync("#report"));   // the TLS-Report-Submitter header
        var detail = await b.Page.InnerTextAsync("main");
        foreach (var part in new[] { "Policy sts for company-y.example", "version: STSv1", "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED", "203.0.113.58", "mx-backup.mail.company-y.example" })
            Assert.Contains(part, detail);

        // Settings: a refused value stages nothing; a mailbox outside the RAT is staged with a warning; then a good one, committed.
        await b.GoAsync("/tlsreports/settings");
        await b.Page.FillAsync("#Form_Mailbox", "not-an-address");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("settings-refused");
        Assert.Contains("tlsReporting.mailbox 'not-an-address' is not a mail address", await b.Page.InnerTextAsync("#problems"));
        Assert.False(await b.Page.IsVisibleAsync("#uncommitted"));

        await b.Page.FillAsync("#Form_Mailbox", "tlsrpt@elsewhere.test");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("settings-outside-rat");
        Assert.Contains("The TLS reporting settings are staged", await b.Page.InnerTextAsync("#notice"));
        Assert.Contains("the Recipient Access Table does not accept it", await b.Page.InnerTextAsync(".tlsrpt-warning"));
        Assert.True(await b.Page.IsVisibleAsync("#not-in-force"));

        await b.Page.FillAsync("#Form_Mailbox", "tlsrpt@good.test");
        await b.Page.FillAsync("#Form_OrganizationName", "Example Org");
        await b.Page.FillAsync("#Form_SendHourUtc", "3");
        await b.Page.CheckAsync("#Form_HttpsEndpoint");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("settings-staged");
        Assert.Equal(0, await b.Page.Locator(".tlsrpt-warning").CountAsync());
        Assert.Equal("tlsrpt@good.test", await b.Page.InputValueAsync("#Form_Mailbox"));
        Assert.True(await b.Page.IsCheckedAsync("#Form_HttpsEndpoint"));
        Assert.False(gw.Gateway.Web is null);
        using var http = Https(gw.Gateway.Web.Endpoint);
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/tlsrpt", Body(Gzip(CleanReport), "application/tlsrpt+gzip"))).StatusCode);   // staged is not in force

        await b.Page.ClickAsync("#commit");
        await b.ShotAsync("committed");
        Assert.Contains("Changes committed as version 1", await b.Page.InnerTextAsync("#notice"));
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by admin@web)");
        using (var store = Stores.Config(config))
        {
            var committed = Stores.ConfigService(store, PosternConfig.Load(file)).Committed()!.TlsReporting;
            Assert.Equal(("tlsrpt@good.test", "Example Org", 3, true), (committed.Mailbox, committed.OrganizationName, committed.SendHourUtc, committed.HttpsEndpoint));
        }
        await b.GoAsync("/tlsreports/settings");
        Assert.False(await b.Page.IsVisibleAsync("#not-in-force"));
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/tlsrpt", Body(Gzip(CleanReport), "application/tlsrpt+gzip"))).StatusCode);   // in force now; stored before
    }
}
