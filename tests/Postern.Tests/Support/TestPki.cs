using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Tests.Support;

/// <summary>Certificates made in memory for the pure verifier tests.</summary>
public static class TestPki
{
    public static X509Certificate2 Root(string name = "Unit Root CA") => Ca(name, null);

    public static X509Certificate2 Ca(string name, X509Certificate2? issuer)
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        var from = DateTimeOffset.UtcNow.AddDays(-30);
        var to = DateTimeOffset.UtcNow.AddYears(5);
        if (issuer is null) return req.CreateSelfSigned(from, to);
        if (to > issuer.NotAfter) to = issuer.NotAfter;
        using var issued = req.Create(issuer, from, to, RandomSerial());
        return issued.CopyWithPrivateKey(key);
    }

    public static X509Certificate2 Leaf(X509Certificate2? issuer, string cn, string[] dnsNames,
        DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        if (dnsNames.Length > 0)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var n in dnsNames) san.AddDnsName(n);
            req.CertificateExtensions.Add(san.Build());
        }
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        var from = notBefore ?? DateTimeOffset.UtcNow.AddDays(-1);
        var to = notAfter ?? DateTimeOffset.UtcNow.AddDays(90);
        if (issuer is null) return req.CreateSelfSigned(from, to);
        if (to > issuer.NotAfter) to = issuer.NotAfter;
        return req.Create(issuer, from, to, RandomSerial());
    }

    /// <summary>A leaf signed with SHA-1 (the framework refuses to make one, so the signature is ours).</summary>
    public static X509Certificate2 Sha1Leaf(X509Certificate2 issuer, string cn, string[] dnsNames)
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in dnsNames) san.AddDnsName(n);
        req.CertificateExtensions.Add(san.Build());
        using var issuerKey = issuer.GetRSAPrivateKey()!;
        return req.Create(issuer.SubjectName, new Sha1RsaGenerator(issuerKey), DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomSerial());
    }

    private sealed class Sha1RsaGenerator(RSA key) : X509SignatureGenerator
    {
        public override byte[] GetSignatureAlgorithmIdentifier(HashAlgorithmName hashAlgorithm) =>
            [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05, 0x05, 0x00];
        public override byte[] SignData(byte[] data, HashAlgorithmName hashAlgorithm) =>
            key.SignData(data, HashAlgorithmName.SHA1, RSASignaturePadding.Pkcs1);
        protected override PublicKey BuildPublicKey() => PublicKey.CreateFromSubjectPublicKeyInfo(key.ExportSubjectPublicKeyInfo(), out _);
    }

    private static byte[] RandomSerial() => RandomNumberGenerator.GetBytes(12);
}
