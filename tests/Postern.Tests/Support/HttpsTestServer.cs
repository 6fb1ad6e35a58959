using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Tests.Support;

/// <summary>
/// An HTTPS server a test starts on one loopback address and port, with a certificate for one
/// name issued here by the world CA; each connection is handed, after the handshake, to
/// <see cref="ServeAsync"/> under a 30-second deadline.
/// </summary>
public abstract class HttpsTestServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    protected HttpsTestServer(TestWorld world, string address, int port, string dnsName)
    {
        _certificate = Issue(world, dnsName);
        _listener = new TcpListener(IPAddress.Parse(address), port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    /// <summary>A server certificate for the name, from the world CA, valid from an hour ago for 30 days (within the CA's own dates).</summary>
    private static X509Certificate2 Issue(TestWorld world, string dnsName)
    {
        using var caCert = X509Certificate2.CreateFromPemFile(Path.Combine(world.WorldDirectory, "certs", "ca.crt"), Path.Combine(world.WorldDirectory, "certs", "ca.key"));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={dnsName}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(dnsName);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var notBefore = caCert.NotBefore.ToUniversalTime() > DateTime.UtcNow.AddHours(-1) ? new DateTimeOffset(caCert.NotBefore) : DateTimeOffset.UtcNow.AddHours(-1);
        var notAfter = caCert.NotAfter.ToUniversalTime() < DateTime.UtcNow.AddDays(30) ? new DateTimeOffset(caCert.NotAfter) : DateTimeOffset.UtcNow.AddDays(30);
        using var issued = request.Create(caCert, notBefore, notAfter, RandomNumberGenerator.GetBytes(8));
        return X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using var _ = client;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await using var ssl = new SslStream(client.GetStream());
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, deadline.Token);
            await ServeAsync(ssl, deadline.Token);
        }
        catch (Exception) { /* the client went away */ }
    }

    protected abstract Task ServeAsync(SslStream ssl, CancellationToken ct);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _certificate.Dispose();
        GC.SuppressFinalize(this);
    }
}
