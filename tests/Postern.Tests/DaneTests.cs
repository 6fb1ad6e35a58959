using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Dns;
using Postern.Policy;
using Xunit;

namespace Postern.Tests;

/// <summary>The DANE engine's pure parts: TLSA usability and matching (RFC 7672 §3.1) and the per-host decision (§2).</summary>
public sealed class DaneTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-11-30T12:00:00Z");

    /// <summary>root → int → leaf (SAN mx.example.test), each valid for a year around Now.</summary>
    private sealed class Pki
    {
        public X509Certificate2 Root { get; }
        public X509Certificate2 Int { get; }
        public X509Certificate2 Leaf { get; }
        public X509Certificate2 Stranger { get; }

        public Pki()
        {
            var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var rootReq = new CertificateRequest("CN=DANE Test Root", rootKey, HashAlgorithmName.SHA256);
            rootReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            rootReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
            Root = rootReq.CreateSelfSigned(Now.AddYears(-2), Now.AddYears(2));
            var intKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var intReq = new CertificateRequest("CN=DANE Test Intermediate", intKey, HashAlgorithmName.SHA256);
            intReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            intReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
            Int = intReq.Create(Root, Now.AddYears(-1), Now.AddYears(1), [1]).CopyWithPrivateKey(intKey);
            var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var leafReq = new CertificateRequest("CN=mx.example.test", leafKey, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("mx.example.test");
            leafReq.CertificateExtensions.Add(san.Build());
            Leaf = leafReq.Create(Int, Now.AddDays(-30), Now.AddDays(30), [2]);
            var strangerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            Stranger = new CertificateRequest("CN=stranger", strangerKey, HashAlgorithmName.SHA256).CreateSelfSigned(Now.AddDays(-1), Now.AddDays(1));
        }
    }

    private static readonly Pki P = new();

    private static byte[] Select(X509Certificate2 c, byte selector) => selector == 0 ? c.RawData : c.PublicKey.ExportSubjectPublicKeyInfo();

    private static TlsaRecord Record(byte usage, byte selector, byte matching, X509Certificate2 c)
    {
        var data = Select(c, selector);
        return new TlsaRecord(usage, selector, matching, matching switch { 0 => data, 1 => SHA256.HashData(data), _ => SHA512.HashData(data) });
    }

    public static TheoryData<byte, byte, byte> EveryCombination()
    {
        var data = new TheoryData<byte, byte, byte>();
        for (byte u = 0; u <= 3; u++)
            for (byte s = 0; s <= 1; s++)
                for (byte m = 0; m <= 2; m++) data.Add(u, s, m);
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryCombination))]
    public void Every_usage_selector_and_matching_type(byte usage, byte selector, byte matching)
    {
        // EE usages describe the leaf, TA usages the intermediate the server sends.
        var subject = usage is 1 or 3 ? P.Leaf : P.Int;
        var record = Record(usage, selector, matching, subject);
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], [record], ["mx.example.test"], Now);
        switch (usage)
        {
            case TlsaRecord.PkixTa or TlsaRecord.PkixEe:
                Assert.False(record.IsUsable);
                Assert.Contains("PKIX", record.UnusableReason);
                Assert.False(check.Matched);
                break;
            case TlsaRecord.DaneEe:
                Assert.True(check.Matched, check.Reason);
                Assert.Equal(0, check.Depth);
                break;
            case TlsaRecord.DaneTa:
                Assert.True(check.Matched, check.Reason);
                Assert.Equal(1, check.Depth);
                break;
        }
        // The same record for a certificate that is not presented never matches.
        Assert.False(DaneVerifier.Verify(P.Stranger, [P.Stranger], [Record(usage, selector, matching, subject)], ["mx.example.test"], Now).Matched);
    }

    [Theory]
    [InlineData(3, 1, 1, 31, "SHA-256 digest of 31 bytes")]
    [InlineData(3, 1, 1, 33, "SHA-256 digest of 33 bytes")]
    [InlineData(3, 0, 2, 32, "SHA-512 digest of 32 bytes")]
    [InlineData(3, 0, 0, 0, "empty association data")]
    [InlineData(3, 2, 1, 32, "unknown selector 2")]
    [InlineData(3, 1, 3, 32, "unknown matching type 3")]
    [InlineData(4, 1, 1, 32, "unknown usage 4")]
    [InlineData(255, 1, 1, 32, "unknown usage 255")]
    public void Malformed_and_unknown_records_are_unusable(byte usage, byte selector, byte matching, int length, string reason)
    {
        var record = new TlsaRecord(usage, selector, matching, new byte[length]);
        Assert.False(record.IsUsable);
        Assert.Equal(reason, record.UnusableReason);
    }

    [Fact]
    public void DANE_EE_ignores_names_and_dates()
    {
        var record = Record(3, 1, 1, P.Leaf);
        Assert.True(DaneVerifier.Verify(P.Leaf, [P.Leaf], [record], ["other.example"], Now.AddYears(5)).Matched);
        Assert.True(DaneVerifier.Verify(P.Stranger, [P.Stranger], [Record(3, 0, 1, P.Stranger)], ["mx.example.test"], Now).Matched);   // self-signed
    }

    [Fact]
    public void DANE_EE_that_does_not_match_fails_with_the_records_in_the_reason()
    {
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], [Record(3, 1, 1, P.Stranger)], ["mx.example.test"], Now);
        Assert.False(check.Matched);
        Assert.StartsWith("no usable TLSA record (3 1 1 ", check.Reason);
        Assert.EndsWith("matched the end-entity certificate", check.Reason);
    }

    [Fact]
    public void DANE_TA_needs_the_anchor_in_the_chain_the_server_sends()
    {
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf], [Record(2, 0, 1, P.Int)], ["mx.example.test"], Now);
        Assert.False(check.Matched);
        Assert.Contains("must be in the chain it sends", check.Reason);
    }

    [Fact]
    public void DANE_TA_checks_the_name_of_the_leaf()
    {
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], [Record(2, 0, 1, P.Int)], ["mx.other.test"], Now);
        Assert.False(check.Matched);
        Assert.Contains("do not match mx.other.test", check.Reason);
        Assert.True(DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], [Record(2, 0, 1, P.Int)], ["mx.other.test", "mx.example.test"], Now).Matched);
    }

    [Fact]
    public void DANE_TA_checks_dates_along_the_chain()
    {
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], [Record(2, 1, 1, P.Int)], ["mx.example.test"], Now.AddDays(60));
        Assert.False(check.Matched);
        Assert.Contains("expired", check.Reason);
    }

    [Fact]
    public void DANE_TA_on_a_root_the_server_sends_matches_at_depth_two()
    {
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int, P.Root], [Record(2, 1, 1, P.Root)], ["mx.example.test"], Now);
        Assert.True(check.Matched, check.Reason);
        Assert.Equal(2, check.Depth);
    }

    [Fact]
    public void A_certificate_that_merely_claims_the_anchors_name_does_not_chain()
    {
        var impostorKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var impostorReq = new CertificateRequest("CN=DANE Test Intermediate", impostorKey, HashAlgorithmName.SHA256);
        impostorReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var impostor = impostorReq.CreateSelfSigned(Now.AddYears(-1), Now.AddYears(1));
        var leafReq = new CertificateRequest("CN=mx.example.test", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        var forged = leafReq.Create(impostor, Now.AddDays(-1), Now.AddDays(1), [9]);
        // The server sends the real intermediate (which the TLSA record names) with a leaf it did not sign.
        var check = DaneVerifier.Verify(forged, [forged, P.Int], [Record(2, 0, 1, P.Int)], ["mx.example.test"], Now);
        Assert.False(check.Matched);
    }

    [Fact]
    public void Unusable_records_beside_a_usable_one_do_not_get_in_the_way()
    {
        TlsaRecord[] records = [Record(0, 0, 1, P.Root), new TlsaRecord(3, 1, 1, new byte[16]), Record(3, 1, 2, P.Leaf)];
        var check = DaneVerifier.Verify(P.Leaf, [P.Leaf, P.Int], records, ["mx.example.test"], Now);
        Assert.True(check.Matched);
        Assert.Equal(2, check.Record!.MatchingType);
    }

    // ---- the per-host decision ----

    private static TlsaLookup Tlsa(string name, DnsSecurity security, params TlsaRecord[] records) =>
        new(name, security, records.Length == 0 ? DnsOutcome.NoData : DnsOutcome.Ok, records);

    private static readonly TlsaRecord Usable = new(3, 1, 1, new byte[32]);
    private static readonly TlsaRecord Pkix = new(1, 1, 1, new byte[32]);

    [Theory]
    // mode, MX, address, TLSA status, TLSA records ("usable", "pkix", "none") → kind
    [InlineData(DaneSupport.None, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.NotApplicable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.Authenticate)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "pkix", DaneHostKind.EncryptOnly)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "none", DaneHostKind.NotApplicable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Insecure, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.NotApplicable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Insecure, DnsSecurity.Secure, "usable", DaneHostKind.NotApplicable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Bogus, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Indeterminate, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Bogus, "none", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Indeterminate, "none", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Insecure, "usable", DaneHostKind.NotApplicable)]
    [InlineData(DaneSupport.Mandatory, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.Authenticate)]
    [InlineData(DaneSupport.Mandatory, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "pkix", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Mandatory, DnsSecurity.Secure, DnsSecurity.Secure, DnsSecurity.Secure, "none", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Mandatory, DnsSecurity.Insecure, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Mandatory, DnsSecurity.Secure, DnsSecurity.Insecure, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Indeterminate, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    [InlineData(DaneSupport.Opportunistic, DnsSecurity.Bogus, DnsSecurity.Secure, DnsSecurity.Secure, "usable", DaneHostKind.Unusable)]
    public void The_host_decision_follows_RFC_7672_section_2(DaneSupport mode, DnsSecurity mx, DnsSecurity address, DnsSecurity tlsaSecurity, string records, DaneHostKind expected)
    {
        var list = records switch { "usable" => new[] { Usable, Pkix }, "pkix" => [Pkix], _ => [] };
        var policy = DanePolicy.ForHost(mode, "mx.example.test", mx, address, null, null, Tlsa("mx.example.test", tlsaSecurity, list));
        Assert.Equal(expected, policy.Kind);
        if (expected == DaneHostKind.Authenticate)
        {
            Assert.Equal([Usable], policy.Records);   // only the usable ones are kept
            Assert.Equal(["mx.example.test"], policy.ReferenceIdentifiers);
        }
    }

    [Theory]
    [InlineData(DaneHostKind.Authenticate, TlsLevel.No, TlsLevel.Required, HostAuthentication.Dane)]
    [InlineData(DaneHostKind.Authenticate, TlsLevel.RequiredVerify, TlsLevel.Required, HostAuthentication.Dane)]
    [InlineData(DaneHostKind.EncryptOnly, TlsLevel.Preferred, TlsLevel.Required, HostAuthentication.None)]
    [InlineData(DaneHostKind.EncryptOnly, TlsLevel.RequiredVerify, TlsLevel.Required, HostAuthentication.None)]
    [InlineData(DaneHostKind.NotApplicable, TlsLevel.Preferred, TlsLevel.Preferred, HostAuthentication.None)]
    [InlineData(DaneHostKind.NotApplicable, TlsLevel.RequiredVerifyHostedDomains, TlsLevel.RequiredVerifyHostedDomains, HostAuthentication.Pkix)]
    [InlineData(DaneHostKind.Unusable, TlsLevel.No, TlsLevel.Required, HostAuthentication.Dane)]   // never a path to clear text
    public void DANE_takes_precedence_over_the_TLS_level(DaneHostKind dane, TlsLevel configured, TlsLevel level, HostAuthentication authentication)
    {
        var destination = new DestinationControls { Default = { Tls = configured } }.Resolve("example.test");
        var requirement = OutboundTlsPolicy.ForHost(destination, new DaneHostPolicy(dane, [], "why"));
        Assert.Equal(level, requirement.Level);
        Assert.Equal(authentication, requirement.Authentication);
    }

    [Fact]
    public void An_alias_uses_the_expanded_names_TLSA_first_then_its_own()
    {
        var atExpanded = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.alias.test", DnsSecurity.Secure, DnsSecurity.Secure,
            "mx.real.test", Tlsa("mx.real.test", DnsSecurity.Secure, Usable), Tlsa("mx.alias.test", DnsSecurity.Secure));
        Assert.Equal(DaneHostKind.Authenticate, atExpanded.Kind);
        Assert.Equal("mx.real.test", atExpanded.TlsaBase);
        Assert.Equal(["mx.real.test", "mx.alias.test"], atExpanded.ReferenceIdentifiers);

        var atAlias = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.alias.test", DnsSecurity.Secure, DnsSecurity.Secure,
            "mx.real.test", Tlsa("mx.real.test", DnsSecurity.Secure), Tlsa("mx.alias.test", DnsSecurity.Secure, Usable));
        Assert.Equal(DaneHostKind.Authenticate, atAlias.Kind);
        Assert.Equal("mx.alias.test", atAlias.TlsaBase);
        Assert.Equal(["mx.alias.test"], atAlias.ReferenceIdentifiers);

        // Unsigned TLSA at the expanded name: the alias's own (signed) records are used, as Postfix does.
        var insecureExpanded = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.alias.test", DnsSecurity.Secure, DnsSecurity.Secure,
            "mx.real.test", Tlsa("mx.real.test", DnsSecurity.Insecure, Usable), Tlsa("mx.alias.test", DnsSecurity.Secure, Usable));
        Assert.Equal(DaneHostKind.Authenticate, insecureExpanded.Kind);
        Assert.Equal("mx.alias.test", insecureExpanded.TlsaBase);

        var bogusExpanded = DanePolicy.ForHost(DaneSupport.Opportunistic, "mx.alias.test", DnsSecurity.Secure, DnsSecurity.Secure,
            "mx.real.test", Tlsa("mx.real.test", DnsSecurity.Bogus), Tlsa("mx.alias.test", DnsSecurity.Secure, Usable));
        Assert.Equal(DaneHostKind.Unusable, bogusExpanded.Kind);
    }

    [Fact]
    public void MTA_STS_identities_are_SAN_names_only()
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var cnOnly = new CertificateRequest("CN=mx.example.test", key, HashAlgorithmName.SHA256).CreateSelfSigned(Now.AddDays(-1), Now.AddDays(1));
        Assert.Equal(["mx.example.test"], CertificateVerifier.PresentedIdentities(cnOnly, IdentityRule.SubjectAltNameFirst));
        Assert.Empty(CertificateVerifier.PresentedIdentities(cnOnly, IdentityRule.SubjectAltNameOnly));
        Assert.Equal(["mx.example.test"], CertificateVerifier.PresentedIdentities(P.Leaf, IdentityRule.SubjectAltNameOnly));
    }
}
