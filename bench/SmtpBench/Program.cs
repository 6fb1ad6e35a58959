// smtpbench: the load generator and receiving sink used by bench/run.sh, the same for
// Postern and Postfix so the two are measured alike.
//   smtpbench load  --server ip:port[,ip:port…] --sessions N --messages M --size BYTES --to ADDR [--per-session K]
//   smtpbench relay --server ip:port --sink ip:port [--tls-cert CERT --tls-key KEY] --sessions N --messages M --size BYTES --to ADDR [--per-session K]
// "load" reports accepted messages per second, the accept latency (end of DATA to 250) and the
// session latency (connect to the 221 after QUIT). N workers run in parallel, closed loop:
// without --per-session each opens one session and sends messages until all M are claimed (the
// original behaviour); with --per-session K each session carries at most K messages, then
// QUITs, and the worker opens the next one.
// "relay" also runs an SMTP sink (with STARTTLS when given a certificate) and reports the
// time until every message has arrived there, with the sink's sessions and TLS handshakes.
//   smtpbench sink --sink ip:port [--tls-cert CERT --tls-key KEY] [--seconds S]
// runs the sink alone for S seconds and prints its counters.
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

var opts = ParseArgs(args.Skip(1).ToArray());
var mode = args.FirstOrDefault() ?? "";
// Several servers (cluster members), comma-separated: the sessions are spread over them in turn.
var servers = opts.GetValueOrDefault("server", "127.0.0.1:25").Split(',').Select(IPEndPoint.Parse).ToArray();
var sessions = int.Parse(opts.GetValueOrDefault("sessions", "20"));
var messages = int.Parse(opts.GetValueOrDefault("messages", "2000"));
var size = int.Parse(opts.GetValueOrDefault("size", "1024"));
var to = opts.GetValueOrDefault("to", "user@bench.test");
var body = MakeBody(size);

Sink? sink = null;
if (mode is "relay" or "sink")
{
    X509Certificate2? cert = opts.TryGetValue("tls-cert", out var c) ? X509Certificate2.CreateFromPemFile(c, opts["tls-key"]) : null;
    if (cert is not null) cert = X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    sink = new Sink(IPEndPoint.Parse(opts["sink"]), cert);
    sink.Start();
}
else if (mode != "load") { Console.Error.WriteLine("usage: smtpbench load|relay|sink --server ip:port ..."); return 2; }
if (mode == "sink")
{
    // The sink alone (to check it by hand): its counters after --seconds.
    await Task.Delay(TimeSpan.FromSeconds(double.Parse(opts.GetValueOrDefault("seconds", "10"))));
    Console.WriteLine($"{{\"mode\":\"sink\",\"relayed\":{sink!.Received},\"sink_tls_sessions\":{sink.TlsSessions},\"sink_sessions\":{sink.Sessions},\"sink_bytes\":{sink.Bytes}}}");
    return 0;
}

var perSession = int.Parse(opts.GetValueOrDefault("per-session", "0"));   // 0 = no limit (one session per worker)
var latencies = new List<double>[sessions];
var sessionLatencies = new List<double>[sessions];
var next = 0;
var failures = 0;
var clock = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, sessions).Select(async s =>
{
    latencies[s] = new List<double>();
    sessionLatencies[s] = new List<double>();
    // Without --per-session a session is opened with its first message claimed and more()
    // claims each next one; with K, a session claims its K messages (or what is left) at once,
    // so M/K sessions carry exactly K each.
    while (true)
    {
        var count = int.MaxValue;
        if (perSession > 0)
        {
            var begin = Interlocked.Add(ref next, perSession) - perSession;
            if (begin >= messages) break;
            count = Math.Min(perSession, messages - begin);
        }
        else if (Interlocked.Increment(ref next) > messages) break;
        var inSession = 1;
        bool More()
        {
            if (perSession > 0) return inSession++ < count;
            return Interlocked.Increment(ref next) <= messages;
        }
        try
        {
            var started = Stopwatch.GetTimestamp();
            await SessionAsync(servers[s % servers.Length], to, body, latencies[s], More);
            sessionLatencies[s].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref failures); Console.Error.WriteLine($"session error: {e.Message}"); await Task.Delay(100);
            if (perSession == 0) break;   // the original behaviour: a worker ends with its session
        }
        if (perSession == 0) break;
    }
}));
var acceptSeconds = clock.Elapsed.TotalSeconds;
var all = latencies.SelectMany(l => l).OrderBy(x => x).ToList();
var allSessions = sessionLatencies.SelectMany(l => l).OrderBy(x => x).ToList();
static double Pct(List<double> sorted, double q) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];
var result = new StringBuilder();
result.Append($"{{\"mode\":\"{mode}\",\"messages\":{all.Count},\"size\":{size},\"sessions\":{sessions},\"per_session\":{perSession},\"accept_seconds\":{acceptSeconds:F3},\"accept_rate\":{all.Count / acceptSeconds:F1},\"p50_ms\":{Pct(all, 0.50):F2},\"p99_ms\":{Pct(all, 0.99):F2},\"failures\":{failures}");
result.Append($",\"inbound_sessions\":{allSessions.Count},\"session_p50_ms\":{Pct(allSessions, 0.50):F2},\"session_p99_ms\":{Pct(allSessions, 0.99):F2}");
if (sink is not null)
{
    var deadline = DateTime.UtcNow.AddSeconds(double.Parse(opts.GetValueOrDefault("timeout", "600")));
    while (sink.Received < all.Count && DateTime.UtcNow < deadline) await Task.Delay(5);
    var relaySeconds = clock.Elapsed.TotalSeconds;
    result.Append($",\"relayed\":{sink.Received},\"relay_seconds\":{relaySeconds:F3},\"relay_rate\":{sink.Received / relaySeconds:F1},\"sink_tls_sessions\":{sink.TlsSessions},\"sink_sessions\":{sink.Sessions},\"sink_bytes\":{sink.Bytes}");
}
result.Append('}');
Console.WriteLine(result);
return 0;

