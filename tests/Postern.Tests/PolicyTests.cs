using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Policy;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The TLS levels and certificate verification as pure functions, exhaustively.</summary>
public sealed class PolicyTests
{
    private static readonly X509Certificate2 Root = TestPki.Root();
    private static readonly X509Certificate2Collection Trusted = [Root];
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private static readonly string[] MxAndDomain = ["mx.example.com", "example.com"];

    private static CertificateCheck Check(X509Certificate2 leaf, IdentityRule rule = IdentityRule.AnyNameOrCommonName,
        X509Certificate2Collection? trusted = null, X509Certificate2[]? chain = null, VerificationOptions? options = null, DateTimeOffset? at = null) =>
        CertificateVerifier.Verify(leaf, chain ?? [], trusted ?? Trusted, MxAndDomain, rule, at ?? Now, options ?? new());

    [Theory]
    [InlineData("mx.example.com", "mx.example.com", true)]
    [InlineData("MX.Example.COM", "mx.example.com", true)]
    [InlineData("*.example.com", "mx.example.com", true)]
    [InlineData("*.example.com", "a.b.example.com", false)]
    [InlineData("*.example.com", "example.com", false)]
    [InlineData("*.com", "example.com", false)]
    [InlineData("m*.example.com", "mx.example.com", false)]
    [InlineData("mx.*.com", "mx.example.com", false)]
    [InlineData("mx.example.com.", "mx.example.com", true)]
    [InlineData("mx.example.com", "mx.example.org", false)]
    [InlineData("", "mx.example.com", false)]
    public void RFC_6125_name_matching(string presented, string reference, bool expected) =>
        Assert.Equal(expected, CertificateVerifier.Matches(presented, reference));

    [Fact]
    public void A_certificate_for_the_MX_name_verifies()
    {
        var check = Check(TestPki.Leaf(Root, "mx.example.com", ["mx.example.com"]));
        Assert.True(check.Verified, check.Reason);
    }

    [Fact]
    public void A_certificate_for_the_destination_domain_verifies()
    {
        Assert.True(Check(TestPki.Leaf(Root, "example.com", ["example.com"])).Verified);
    }

    [Fact]
    public void A_wildcard_certificate_verifies_for_one_label()
    {
        Assert.True(Check(TestPki.Leaf(Root, "*.example.com", ["*.example.com"])).Verified);
    }

    [Fact]
    public void SAN_mismatch_with_matching_CN_passes_level_5_but_fails_the_hosted_domain_rule()
    {
        var leaf = TestPki.Leaf(Root, "mx.example.com", ["other.example.net"]);
        Assert.True(Check(leaf, IdentityRule.AnyNameOrCommonName).Verified);
        var hosted = Check(leaf, IdentityRule.SubjectAltNameFirst);
        Assert.False(hosted.Verified);
        Assert.Equal("peer cert does not match domain example.com", hosted.Reason);
        Assert.Equal(["other.example.net"], hosted.PresentedIdentities);
    }

    [Fact]
    public void Without_a_dNSName_SAN_the_hosted_domain_rule_uses_the_CN()
    {
        var leaf = TestPki.Leaf(Root, "mx.example.com", []);
        Assert.True(Check(leaf, IdentityRule.SubjectAltNameFirst).Verified);
    }

    [Fact]
    public void Expired_self_signed_and_untrusted_certificates_do_not_verify()
    {
        var expired = Check(TestPki.Leaf(Root, "mx.example.com", ["mx.example.com"], Now.AddDays(-20), Now.AddDays(-10)));
        Assert.False(expired.Verified);
        Assert.Equal("certificate has expired", expired.Reason);

        var notYet = Check(TestPki.Leaf(Root, "mx.example.com", ["mx.example.com"], Now.AddDays(10), Now.AddDays(20)));
        Assert.Equal("certificate is not yet valid", notYet.Reason);

        var selfSigned = Check(TestPki.Leaf(null, "mx.example.com", ["mx.example.com"]));
        Assert.Equal("self signed certificate", selfSigned.Reason);

        var other = TestPki.Root("Other Root");
        var untrusted = Check(TestPki.Leaf(other, "mx.example.com", ["mx.example.com"]));
        Assert.False(untrusted.Verified);
        Assert.StartsWith("unable to get local issuer certificate", untrusted.Reason);
        Assert.True(Check(TestPki.Leaf(other, "mx.example.com", ["mx.example.com"]), trusted: [other]).Verified);
    }

