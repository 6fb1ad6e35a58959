using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Postern.Tests.Support;
using Postern.Policy;
using Xunit;

namespace Postern.Tests;

/// <summary>SMTP TLS Reporting (RFC 8460): the policy record and the aggregate report's JSON.</summary>
public sealed class TlsRptTests
{
    [Theory]
    [InlineData("v=TLSRPTv1; rua=mailto:reports@example.com", "mailto:reports@example.com")]
    [InlineData("v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt", "https://reporting.example.com/v1/tlsrpt")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/x;", "mailto:a@example.com https://r.example.com/x")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; ext_1=value", "mailto:a@example.com")]
    public void A_record_gives_its_report_addresses(string txt, string expected)
    {
        var record = TlsRptRecord.Parse([txt]);
        Assert.Equal(TlsRptRecordKind.Found, record.Kind);
        Assert.Equal(expected.Split(' '), record.ReportTo.Select(u => u.OriginalString));
    }

    [Fact]
    public void Unusable_addresses_are_ignored_and_said_so()
    {
        var record = TlsRptRecord.Parse(["v=TLSRPTv1; rua=http://plain.example.com/r,mailto:a@example.com"]);
        Assert.Equal(TlsRptRecordKind.Found, record.Kind);
        Assert.Equal("mailto:a@example.com", Assert.Single(record.ReportTo).OriginalString);
        Assert.Contains("http://plain.example.com/r", record.Reason);
    }

    [Theory]
    [InlineData(new string[0], "no TLSRPT record")]
    [InlineData(new[] { "v=spf1 -all", "v=STSv1; id=1" }, "no TLSRPT record")]
    [InlineData(new[] { "v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com" }, "2 TLSRPT records")]
    [InlineData(new[] { "v=TLSRPTv10; rua=mailto:a@example.com" }, "no TLSRPT record")]
    public void No_record_or_more_than_one_means_no_reports(string[] txt, string reason)
    {
        var record = TlsRptRecord.Parse(txt);
        Assert.Equal(TlsRptRecordKind.NoRecord, record.Kind);
        Assert.Contains(reason, record.Reason);
        Assert.Empty(record.ReportTo);
    }

    [Theory]
    [InlineData("v=TLSRPTv1", "no rua field")]
    [InlineData("v=TLSRPTv1; rua=ftp://example.com/x", "no usable report address")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "more than one rua")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; junk", "malformed field 'junk'")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com;; x=1", "malformed field ''")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; \u0001bad=1", "malformed field '\\x01bad=1'")]
    public void A_broken_record_is_invalid_with_the_reason(string txt, string reason)
    {
        var record = TlsRptRecord.Parse([txt]);
        Assert.Equal(TlsRptRecordKind.Invalid, record.Kind);
        Assert.Contains(reason, record.Reason);
    }

    [Fact]
    public void Every_result_type_has_the_RFC_name_and_reads_back()
    {
        var names = Enum.GetValues<TlsRptResultType>().Select(TlsRptNames.Of).ToList();
        Assert.Equal(new[]
        {
            "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted", "validation-failure",
            "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
        }, names);
        foreach (var type in Enum.GetValues<TlsRptResultType>()) Assert.Equal(type, TlsRptNames.ResultType(TlsRptNames.Of(type)));
        Assert.Null(TlsRptNames.ResultType("no-such-result"));
    }

    /// <summary>RFC 8460 §4.4 written down as a JSON Schema (draft 2020-12): what every report Postern sends must satisfy.</summary>
    public const string ReportSchema = TlsRptSchema.Report;