static async Task SessionAsync(IPEndPoint server, string to, byte[] body, List<double> latencies, Func<bool> more)
{
    using var tcp = new TcpClient { NoDelay = true };
    await tcp.ConnectAsync(server);
    var stream = tcp.GetStream();
    var reader = new StreamReader(stream, Encoding.ASCII);
    async Task<string> Reply()
    {
        string? line;
        do { line = await reader.ReadLineAsync() ?? throw new IOException("closed"); } while (line.Length > 3 && line[3] == '-');
        return line;
    }
    async Task<string> Cmd(string c)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(c + "\r\n"));
        return await Reply();
    }
    await Reply();
    await Cmd("EHLO bench.client");
    var first = true;
    while (first || more())
    {
        first = false;
        // Pipelined envelope, as smtp-source and real MTAs send it.
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"MAIL FROM:<bench@client.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n"));
        var m = await Reply(); var r = await Reply(); var d = await Reply();
        if (!m.StartsWith("250") || !r.StartsWith("250") || !d.StartsWith("354")) throw new IOException($"refused: {m} / {r} / {d}");
        var t = Stopwatch.GetTimestamp();
        await stream.WriteAsync(body);
        var done = await Reply();
        if (!done.StartsWith("250")) throw new IOException("refused: " + done);
        latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
    }
    var bye = await Cmd("QUIT");
    if (!bye.StartsWith("221")) throw new IOException("QUIT refused: " + bye);
}

static byte[] MakeBody(int size)
{
    var sb = new StringBuilder("From: bench@client.test\r\nTo: user@bench.test\r\nSubject: bench\r\nDate: Thu, 26 Sep 2024 15:23:39 +0000\r\nMessage-ID: <bench@client.test>\r\n\r\n");
    while (sb.Length < size) sb.Append("The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOP\r\n");
    sb.Append(".\r\n");
    return Encoding.ASCII.GetBytes(sb.ToString());
}

static Dictionary<string, string> ParseArgs(string[] a)
{
    var d = new Dictionary<string, string>();
    for (var i = 0; i + 1 < a.Length; i += 2) d[a[i].TrimStart('-')] = a[i + 1];
    return d;
}

/// <summary>
/// A discard SMTP server: counts complete messages, offers STARTTLS when it has a certificate.
/// Cheap for large messages: input is read into one byte buffer per connection; commands are
/// split into lines, message data is only scanned for the end-of-data sequence CRLF.CRLF (across
/// read boundaries), never turned into strings. Replies to pipelined commands are collected and
/// written when the sink needs more input, one write per group.
/// </summary>
sealed class Sink(IPEndPoint endpoint, X509Certificate2? certificate)
{
    private int _received, _sessions, _tls;
    private long _bytes;
    public int Received => Volatile.Read(ref _received);
    public int Sessions => Volatile.Read(ref _sessions);
    public int TlsSessions => Volatile.Read(ref _tls);
    public long Bytes => Interlocked.Read(ref _bytes);

    public void Start()
    {
        var listener = new TcpListener(endpoint);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start(1024);
        _ = Task.Run(async () =>
        {
            while (true)
            {
                var client = await listener.AcceptTcpClientAsync();
                _ = Task.Run(() => Serve(client));
            }
        });
    }

