using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// An HTTPS policy host a test can start and stop: serves one MTA-STS policy for
/// mta-sts.&lt;domain&gt; on address:443 with a certificate from the world CA (made here).
/// </summary>
public sealed class StsPolicyServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly string _policy;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    public int Requests;

    private readonly bool _truncate;

    /// <param name="truncate">Announce a longer body than is sent, then close (a transfer cut short).</param>
    public StsPolicyServer(string address, string domain, string policy, TestWorld world, bool truncate = false)
    {
        _truncate = truncate;
        _policy = policy;
        using var caCert = X509Certificate2.CreateFromPemFile(Path.Combine(world.WorldDirectory, "certs", "ca.crt"), Path.Combine(world.WorldDirectory, "certs", "ca.key"));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN=mta-sts.{domain}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName($"mta-sts.{domain}");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var notBefore = caCert.NotBefore.ToUniversalTime() > DateTime.UtcNow.AddHours(-1) ? new DateTimeOffset(caCert.NotBefore) : DateTimeOffset.UtcNow.AddHours(-1);
        var notAfter = caCert.NotAfter.ToUniversalTime() < DateTime.UtcNow.AddDays(30) ? new DateTimeOffset(caCert.NotAfter) : DateTimeOffset.UtcNow.AddDays(30);
        using var issued = request.Create(caCert, notBefore, notAfter, RandomNumberGenerator.GetBytes(8));
        _certificate = X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
        _listener = new TcpListener(IPAddress.Parse(address), 443);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch (Exception) { return; }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            await using var ssl = new SslStream(client.GetStream());
            await ssl.AuthenticateAsServerAsync(_certificate);
            var reader = new StreamReader(ssl, Encoding.ASCII);
            while (await reader.ReadLineAsync() is { Length: > 0 }) { }
            Interlocked.Increment(ref Requests);
            var body = Encoding.UTF8.GetBytes(_policy);
            await ssl.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length + (_truncate ? 500 : 0)}\r\nConnection: close\r\n\r\n"));
            await ssl.WriteAsync(body);
            await ssl.FlushAsync();
        }
        catch (Exception) { /* the client went away */ }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _certificate.Dispose();
    }
}
