using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Admin;

namespace Postern.Observability;

/// <summary>
/// The metrics endpoint: a deliberately small HTTP/1.1 server on a raw socket. It serves
/// `GET /metrics` and nothing else (404 other paths, 405 other methods, 400 malformed, 431
/// oversize), one request per connection (`Connection: close`). Bounded everywhere: the request
/// line and headers together (8 KB), each read and write phase (5 s deadline) and the number of
/// connections at once (16; more are closed as they arrive).
/// </summary>
public sealed class MetricsEndpoint : IAsyncDisposable
{
    public const int MaxConnections = 16;
    public const int MaxRequestBytes = 8 * 1024;
    public static readonly TimeSpan IoDeadline = TimeSpan.FromSeconds(5);
    /// <summary>After an error reply, unread request bytes are drained (this much at most) so closing does not reset the reply away.</summary>
    private const int MaxDrainBytes = 64 * 1024;
    private static readonly TimeSpan DrainDeadline = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly Func<CancellationToken, Task<string>> _render;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<Task> _handlers = new();
    private Task _acceptLoop = Task.CompletedTask;
    private int _active;

    /// <summary>The address and port bound (the real port when the settings say 0).</summary>
    public IPEndPoint LocalEndPoint { get; }

    private MetricsEndpoint(Socket socket, Func<CancellationToken, Task<string>> render)
    {
        _socket = socket;
        _render = render;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    /// <summary>Binds the configured address and port; a failure is a configuration error with one clear line.</summary>
    public static Socket Bind(MetricsSettings settings)
    {
        var address = IPAddress.Parse(settings.Address);
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // As the listeners do: a restart must not wait out the TIME_WAIT of the last scrapes (we close first).
            if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(address, settings.Port));
            socket.Listen(64);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var hint = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? " (is another gateway or exporter running on it? metrics.port, or metrics.enabled false)" : "";
            throw new ConfigException($"metrics endpoint cannot bind {settings.Address}:{settings.Port}: {e.Message}{hint}");
        }
    }

    private const int SolSocket = 1;      // Linux <sys/socket.h>
    private const int SoReuseAddr = 2;

    /// <summary>Binds and starts serving; render produces the exposition text for one scrape.</summary>
    public static MetricsEndpoint Start(MetricsSettings settings, Func<CancellationToken, Task<string>> render)
    {
        var endpoint = new MetricsEndpoint(Bind(settings), render);
        endpoint._acceptLoop = Task.Run(endpoint.AcceptLoop);
        return endpoint;
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
            catch (ObjectDisposedException) { break; }
            catch (SocketException)
            {
                // Out of descriptors or an aborted handshake: pause briefly rather than spin.
                try { await Task.Delay(100, _stop.Token).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
                continue;
            }
            if (Interlocked.Increment(ref _active) > MaxConnections)
            {
                Interlocked.Decrement(ref _active);
                client.Dispose();
                continue;
            }
            var handler = Task.Run(() => ServeAsync(client));
            lock (_gate)
            {
                _handlers.RemoveAll(t => t.IsCompleted);   // at most MaxConnections stay listed
                _handlers.Add(handler);
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            client.NoDelay = true;
            var (status, reason, unread) = await ReadRequestAsync(client).ConfigureAwait(false);
            if (status == 0) return;   // closed or timed out before a whole request: nothing to answer
            string body;
            var contentType = "text/plain; charset=utf-8";
            if (status == 200)
            {
                using var renderDeadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                renderDeadline.CancelAfter(IoDeadline);
                try
                {
                    body = await _render(renderDeadline.Token).ConfigureAwait(false);
                    contentType = PrometheusTextWriter.ContentType;
                }
                catch (Exception) when (!_stop.IsCancellationRequested)
                {
                    (status, reason, body) = (500, "Internal Server Error", "metrics could not be gathered\n");
                }
            }
            else body = reason.ToLowerInvariant() + "\n";
            await RespondAsync(client, status, reason, contentType, body).ConfigureAwait(false);
            if (unread) await DrainAsync(client).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The peer went away, missed a deadline, or the gateway is stopping: the connection
            // is simply closed; nothing a client does reaches past this handler.
        }
        finally
        {
            client.Dispose();
            Interlocked.Decrement(ref _active);
        }
    }

    /// <summary>
    /// Reads the request line and headers (up to the empty line) within the deadline and the
    /// size bound, and decides the answer: (0, ...) when there is nothing to answer; unread
    /// is true when the peer may still be sending.
    /// </summary>
    private async Task<(int Status, string Reason, bool Unread)> ReadRequestAsync(Socket client)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(IoDeadline);
        var buffer = new byte[MaxRequestBytes];
        var length = 0;
        var end = -1;
        while (end < 0)
        {
            if (length == buffer.Length) return (431, "Request Header Fields Too Large", true);
            int n;
            try { n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, deadline.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return (0, "", false); }
            if (n == 0) return (0, "", false);
            var from = Math.Max(0, length - 3);
            length += n;
            end = HeaderEnd(buffer.AsSpan(0, length), from);
        }
        var (status, reason) = Decide(buffer.AsSpan(0, end));
        // A refused request may have more on its way (a body, more headers): drained before closing.
        return (status, reason, status != 200);
    }

    /// <summary>
    /// The length of the request line and header lines (each with its line end) before the
    /// empty line that ends them (CRLF CRLF or LF LF), or -1 while that has not arrived.
    /// </summary>
    private static int HeaderEnd(ReadOnlySpan<byte> data, int from)
    {
        for (var i = from; i < data.Length; i++)
        {
            if (data[i] != (byte)'\n') continue;
            if (i >= 1 && data[i - 1] == (byte)'\n') return i;
            if (i >= 2 && data[i - 1] == (byte)'\r' && data[i - 2] == (byte)'\n') return i - 1;
        }
        return -1;
    }

    /// <summary>Validates the request line and header lines (each ending in LF) and picks the status.</summary>
    internal static (int Status, string Reason) Decide(ReadOnlySpan<byte> head)
    {
        var bad = (400, "Bad Request");
        // Only visible ASCII, space and tab on a line; CR only before LF.
        for (var i = 0; i < head.Length; i++)
        {
            var b = head[i];
            if (b == (byte)'\r' && (i + 1 >= head.Length || head[i + 1] != (byte)'\n')) return bad;
            if (b is < 0x20 and not (byte)'\t' and not (byte)'\r' and not (byte)'\n' || b >= 0x7F) return bad;
        }
        var lines = Encoding.ASCII.GetString(head).TrimEnd('\n').Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        var parts = lines[0].Split(' ');
        if (parts.Length != 3 || parts[0].Length == 0 || !parts[0].All(IsTokenChar) || parts[1].Length == 0 || parts[1][0] != '/'
            || parts[2] is not ("HTTP/1.1" or "HTTP/1.0"))
            return bad;
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            // No folded lines, a field name of token characters.
            if (colon <= 0 || !line[..colon].All(IsTokenChar)) return bad;
        }
        if (parts[0] != "GET") return (405, "Method Not Allowed");
        var query = parts[1].IndexOf('?');
        var path = query < 0 ? parts[1] : parts[1][..query];
        return path == "/metrics" ? (200, "OK") : (404, "Not Found");
    }

    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c);

    private async Task RespondAsync(Socket client, int status, string reason, string contentType, string body)
    {
        var content = Encoding.UTF8.GetBytes(body);
        var head = new StringBuilder()
            .Append("HTTP/1.1 ").Append(status).Append(' ').Append(reason).Append("\r\n")
            .Append("Content-Type: ").Append(contentType).Append("\r\n")
            .Append("Content-Length: ").Append(content.Length).Append("\r\n")
            .Append(status == 405 ? "Allow: GET\r\n" : "")
            .Append("Cache-Control: no-store\r\n")
            .Append("Connection: close\r\n\r\n");
        var bytes = Encoding.ASCII.GetBytes(head.ToString()).Concat(content).ToArray();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(IoDeadline);
        var sent = 0;
        while (sent < bytes.Length)
            sent += await client.SendAsync(bytes.AsMemory(sent), SocketFlags.None, deadline.Token).ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Send);
    }

    private async Task DrainAsync(Socket client)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(DrainDeadline);
        var buffer = new byte[4096];
        for (var drained = 0; drained < MaxDrainBytes;)
        {
            var n = await client.ReceiveAsync(buffer, SocketFlags.None, deadline.Token).ConfigureAwait(false);
            if (n == 0) return;
            drained += n;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        Task[] handlers;
        lock (_gate) handlers = [.. _handlers];
        // Every handler ends at its next deadline at the latest; the stop token ends them sooner.
        try { await Task.WhenAll(handlers).WaitAsync(IoDeadline + IoDeadline).ConfigureAwait(false); }
        catch (TimeoutException) { }
        _stop.Dispose();
    }
}
