using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.Tests.Support;

/// <summary>
/// A receiving SMTP peer on a real socket that misbehaves in ways no MTA can be configured
/// to: no ESMTP, STARTTLS advertised but refused, a handshake that dies after the 220, a
/// reply injected behind the 220 to STARTTLS, a receiver that stops reading message data.
/// Otherwise it accepts mail (in clear) and records what it got.
/// </summary>
public sealed class ScriptedPeer : IAsyncDisposable
{
    public enum Behaviour { NoEsmtp, StartTlsRefused, HandshakeFails, SevenBitOnly, InjectsAfterStartTls, NeverReadsData, SendsTlsAlert, HangsUpAfterEachMessage }

    private readonly TcpListener _listener;
    private readonly Behaviour _behaviour;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    public List<string> Messages { get; } = new();
    /// <summary>The raw bytes of each message as received (Latin-1 decoded, so 8-bit bytes show as themselves).</summary>
    public List<byte[]> RawMessages { get; } = new();
    public int Connections;
    /// <summary>Sessions this peer ended itself with a 421 (HangsUpAfterEachMessage).</summary>
    public int HangUps;

    public ScriptedPeer(Behaviour behaviour, string address = "127.0.6.1")
    {
        _behaviour = behaviour;
        _listener = new TcpListener(IPAddress.Parse(address), 0);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch (Exception) { return; }
            Interlocked.Increment(ref Connections);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.Latin1);
        async Task Say(string s) => await stream.WriteAsync(Encoding.ASCII.GetBytes(s + "\r\n"));
        try
        {
            await Say("220 scripted.test SMTP");
            while (await reader.ReadLineAsync() is { } line)
            {
                var verb = line.Split(' ')[0].ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO" when _behaviour == Behaviour.NoEsmtp: await Say("500 5.5.1 command unrecognized"); break;
                    case "EHLO" when _behaviour == Behaviour.SevenBitOnly: await Say("250-scripted.test\r\n250 PIPELINING"); break;
                    case "EHLO" when _behaviour == Behaviour.NeverReadsData: await Say("250-scripted.test\r\n250 PIPELINING"); break;
                    case "EHLO": await Say("250-scripted.test\r\n250-PIPELINING\r\n250 STARTTLS"); break;
                    case "HELO": await Say("250 scripted.test"); break;
                    case "STARTTLS" when _behaviour == Behaviour.StartTlsRefused: await Say("454 4.7.0 TLS not available due to local problem"); break;
                    case "STARTTLS" when _behaviour == Behaviour.InjectsAfterStartTls:
                        // A man in the middle's trick: a reply queued behind the 220, in one write.
                        await stream.WriteAsync("220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n"u8.ToArray());
                        var ignored = await stream.ReadAsync(new byte[1024]);
                        return;
                    case "STARTTLS" when _behaviour == Behaviour.SendsTlsAlert:
                        await Say("220 2.0.0 Ready to start TLS");
                        var clientHello = await stream.ReadAsync(new byte[4096]);
                        // A fatal handshake_failure alert (40), as a server with no common cipher sends.
                        await stream.WriteAsync(new byte[] { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 });
                        return;
                    case "STARTTLS":
                        await Say("220 2.0.0 Ready to start TLS");
                        var hello = await stream.ReadAsync(new byte[4096]);   // the ClientHello, then nonsense back
                        await stream.WriteAsync("this is not a TLS server hello\r\n"u8.ToArray());
                        return;
                    case "DATA" when _behaviour == Behaviour.NeverReadsData:
                        await Say("354 go ahead");
                        try { await Task.Delay(Timeout.Infinite, _stop.Token); } catch (OperationCanceledException) { }
                        return;
                    case "DATA":
                        await Say("354 go ahead");
                        var sb = new StringBuilder();
                        while (await reader.ReadLineAsync() is { } l && l != ".") sb.Append(l).Append('\n');
                        lock (Messages) { Messages.Add(sb.ToString()); RawMessages.Add(Encoding.Latin1.GetBytes(sb.ToString())); }
                        await Say("250 2.0.0 accepted");
                        if (_behaviour == Behaviour.HangsUpAfterEachMessage)
                        {
                            // A receiver with a very short idle timeout: the client's next command never gets read.
                            await Say("421 4.4.2 scripted.test idle timeout, closing connection");
                            client.Client.Shutdown(SocketShutdown.Both);
                            Interlocked.Increment(ref HangUps);
                            return;
                        }
                        break;
                    case "QUIT": await Say("221 bye"); return;
                    default: await Say("250 2.0.0 ok"); break;
                }
            }
        }
        catch (IOException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
    }
}
