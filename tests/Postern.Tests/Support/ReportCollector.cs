using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// The test world's HTTPS collector of TLS reports (RFC 8460 §5.2): collector.rpt.test on
/// 127.0.8.60:8443 with a certificate from the world CA (made here). It keeps every POST and
/// answers with the statuses it is given in turn (then 201), so tests can make it refuse.
/// </summary>
public sealed class ReportCollector : IAsyncDisposable
{
    public const string Address = "127.0.8.60";
    public const int Port = 8443;
    public const string Host = "collector.rpt.test";
    public const int MaxBody = 4 * 1024 * 1024;

    public sealed record Post(string Path, string? ContentType, byte[] Body);

    private readonly TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<int> _statuses;
    public ConcurrentQueue<Post> Posts { get; } = new();
    /// <summary>Every request, answered or refused.</summary>
    public int Requests;

    public ReportCollector(TestWorld world, params int[] statuses)
    {
        _statuses = new ConcurrentQueue<int>(statuses);
        using var caCert = X509Certificate2.CreateFromPemFile(Path.Combine(world.WorldDirectory, "certs", "ca.crt"), Path.Combine(world.WorldDirectory, "certs", "ca.key"));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={Host}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(Host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var notBefore = DateTimeOffset.UtcNow.AddHours(-1) < caCert.NotBefore ? new DateTimeOffset(caCert.NotBefore) : DateTimeOffset.UtcNow.AddHours(-1);
        var notAfter = DateTimeOffset.UtcNow.AddDays(30) > caCert.NotAfter ? new DateTimeOffset(caCert.NotAfter) : DateTimeOffset.UtcNow.AddDays(30);
        using var issued = request.Create(caCert, notBefore, notAfter, RandomNumberGenerator.GetBytes(8));
        _certificate = X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
        _listener = new TcpListener(IPAddress.Parse(Address), Port);
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
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await using var ssl = new SslStream(client.GetStream());
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, deadline.Token);
            var head = await ReadHeadAsync(ssl, deadline.Token);
            var lines = head.Split("\r\n");
            var path = lines[0].Split(' ') is { Length: >= 2 } parts ? parts[1] : "";
            string? Header(string name) => lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
                .Select(p => p[1].Trim()).FirstOrDefault();
            var length = int.TryParse(Header("Content-Length"), out var n) ? Math.Min(n, MaxBody) : 0;
            var body = new byte[length];
            await ssl.ReadExactlyAsync(body, deadline.Token);
            Interlocked.Increment(ref Requests);
            var status = _statuses.TryDequeue(out var s) ? s : 201;
            if (status is >= 200 and < 300) Posts.Enqueue(new Post(path, Header("Content-Type"), body));
            await ssl.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), deadline.Token);
            await ssl.FlushAsync(deadline.Token);
        }
        catch (Exception) { /* the client went away */ }
    }

    private static async Task<string> ReadHeadAsync(Stream stream, CancellationToken ct)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (head.Count < 16 * 1024)
        {
            if (await stream.ReadAsync(one, ct) == 0) break;
            head.Add(one[0]);
            if (head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n') break;
        }
        return Encoding.ASCII.GetString(head.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _certificate.Dispose();
    }
}
