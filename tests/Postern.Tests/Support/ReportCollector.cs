using System.Collections.Concurrent;
using System.Net.Security;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// The test world's HTTPS collector of TLS reports (RFC 8460 §5.2): collector.rpt.test on
/// 127.0.8.60:8443 with a certificate from the world CA (made here). It keeps every POST and
/// answers with the statuses it is given in turn (then 201), so tests can make it refuse.
/// </summary>
public sealed class ReportCollector(TestWorld world, params int[] statuses) : HttpsTestServer(world, Address, Port, Host)
{
    public const string Address = "127.0.8.60";
    public const int Port = 8443;
    public const string Host = "collector.rpt.test";
    public const int MaxBody = 4 * 1024 * 1024;

    public sealed record Post(string Path, string? ContentType, byte[] Body);

    private readonly ConcurrentQueue<int> _statuses = new(statuses);
    public ConcurrentQueue<Post> Posts { get; } = new();
    /// <summary>Every request, answered or refused.</summary>
    public int Requests;

    protected override async Task ServeAsync(SslStream ssl, CancellationToken ct)
    {
        var head = await ReadHeadAsync(ssl, ct);
        var lines = head.Split("\r\n");
        var path = lines[0].Split(' ') is { Length: >= 2 } parts ? parts[1] : "";
        string? Header(string name) => lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            .Select(p => p[1].Trim()).FirstOrDefault();
        var length = int.TryParse(Header("Content-Length"), out var n) ? Math.Min(n, MaxBody) : 0;
        var body = new byte[length];
        await ssl.ReadExactlyAsync(body, ct);
        Interlocked.Increment(ref Requests);
        var status = _statuses.TryDequeue(out var s) ? s : 201;
        if (status is >= 200 and < 300) Posts.Enqueue(new Post(path, Header("Content-Type"), body));
        await ssl.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), ct);
        await ssl.FlushAsync(ct);
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
}