    private static EvaluationResults Validate(string json) =>
        JsonSchema.FromText(ReportSchema).Evaluate(JsonDocument.Parse(json).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });

    [Fact]
    public void A_report_is_the_RFCs_JSON_and_valid_against_the_schema()
    {
        var report = new TlsRptReport("Postern at example.net", new DateTimeOffset(2026, 11, 29, 0, 0, 0, TimeSpan.Zero),
            new DateTimeOffset(2026, 11, 29, 23, 59, 59, TimeSpan.Zero), "mailto:tlsrpt@example.net", "2026-11-29T00:00:00Z_company-y.example",
            [
                new TlsRptPolicyResult(TlsRptPolicyType.Sts, ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
                    "company-y.example", ["*.mail.company-y.example"], 5326, 303,
                    [
                        new TlsRptFailure(TlsRptResultType.CertificateExpired, "2001:db8:abcd:12::1", "mx1.mail.company-y.example", null, 100),
                        new TlsRptFailure(TlsRptResultType.StartTlsNotSupported, "2001:db8:abcd:13::1", "mx2.mail.company-y.example", "203.0.113.56", 200),
                        new TlsRptFailure(TlsRptResultType.ValidationFailure, "198.51.100.62", "mx-backup.mail.company-y.example", "203.0.113.58", 3,
                            "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"),
                    ]),
                new TlsRptPolicyResult(TlsRptPolicyType.NoPolicyFound, [], "company-z.example", [], 12, 0, []),
            ]);
        var json = report.ToJson();
        var result = Validate(json);
        Assert.True(result.IsValid, string.Join("; ", result.Details?.Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Values) ?? []));
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.Equal("2026-11-29T00:00:00Z", root.GetProperty("date-range").GetProperty("start-datetime").GetString());
        var first = root.GetProperty("policies")[0];
        Assert.Equal("sts", first.GetProperty("policy").GetProperty("policy-type").GetString());
        Assert.Equal(303, first.GetProperty("summary").GetProperty("total-failure-session-count").GetInt64());
        Assert.Equal("certificate-expired", first.GetProperty("failure-details")[0].GetProperty("result-type").GetString());
        Assert.False(first.GetProperty("failure-details")[0].TryGetProperty("receiving-ip", out _));   // unknown: left out, not null
        Assert.False(root.GetProperty("policies")[1].TryGetProperty("failure-details", out _));
    }

    [Fact]
    public void The_schema_rejects_what_the_RFC_does_not_allow()
    {
        Assert.False(Validate("""{"organization-name":"x","date-range":{"start-datetime":"2026-11-29","end-datetime":"2026-11-29T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[]}""").IsValid);
        Assert.False(Validate("""{"organization-name":"x","date-range":{"start-datetime":"2026-11-29T00:00:00Z","end-datetime":"2026-11-29T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[{"policy":{"policy-type":"dane","policy-domain":"d"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}""").IsValid);
        Assert.False(Validate("""{"organization-name":"x","date-range":{"start-datetime":"2026-11-29T00:00:00Z","end-datetime":"2026-11-29T23:59:59Z"},"contact-info":"c","report-id":"r","policies":[{"policy":{"policy-type":"sts","policy-domain":"d"},"summary":{"total-successful-session-count":1,"total-failure-session-count":1},"failure-details":[{"result-type":"oops","failed-session-count":1}]}]}""").IsValid);
    }

    [Fact]
    public async Task Discovery_reads_the_test_worlds_records_and_tells_a_failed_lookup_from_no_record()
    {
        _ = TestWorld.Instance;   // the world's nsd and validating unbound
        var dns = new Postern.Dns.DnsResolver(new Postern.Admin.DnsSettings { Servers = [TestWorld.Resolver] }, new Postern.Observability.MailEventStream());
        var good = await Postern.Observability.TlsRptDiscovery.LookupAsync(dns, "good.test", CancellationToken.None);
        Assert.Equal(TlsRptRecordKind.Found, good.Kind);
        Assert.Equal(["mailto:tlsrpt@reports.good.test", "https://tlsrpt.good.test/v1/report"], good.ReportTo.Select(u => u.OriginalString));

        var two = await Postern.Observability.TlsRptDiscovery.LookupAsync(dns, "sts-good.test", CancellationToken.None);
        Assert.Equal(TlsRptRecordKind.NoRecord, two.Kind);
        Assert.Contains("2 TLSRPT records", two.Reason);

        var unusable = await Postern.Observability.TlsRptDiscovery.LookupAsync(dns, "sts-testing.test", CancellationToken.None);
        Assert.Equal(TlsRptRecordKind.Invalid, unusable.Kind);

        var none = await Postern.Observability.TlsRptDiscovery.LookupAsync(dns, "dane-bogushost.test", CancellationToken.None);
        Assert.Equal(TlsRptRecordKind.NoRecord, none.Kind);

        // A name in the bogus zone: unbound answers SERVFAIL, which is a failed lookup, not "no reports wanted".
        var failed = await Postern.Observability.TlsRptDiscovery.LookupAsync(dns, "dane.bogus.test", CancellationToken.None);
        Assert.Equal(TlsRptRecordKind.LookupFailed, failed.Kind);
        Assert.Contains("_smtp._tls.dane.bogus.test", failed.Reason);
    }
}