    private async Task Serve(TcpClient client)
    {
        Interlocked.Increment(ref _sessions);
        using var _ = client;
        client.NoDelay = true;
        var c = new SinkConnection(client.GetStream());
        try
        {
            c.Say("220 sink.test ESMTP bench sink");
            while (await c.ReadLineAsync() is { } line)
            {
                var sp = line.IndexOf(' ');
                var verb = (sp < 0 ? line : line[..sp]).ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        c.Say("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 209715200" + (certificate is not null && !c.Tls ? "\r\n250-STARTTLS" : "") + "\r\n250 ENHANCEDSTATUSCODES");
                        break;
                    case "STARTTLS":
                        c.Say("220 2.0.0 go ahead");
                        await c.StartTlsAsync(certificate!);
                        Interlocked.Increment(ref _tls);
                        break;
                    case "DATA":
                        c.Say("354 go");
                        var n = await c.SkipDataAsync();
                        if (n < 0) return;
                        Interlocked.Add(ref _bytes, n);
                        c.Say("250 2.0.0 Ok: discarded");
                        Interlocked.Increment(ref _received);
                        break;
                    case "QUIT": c.Say("221 2.0.0 bye"); await c.FlushAsync(); return;
                    default: c.Say("250 2.0.0 Ok"); break;
                }
            }
        }
        catch (Exception) { }
    }
}

/// <summary>The sink's side of one connection: a growable input buffer and the replies owed.</summary>
sealed class SinkConnection(Stream network)
{
    private Stream _stream = network;
    private byte[] _buf = new byte[64 * 1024];
    private int _start, _end;
    private readonly MemoryStream _out = new(1024);
    public bool Tls => _stream is SslStream;

    public void Say(string reply)
    {
        foreach (var ch in reply) _out.WriteByte((byte)ch);
        _out.WriteByte((byte)'\r');
        _out.WriteByte((byte)'\n');
    }

    public async Task FlushAsync()
    {
        if (_out.Length == 0) return;
        await _stream.WriteAsync(_out.GetBuffer().AsMemory(0, (int)_out.Length));
        _out.SetLength(0);
    }

    /// <summary>Writes the replies owed (the peer may be waiting for them), then reads more input.</summary>
    private async Task<bool> FillAsync()
    {
        await FlushAsync();
        if (_start == _end) _start = _end = 0;
        else if (_end == _buf.Length)
        {
            if (_start > 0) { Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start); _end -= _start; _start = 0; }
            else if (_buf.Length < 1 << 20) Array.Resize(ref _buf, _buf.Length * 2);
            else throw new IOException("command line too long");
        }
        var n = await _stream.ReadAsync(_buf.AsMemory(_end));
        if (n == 0) return false;
        _end += n;
        return true;
    }

    /// <summary>The next command line without its line end; null at end of stream.</summary>
    public async Task<string?> ReadLineAsync()
    {
        var scanned = 0;   // bytes after _start already known to hold no LF (_start moves when the buffer is compacted)
        while (true)
        {
            var i = _buf.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (i >= 0)
            {
                var length = scanned + i;
                var text = length > 0 && _buf[_start + length - 1] == '\r' ? length - 1 : length;
                var line = Encoding.Latin1.GetString(_buf, _start, text);
                _start += length + 1;
                return line;
            }
            scanned = _end - _start;
            if (!await FillAsync()) return null;
        }
    }

    /// <summary>
    /// Consumes message data up to and including the end-of-data line; returns the bytes consumed,
    /// or -1 at end of stream. A matcher for CRLF "." CRLF that starts as if a CRLF had just been
    /// seen (the DATA line's), so an empty message (".") ends at once; it carries its state across
    /// reads, and between CRs it skips ahead with a vectorised search.
    /// </summary>
    public async Task<long> SkipDataAsync()
    {
        var state = 2;   // matched so far: 0 nothing, 1 CR, 2 CRLF, 3 CRLF., 4 CRLF.CR
        long consumed = 0;
        while (true)
        {
            var span = _buf.AsSpan(_start, _end - _start);
            var i = 0;
            while (i < span.Length)
            {
                if (state == 0)
                {
                    var k = span[i..].IndexOf((byte)'\r');
                    if (k < 0) { i = span.Length; break; }
                    i += k;
                }
                var b = span[i++];
                state = state switch
                {
                    0 => 1,                                    // b is the CR found above
                    1 => b == '\n' ? 2 : b == '\r' ? 1 : 0,
                    2 => b == '.' ? 3 : b == '\r' ? 1 : 0,
                    3 => b == '\r' ? 4 : 0,
                    _ => b == '\n' ? 5 : b == '\r' ? 1 : 0,
                };
                if (state == 5)
                {
                    _start += i;   // what follows is pipelined commands
                    return consumed + i;
                }
            }
            consumed += span.Length;
            _start = _end;
            if (!await FillAsync()) return -1;
        }
    }

    public async Task StartTlsAsync(X509Certificate2 certificate)
    {
        await FlushAsync();
        _start = _end = 0;   // plaintext pipelined after STARTTLS is dropped (RFC 3207)
        var ssl = new SslStream(_stream);
        await ssl.AuthenticateAsServerAsync(certificate);
        _stream = ssl;
    }
}