    [Fact]
    public void Verification_is_a_function_of_the_time_given()
    {
        var leaf = TestPki.Leaf(Root, "mx.example.com", ["mx.example.com"], Now.AddDays(-1), Now.AddDays(30));
        Assert.True(Check(leaf).Verified);
        Assert.Equal("certificate has expired", Check(leaf, at: Now.AddDays(31)).Reason);
    }

    [Fact]
    public void An_intermediate_sent_by_the_server_completes_the_chain()
    {
        var intermediate = TestPki.Ca("Unit Intermediate", Root);
        var leaf = TestPki.Leaf(intermediate, "mx.example.com", ["mx.example.com"]);
        Assert.False(Check(leaf).Verified);
        Assert.True(Check(leaf, chain: [intermediate]).Verified);
    }

    [Fact]
    public void Optional_checks_FQDN_form_and_signature_algorithm()
    {
        var bare = TestPki.Leaf(Root, "mx", ["mx", "mx.example.com"]);
        Assert.True(Check(bare).Verified);
        Assert.Contains("not a fully qualified domain name", Check(bare, options: new(RequireFqdn: true)).Reason);

        var sha1 = TestPki.Sha1Leaf(Root, "mx.example.com", ["mx.example.com"]);
        Assert.Equal("1.2.840.113549.1.1.5", sha1.SignatureAlgorithm.Value);
        var sha1Check = Check(sha1, options: new(CheckSignatureAlgorithm: true));
        Assert.False(sha1Check.Verified);
        Assert.Contains("weak signature algorithm", sha1Check.Reason);
    }

    // ---- the six levels ----

    public static TheoryData<TlsLevel, bool, bool, TlsStep> EhloCases => new()
    {
        { TlsLevel.No, true, true, TlsStep.ContinueInClear },
        { TlsLevel.Preferred, true, true, TlsStep.StartTls },
        { TlsLevel.Preferred, true, false, TlsStep.ContinueInClear },
        { TlsLevel.Preferred, false, false, TlsStep.ContinueInClear },
        { TlsLevel.Required, true, true, TlsStep.StartTls },
        { TlsLevel.Required, true, false, TlsStep.Fail },
        { TlsLevel.Required, false, false, TlsStep.Fail },
        { TlsLevel.PreferredVerify, true, false, TlsStep.ContinueInClear },
        { TlsLevel.PreferredVerify, true, true, TlsStep.StartTls },
        { TlsLevel.RequiredVerify, true, false, TlsStep.Fail },
        { TlsLevel.RequiredVerifyHostedDomains, false, false, TlsStep.Fail },
        { TlsLevel.RequiredVerifyHostedDomains, true, true, TlsStep.StartTls },
    };

    [Theory]
    [MemberData(nameof(EhloCases))]
    public void After_EHLO(TlsLevel level, bool esmtp, bool startTls, TlsStep expected)
    {
        var decision = OutboundTlsPolicy.AfterEhlo(level, esmtp, startTls);
        Assert.Equal(expected, decision.Step);
        if (!esmtp && level != TlsLevel.No) Assert.Contains("peer without ESMTP", decision.Reason);
        else if (!startTls && level != TlsLevel.No) Assert.Equal("STARTTLS not advertised", decision.Reason);
    }

    [Theory]
    [InlineData(TlsLevel.Preferred, TlsStep.ContinueInClear)]
    [InlineData(TlsLevel.PreferredVerify, TlsStep.ContinueInClear)]
    [InlineData(TlsLevel.Required, TlsStep.Fail)]
    [InlineData(TlsLevel.RequiredVerify, TlsStep.Fail)]
    [InlineData(TlsLevel.RequiredVerifyHostedDomains, TlsStep.Fail)]
    public void STARTTLS_refused_before_220(TlsLevel level, TlsStep expected)
    {
        var d = OutboundTlsPolicy.AfterStartTlsRefused(level, "454 4.7.0 TLS not available");
        Assert.Equal(expected, d.Step);
        Assert.StartsWith("STARTTLS answered with an error", d.Reason);
    }

