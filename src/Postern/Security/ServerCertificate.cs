using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Security;

/// <summary>A certificate with its private key and chain, ready for TLS handshakes.</summary>
public sealed class ServerCertificate
{
    public X509Certificate2 Certificate { get; }
    public SslStreamCertificateContext Context { get; }
    public bool IsDemo { get; }
    /// <summary>Where it came from: a store name, a PEM file, or "demo".</summary>
    public string Source { get; }
    public X509Certificate2Collection Chain { get; }

    private ServerCertificate(X509Certificate2 certificate, X509Certificate2Collection chain, bool isDemo, string source)
    {
        // Round-trip through PKCS#12 so the key is usable by the TLS stack on every platform.
        Certificate = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
        Context = SslStreamCertificateContext.Create(Certificate, chain, offline: true);
        Chain = chain;
        IsDemo = isDemo;
        Source = source;
    }

    public static ServerCertificate From(X509Certificate2 certificateWithKey, X509Certificate2Collection chain, bool isDemo, string source) =>
        new(certificateWithKey, chain, isDemo, source);

    /// <summary>Loads a PEM certificate (optionally followed by its intermediates) and a PEM private key.</summary>
    public static ServerCertificate FromPemFiles(string certificateFile, string keyFile)
    {
        try
        {
            var all = new X509Certificate2Collection();
            all.ImportFromPemFile(certificateFile);
            if (all.Count == 0) throw new CertificateException($"{certificateFile} holds no certificate");
            var leaf = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
            var chain = new X509Certificate2Collection();
            for (var i = 1; i < all.Count; i++) chain.Add(all[i]);
            return new ServerCertificate(leaf, chain, isDemo: false, certificateFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new CertificateException($"cannot load certificate {certificateFile} with key {keyFile}: {e.Message}");
        }
    }

    /// <summary>
    /// The demo certificate: self-signed for the host name, made once per data directory.
    /// It works out of the box and is flagged as a demo wherever it is used.
    /// </summary>
    public static ServerCertificate LoadOrCreateDemo(string directory, string hostname)
    {
        Directory.CreateDirectory(directory);
        var certFile = Path.Combine(directory, "demo.crt.pem");
        var keyFile = Path.Combine(directory, "demo.key.pem");
        if (!File.Exists(certFile) || !File.Exists(keyFile))
        {
            using var key = RSA.Create(2048);
            var request = new CertificateRequest($"CN={hostname}, O=Postern demo certificate", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName(hostname);
            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
            WritePrivate(keyFile, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(certFile, cert.ExportCertificatePem() + "\n");
        }
        var loaded = FromPemFiles(certFile, keyFile);
        return new ServerCertificate(loaded.Certificate, [], isDemo: true, "demo");
    }

    /// <summary>Writes a secret readable by the service user only (0600) from the first byte.</summary>
    public static void WritePrivate(string path, string content) => WritePrivate(path, System.Text.Encoding.UTF8.GetBytes(content));

    public static void WritePrivate(string path, byte[] content)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var f = new FileStream(path, options)) f.Write(content);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}

public sealed class CertificateException(string message) : Exception(message);
