using System.Net.Security;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// An HTTPS policy host a test can start and stop: serves one MTA-STS policy for
/// mta-sts.&lt;domain&gt; on address:443 with a certificate from the world CA (made here).
/// </summary>
public sealed class StsPolicyServer(string address, string domain, string policy, TestWorld world, bool truncate = false)
    : HttpsTestServer(world, address, 443, $"mta-sts.{domain}")
{
    public int Requests;

    /// <remarks>truncate: announce a longer body than is sent, then close (a transfer cut short).</remarks>
    protected override async Task ServeAsync(SslStream ssl, CancellationToken ct)
    {
        var reader = new StreamReader(ssl, Encoding.ASCII);
        while (await reader.ReadLineAsync(ct) is { Length: > 0 }) { }
        Interlocked.Increment(ref Requests);
        var body = Encoding.UTF8.GetBytes(policy);
        await ssl.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length + (truncate ? 500 : 0)}\r\nConnection: close\r\n\r\n"), ct);
        await ssl.WriteAsync(body, ct);
        await ssl.FlushAsync(ct);
    }
}