    [Theory]
    [InlineData(TlsLevel.Preferred, false, true)]
    [InlineData(TlsLevel.Required, false, true)]
    [InlineData(TlsLevel.PreferredVerify, false, true)]
    [InlineData(TlsLevel.PreferredVerify, true, true)]
    [InlineData(TlsLevel.RequiredVerify, false, false)]
    [InlineData(TlsLevel.RequiredVerify, true, true)]
    [InlineData(TlsLevel.RequiredVerifyHostedDomains, false, false)]
    [InlineData(TlsLevel.RequiredVerifyHostedDomains, true, true)]
    public void After_the_handshake(TlsLevel level, bool verified, bool deliver)
    {
        var check = verified ? new CertificateCheck(true, true, null, ["mx.example.com"]) : new CertificateCheck(true, false, "peer cert does not match domain example.com", ["x"]);
        var verdict = OutboundTlsPolicy.AfterHandshake(level, check);
        Assert.Equal(deliver, verdict.Deliver);
        if (!deliver) Assert.Equal("TLS deferring: verify error: peer cert does not match domain example.com", verdict.LogText);
    }

    // ---- the table ----

    [Fact]
    public void Destination_entries_resolve_exact_then_most_specific_suffix_then_Default()
    {
        var dc = new DestinationControls
        {
            Entries =
            {
                new DestinationEntry { Domain = ".example.com", Tls = TlsLevel.Required, ConcurrentConnections = 10 },
                new DestinationEntry { Domain = ".mail.example.com", Tls = TlsLevel.RequiredVerify },
                new DestinationEntry { Domain = "example.com", MaxMessagesPerConnection = 5 },
            },
        };
        var exact = dc.Resolve("example.com");
        Assert.Equal("example.com", exact.Entry);
        Assert.Equal(TlsLevel.Preferred, exact.Tls);                 // inherited
        Assert.Equal("example.com entry, inherited from Default", exact.TlsSource);
        Assert.Equal(5, exact.MaxMessagesPerConnection);
        Assert.Equal(500, exact.ConcurrentConnections);

        var sub = dc.Resolve("a.example.com");
        Assert.Equal(".example.com", sub.Entry);
        Assert.Equal(TlsLevel.Required, sub.Tls);
        Assert.Equal(10, sub.ConcurrentConnections);

        Assert.Equal(TlsLevel.RequiredVerify, dc.Resolve("x.mail.example.com").Tls);
        var other = dc.Resolve("example.org");
        Assert.Equal("Default", other.Entry);
        Assert.Equal("Default entry", other.TlsSource);
        Assert.Equal(IpPreference.IPv4Preferred, other.IpPreference);
    }

    [Fact]
    public void Destination_validation_refuses_out_of_range_values_and_DANE_without_TLS()
    {
        var config = PosternConfig.CreateDefault();
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "a.example", ConcurrentConnections = 1001 });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "b.example", MaxMessagesPerConnection = 0 });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "c.example", RecipientLimit = new RecipientLimit { Recipients = 5, Minutes = 61 } });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "d.example", Tls = TlsLevel.No, Dane = DaneSupport.Mandatory });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "e.example", Tls = TlsLevel.No, MtaSts = MtaStsSupport.On });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "f.example", BounceProfile = "nope" });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "not a domain" });
        var e = Assert.Throws<ConfigException>(config.Validate);
        Assert.Contains("'a.example': concurrentConnections must be 1-1000", e.Message);
        Assert.Contains("'b.example': maxMessagesPerConnection must be 1-1000", e.Message);
        Assert.Contains("'c.example': recipientLimit.minutes must be 1-60", e.Message);
        Assert.Contains("'d.example': DANE needs a TLS level", e.Message);
        Assert.Contains("'e.example': MTA-STS needs a TLS level", e.Message);
        Assert.Contains("'f.example': bounce profile 'nope' is not defined", e.Message);
        Assert.Contains("'not a domain': not a domain", e.Message);
    }

    [Fact]
    public void A_configuration_file_changes_only_the_Default_fields_it_names()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var file = Path.Combine(dir, "p.json");
        File.WriteAllText(file, """
            { "destinationControls": { "default": { "tls": "requiredVerify" },
                                       "entries": [ { "domain": ".example.com", "tls": "requiredVerifyHostedDomains" } ] },
              "listeners": [ { "name": "In", "port": 0 } ],
              "mailFlowPolicies": { "ACCEPTED": {} } }
            """);
        var config = PosternConfig.Load(file);
        Assert.Equal(TlsLevel.RequiredVerify, config.DestinationControls.Default.Tls);
        Assert.Equal(500, config.DestinationControls.Default.ConcurrentConnections);
        Assert.Equal(TlsLevel.RequiredVerifyHostedDomains, config.DestinationControls.Resolve("mx.example.com").Tls);
    }
}
