using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// A minimal HTTP CONNECT proxy on a real socket: records each CONNECT target and tunnels to
/// the address the test maps it to (the proxy does its own name resolution, as real ones do).
/// </summary>
public sealed class ConnectProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<string, IPEndPoint> _resolve;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    public List<string> Targets { get; } = new();

    public ConnectProxy(string address, Func<string, IPEndPoint> resolve)
    {
        _resolve = resolve;
        _listener = new TcpListener(IPAddress.Parse(address), 0);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    public string Url => $"http://{((IPEndPoint)_listener.LocalEndpoint).Address}:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch (Exception) { return; }
            _ = Task.Run(() => TunnelAsync(client));
        }
    }

    private async Task TunnelAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var header = new StringBuilder();
        var one = new byte[1];
        while (!header.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && header.Length < 8192)
        {
            if (await stream.ReadAsync(one) == 0) return;
            header.Append((char)one[0]);
        }
        var first = header.ToString().Split("\r\n")[0].Split(' ');
        if (first.Length < 2 || first[0] != "CONNECT") { await stream.WriteAsync("HTTP/1.1 405 Method Not Allowed\r\n\r\n"u8.ToArray()); return; }
        lock (Targets) Targets.Add(first[1]);
        using var upstream = new TcpClient();
        try { await upstream.ConnectAsync(_resolve(first[1])); }
        catch (SocketException) { await stream.WriteAsync("HTTP/1.1 502 Bad Gateway\r\n\r\n"u8.ToArray()); return; }
        await stream.WriteAsync("HTTP/1.1 200 Connection established\r\n\r\n"u8.ToArray());
        var up = upstream.GetStream();
        await Task.WhenAny(stream.CopyToAsync(up), up.CopyToAsync(stream));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
    }
}
