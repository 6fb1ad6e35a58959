using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>A deliberately dumb SMTP client on a raw socket, for protocol edge cases.</summary>
public sealed class RawSmtp : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly MemoryStream _pending = new();

    private RawSmtp(TcpClient tcp) { _tcp = tcp; _stream = tcp.GetStream(); }

    public static async Task<RawSmtp> ConnectAsync(IPEndPoint endpoint, IPAddress? from = null)
    {
        var tcp = from is null ? new TcpClient() : new TcpClient(new IPEndPoint(from, 0));
        await tcp.ConnectAsync(endpoint);
        return new RawSmtp(tcp);
    }

    /// <summary>One whole transaction in its own session; asserts every step is accepted.</summary>
    public static async Task SubmitAsync(IPEndPoint listener, string sender, string recipient, string subject = "test")
    {
        await using var c = await ConnectAsync(listener);
        Expect(await c.ReadReplyAsync(), "220");
        Expect(await c.CommandAsync("EHLO client.test"), "250");
        Expect(await c.CommandAsync($"MAIL FROM:<{sender}>"), "250");
        Expect(await c.CommandAsync($"RCPT TO:<{recipient}>"), "250");
        Expect(await c.CommandAsync("DATA"), "354");
        Expect(await c.CommandAsync($"Subject: {subject}\r\n\r\nx\r\n."), "250");
        await c.CommandAsync("QUIT");
    }

    private static void Expect(string? text, string code)
    {
        if (text is null || !text.StartsWith(code, StringComparison.Ordinal)) throw new Xunit.Sdk.XunitException($"expected {code}, got {text ?? "(closed)"}");
    }

    public Task SendAsync(string text) => SendBytesAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendBytesAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Reads one complete reply (all lines of a multi-line reply), or null at end of stream.</summary>
    public async Task<string?> ReadReplyAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        var sb = new StringBuilder();
        while (true)
        {
            var line = await ReadLineAsync(cts.Token);
            if (line is null) return sb.Length == 0 ? null : sb.ToString();
            sb.Append(line).Append('\n');
            if (line.Length < 4 || line[3] == ' ') return sb.ToString().TrimEnd('\n');
        }
    }

    private async Task<string?> ReadLineAsync(CancellationToken ct)
    {
        var line = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            var n = await _stream.ReadAsync(one, ct);
            if (n == 0) return line.Count == 0 ? null : Encoding.UTF8.GetString(line.ToArray());
            if (one[0] == '\n') return Encoding.UTF8.GetString(line.ToArray()).TrimEnd('\r');
            line.Add(one[0]);
        }
    }

    /// <summary>Sends a command line and returns the reply.</summary>
    public async Task<string> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync() ?? "(connection closed)";
    }

    public System.Security.Cryptography.X509Certificates.X509Certificate? RemoteCertificate { get; private set; }

    public async Task StartTlsAsync()
    {
        var ssl = new SslStream(_stream, false, (_, _, _, _) => true);
        await ssl.AuthenticateAsClientAsync("postern.test");
        RemoteCertificate = ssl.RemoteCertificate;
        _stream = ssl;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
        await _pending.DisposeAsync();
    }
}
