// smtpbench: the load generator and receiving sink used by bench/run.sh, the same for
// Postern and Postfix so the two are measured alike.
//   smtpbench load  --server ip:port[,ip:port…] --sessions N --messages M --size BYTES --to ADDR
//   smtpbench relay --server ip:port --sink ip:port [--tls CERT KEY] --sessions N --messages M --size BYTES --to ADDR
// "load" reports accepted messages per second and the accept latency (end of DATA to 250).
// "relay" also runs an SMTP sink (with STARTTLS when given a certificate) and reports the
// time until every message has arrived there.
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
if (mode == "relay")
{
    X509Certificate2? cert = opts.TryGetValue("tls-cert", out var c) ? X509Certificate2.CreateFromPemFile(c, opts["tls-key"]) : null;
    if (cert is not null) cert = X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    sink = new Sink(IPEndPoint.Parse(opts["sink"]), cert);
    sink.Start();
}
else if (mode != "load") { Console.Error.WriteLine("usage: smtpbench load|relay --server ip:port ..."); return 2; }

var latencies = new List<double>[sessions];
var next = 0;
var failures = 0;
var clock = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, sessions).Select(async s =>
{
    latencies[s] = new List<double>();
    while (Interlocked.Increment(ref next) <= messages)
    {
        try { await SessionAsync(servers[s % servers.Length], to, body, latencies[s], messages, () => Interlocked.Increment(ref next) <= messages); }
        catch (Exception e) { Interlocked.Increment(ref failures); Console.Error.WriteLine($"session error: {e.Message}"); await Task.Delay(100); }
        break;
    }
}));
var acceptSeconds = clock.Elapsed.TotalSeconds;
var all = latencies.SelectMany(l => l).OrderBy(x => x).ToList();
double P(double q) => all.Count == 0 ? 0 : all[Math.Min(all.Count - 1, (int)(q * all.Count))];
var result = new StringBuilder();
result.Append($"{{\"mode\":\"{mode}\",\"messages\":{all.Count},\"size\":{size},\"sessions\":{sessions},\"accept_seconds\":{acceptSeconds:F3},\"accept_rate\":{all.Count / acceptSeconds:F1},\"p50_ms\":{P(0.50):F2},\"p99_ms\":{P(0.99):F2},\"failures\":{failures}");
if (sink is not null)
{
    var deadline = DateTime.UtcNow.AddSeconds(double.Parse(opts.GetValueOrDefault("timeout", "600")));
    while (sink.Received < all.Count && DateTime.UtcNow < deadline) await Task.Delay(5);
    var relaySeconds = clock.Elapsed.TotalSeconds;
    result.Append($",\"relayed\":{sink.Received},\"relay_seconds\":{relaySeconds:F3},\"relay_rate\":{sink.Received / relaySeconds:F1},\"sink_tls_sessions\":{sink.TlsSessions},\"sink_sessions\":{sink.Sessions}");
}
result.Append('}');
Console.WriteLine(result);
return 0;

static async Task SessionAsync(IPEndPoint server, string to, byte[] body, List<double> latencies, int messages, Func<bool> more)
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
    await Cmd("QUIT");
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

/// <summary>A discard SMTP server: counts complete messages, offers STARTTLS when it has a certificate.</summary>
sealed class Sink(IPEndPoint endpoint, X509Certificate2? certificate)
{
    private int _received, _sessions, _tls;
    public int Received => Volatile.Read(ref _received);
    public int Sessions => Volatile.Read(ref _sessions);
    public int TlsSessions => Volatile.Read(ref _tls);

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
        Stream stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.Latin1, false, 65536);
        async Task Say(string s) { var b = Encoding.ASCII.GetBytes(s + "\r\n"); await stream.WriteAsync(b); }
        try
        {
            await Say("220 sink.test ESMTP bench sink");
            while (await reader.ReadLineAsync() is { } line)
            {
                var verb = line.Split(' ')[0].ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        await Say("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 209715200" + (certificate is not null && stream is not SslStream ? "\r\n250-STARTTLS" : "") + "\r\n250 ENHANCEDSTATUSCODES");
                        break;
                    case "STARTTLS":
                        await Say("220 2.0.0 go ahead");
                        var ssl = new SslStream(stream);
                        await ssl.AuthenticateAsServerAsync(certificate!);
                        stream = ssl;
                        reader = new StreamReader(stream, Encoding.Latin1, false, 65536);
                        Interlocked.Increment(ref _tls);
                        break;
                    case "DATA":
                        await Say("354 go");
                        while (await reader.ReadLineAsync() is { } l && l != ".") { }
                        await Say("250 2.0.0 Ok: discarded");
                        Interlocked.Increment(ref _received);
                        break;
                    case "QUIT": await Say("221 2.0.0 bye"); return;
                    default: await Say("250 2.0.0 Ok"); break;
                }
            }
        }
        catch (Exception) { }
    }
}
