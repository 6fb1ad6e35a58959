using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Text;
using Postern.Admin;
using Postern.Dns;
using Postern.Observability;
using Postern.Queue;

namespace Postern.Inbound;

/// <summary>One inbound SMTP conversation (RFC 5321, 3207, 1870, 6152, 2920, 2034, 6531, 3461, 3030).</summary>
public sealed class SmtpSession
{
    private const int CommandLineLimit = 2048;   // 512 in RFC 5321, plus room for ESMTP parameters
    /// <summary>Replies owed to a pipelining client: past this, stop reading until they are written.</summary>
    private const int ReplyBacklogLimit = 8 * 1024;
    /// <summary>Buffer for message data: large enough that long lines and BDAT chunks arrive in few reads.</summary>
    private const int DataBufferSize = 64 * 1024;
    private static readonly Encoding Utf8 = new UTF8Encoding(false, false);

    private readonly Listener _listener;
    private readonly Stream _network;
    private readonly IPEndPoint _local;
    private readonly IPEndPoint _remote;
    private readonly long _icid;
    private readonly HatDecision _hat;
    private readonly MailFlowPolicy _policy;
    private readonly SmtpLineReader _reader;
    private Stream _stream;
    private readonly ArrayBufferWriter<byte> _out = new(512);
    private readonly CancellationToken _shutdown;
    private readonly MailEventStream _events;

    // session state
    private string? _helo;
    private bool _esmtp;
    private SslStream? _tls;
    private string _tlsSummary = "";
    private int _messagesThisSession;
    /// <summary>When the command wait now running ends (UTC ticks), 0 outside command waits.</summary>
    private long _commandWaitUntilTicks;

    // transaction state
    private long _mid;
    private string? _sender;
    private readonly List<QueuedRecipient> _recipients = new();
    private DsnRet _ret;
    private string? _envid;
    private bool _smtpUtf8;
    private string _bodyType = "7BIT";
    private MessageBuffer? _bdat;
    private bool _bdatFailed;
    private string? _bdatError;
    private string? _bdatRefusal;
    private bool _bdatLastWasCr;

    public SmtpSession(Listener listener, Stream network, IPEndPoint local, IPEndPoint remote, long icid, HatDecision hat, CancellationToken shutdown)
    {
        _listener = listener;
        _network = _stream = network;
        _local = local;
        _remote = remote;
        _icid = icid;
        _hat = hat;
        _policy = hat.Policy;
        _reader = new SmtpLineReader(network);
        _shutdown = shutdown;
        _events = listener.Events;
    }

    private string Hostname => _listener.Config.Hostname;

    /// <summary>The policy's command timeout, cut short while the listener is under stress (like Postfix's stress mode).</summary>
    private TimeSpan CommandTimeout => TimeSpan.FromSeconds(_listener.UnderStress
        ? Math.Min(_policy.CommandTimeoutSeconds, _listener.Settings.StressCommandTimeoutSeconds)
        : _policy.CommandTimeoutSeconds);
    private bool TlsOffered => _policy.Tls != InboundTls.No && _tls is null && _listener.Certificate is not null;

    public async Task RunAsync()
    {
        var closeReason = "";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_shutdown);
        // Stress cuts only a command wait, and only when that makes it shorter: a message in
        // transfer keeps its data deadline.
        _listener.Track(_icid, stress =>
        {
            if (Volatile.Read(ref _commandWaitUntilTicks) is var until and > 0 && until - DateTime.UtcNow.Ticks > stress.Ticks)
                timeout.CancelAfter(stress);
        });
        try
        {
            if (_policy.Action == PolicyAction.Reject)
            {
                // RFC 5321 §3.1: a 554 greeting, then only QUIT is honoured.
                Reply($"554 5.7.1 {Hostname} Access denied");
                await FlushAsync().ConfigureAwait(false);
                await RefusedLoopAsync(timeout).ConfigureAwait(false);
                closeReason = "access denied by HAT";
                return;
            }
            Reply($"220 {Hostname} ESMTP Postern");
            await FlushAsync().ConfigureAwait(false);
            closeReason = await CommandLoopAsync(timeout).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            await TryFinalReplyAsync($"421 4.3.2 {Hostname} Service shutting down").ConfigureAwait(false);
            closeReason = "shutdown";
        }
        catch (OperationCanceledException)
        {
            await TryFinalReplyAsync($"421 4.4.2 {Hostname} Error: timeout exceeded").ConfigureAwait(false);
            closeReason = "timeout";
        }
        catch (Exception e) when (e is IOException or AuthenticationException or ObjectDisposedException)
        {
            closeReason = "connection lost: " + e.Message;
        }
        finally
        {
            _listener.Untrack(_icid);
            _events.Publish(new ConnectionClosed(_icid, closeReason));
            _tls?.Dispose();
            _reader.Dispose();
            _writeDeadline?.Dispose();
        }
    }

    private async Task TryFinalReplyAsync(string line)
    {
        try
        {
            _out.Clear();
            Reply(line);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _stream.WriteAsync(_out.WrittenMemory, cts.Token).ConfigureAwait(false);
            _out.ResetWrittenCount();
            await CloseTlsAsync().ConfigureAwait(false);
        }
        catch (Exception) { /* the peer is gone */ }
    }

    /// <summary>Sends TLS close_notify so the peer sees a proper end of the TLS session.</summary>
    private async Task CloseTlsAsync()
    {
        if (_tls is null) return;
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _tls.ShutdownAsync().WaitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception) { /* the peer is gone */ }
    }

    private async Task RefusedLoopAsync(CancellationTokenSource timeout)
    {
        while (true)
        {
            var (line, _, closed) = await ReadCommandAsync(timeout).ConfigureAwait(false);
            if (closed) return;
            if (line is not null && Verb(line) == "QUIT") { Reply($"221 2.0.0 {Hostname} closing connection"); await FlushAsync().ConfigureAwait(false); return; }
            Reply("503 5.7.1 Access denied; only QUIT is accepted");
            await FlushAsync().ConfigureAwait(false);
        }
    }

    private static string Verb(string line)
    {
        var sp = line.IndexOf(' ');
        return (sp < 0 ? line : line[..sp]).ToUpperInvariant();
    }

    /// <summary>
    /// Reads the next command. Replies are written when the client has nothing more
    /// pipelined, or when they pile up past a small bound: a client that sends without
    /// reading then meets the write deadline instead of growing our memory.
    /// </summary>
    private async Task<(string? Line, string? Error, bool Closed)> ReadCommandAsync(CancellationTokenSource timeout)
    {
        if (_reader.Buffered == 0 || _out.WrittenCount > ReplyBacklogLimit) await FlushAsync().ConfigureAwait(false);
        timeout.CancelAfter(CommandTimeout);
        Volatile.Write(ref _commandWaitUntilTicks, DateTime.UtcNow.Ticks + CommandTimeout.Ticks);
        SmtpLine line;
        try { line = await _reader.ReadLineAsync(CommandLineLimit, timeout.Token).ConfigureAwait(false); }
        finally { Volatile.Write(ref _commandWaitUntilTicks, 0); }
        if (line.EndOfStream) return (null, null, true);
        if (line.TooLong) return (null, "500 5.5.2 Error: command line too long", false);
        var error = SmtpSyntax.DecodeCommandLine(_reader.Buffer.AsSpan(line.Start, line.Length), line.HasBareNewline, out var text);
        return error is null ? (text, null, false) : (null, error, false);
    }

    private async Task<string> CommandLoopAsync(CancellationTokenSource timeout)
    {
        while (true)
        {
            var (line, error, closed) = await ReadCommandAsync(timeout).ConfigureAwait(false);
            if (closed) return "peer closed";
            if (line is null) { Reply(error!); continue; }
            var verb = Verb(line);
            var arg = line.Length > verb.Length ? line[(verb.Length + 1)..] : "";

            if (_policy.Tls == InboundTls.Required && _tls is null && verb is not ("NOOP" or "EHLO" or "QUIT" or "STARTTLS"))
            {
                // RFC 3207 §4: everything but NOOP, EHLO, STARTTLS and QUIT waits for TLS.
                _events.Publish(new InboundTlsRequired(_icid, verb.Length > 16 ? verb[..16] + "..." : verb));
                Reply("530 5.7.0 Must issue a STARTTLS command first");
                if (verb == "BDAT") return "BDAT before STARTTLS";   // the chunk that follows cannot be told from commands
                continue;
            }

            switch (verb)
            {
                case "EHLO": Ehlo(arg, true); break;
                case "HELO": Ehlo(arg, false); break;
                case "NOOP": Reply("250 2.0.0 Ok"); break;
                case "RSET": ResetTransaction(); Reply("250 2.0.0 Ok"); break;
                case "VRFY": Reply("252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery"); break;
                case "HELP": Reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"); break;
                case "QUIT":
                    Reply($"221 2.0.0 {Hostname} closing connection");
                    await FlushAsync().ConfigureAwait(false);
                    await CloseTlsAsync().ConfigureAwait(false);
                    return "quit";
                case "STARTTLS":
                    if (!await StartTlsAsync(arg, timeout).ConfigureAwait(false)) return "TLS failed";
                    break;
                case "MAIL": await MailAsync(arg).ConfigureAwait(false); break;
                case "RCPT": Rcpt(arg); break;
                case "DATA":
                    if (!await DataAsync(arg, timeout).ConfigureAwait(false)) return "bare CR or LF in message data";
                    break;
                case "BDAT":
                    if (!await BdatAsync(arg, timeout).ConfigureAwait(false)) return "BDAT failed";
                    break;
                default: Reply("502 5.5.2 Error: command not recognized"); break;
            }
        }
    }

    private void Ehlo(string arg, bool extended)
    {
        var name = arg.Trim(' ');
        // The name goes into the Received header: one token, nothing that could end or bend it.
        if (!SmtpSyntax.IsHeloArgument(name)) { Reply($"501 5.5.4 Syntax: {(extended ? "EHLO" : "HELO")} hostname"); return; }
        ResetTransaction();
        _helo = name;
        _esmtp = extended;
        if (!extended) { Reply($"250 {Hostname}"); return; }
        var lines = new List<string>
        {
            Hostname,
            "PIPELINING",
            $"SIZE {_policy.MaxMessageSize}",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
        };
        if (TlsOffered) lines.Add("STARTTLS");
        lines.Add("DSN");
        lines.Add("SMTPUTF8");
        lines.Add("CHUNKING");
        for (var i = 0; i < lines.Count; i++) Reply($"250{(i == lines.Count - 1 ? ' ' : '-')}{lines[i]}");
    }

    private async Task<bool> StartTlsAsync(string arg, CancellationTokenSource timeout)
    {
        if (arg.Length > 0) { Reply("501 5.5.4 Syntax: STARTTLS"); return true; }
        if (_tls is not null) { Reply("503 5.5.1 Error: TLS already active"); return true; }
        if (!TlsOffered) { Reply("454 4.7.0 TLS not available"); return true; }
        Reply("220 2.0.0 Ready to start TLS");
        await FlushAsync().ConfigureAwait(false);
        if (_reader.Buffered > 0)
        {
            // Plaintext pipelined after STARTTLS would be taken as sent under TLS (CVE-2011-0411 class).
            _events.Publish(new ProtocolViolation(_icid, "command pipelining after STARTTLS"));
            return false;
        }
        var certificate = _listener.Certificate;
        if (certificate is null) { _events.Publish(new InboundTlsFailed(_icid, "no certificate available")); return false; }
        var ssl = new SslStream(_network, leaveInnerStreamOpen: false);
        try
        {
            timeout.CancelAfter(CommandTimeout < TimeSpan.FromSeconds(60) ? CommandTimeout : TimeSpan.FromSeconds(60));
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = certificate.Context,
                ClientCertificateRequired = false,
                EncryptionPolicy = EncryptionPolicy.RequireEncryption,
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !_shutdown.IsCancellationRequested)
        {
            _events.Publish(new InboundTlsFailed(_icid, e.Message));
            await ssl.DisposeAsync().ConfigureAwait(false);
            return false;
        }
        _tls = ssl;
        _stream = ssl;
        _reader.ReplaceStream(ssl);
        var protocol = TlsNames.Protocol(ssl.SslProtocol);
        var cipher = TlsNames.Cipher(ssl);
        _tlsSummary = $"{protocol} with cipher {cipher}";
        _events.Publish(new InboundTlsNegotiated(_icid, protocol, cipher));
        // RFC 3207 §4.2: forget everything learned before TLS.
        _helo = null;
        _esmtp = false;
        ResetTransaction();
        return true;
    }

    private void ResetTransaction()
    {
        _sender = null;
        _recipients.Clear();
        _ret = DsnRet.Unspecified;
        _envid = null;
        _smtpUtf8 = false;
        _bodyType = "7BIT";
        _bdat?.Dispose();
        _bdat = null;
        _bdatFailed = false;
        _bdatError = null;
        _bdatRefusal = null;
        _bdatLastWasCr = false;
        _mid = 0;
        _reader.Trim();
    }

    private async Task MailAsync(string arg)
    {
        if (_helo is null) { Reply("503 5.5.1 Error: send HELO/EHLO first"); return; }
        if (_sender is not null) { Reply("503 5.5.1 Error: nested MAIL command"); return; }
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) { Reply("501 5.5.4 Syntax: MAIL FROM:<address>"); return; }
        if (_messagesThisSession >= _policy.MaxMessagesPerConnection) { Reply("452 4.5.3 Error: too many messages in this session"); return; }
        var error = SmtpSyntax.ParsePath(arg[5..], allowNull: true, out var sender, out var parameters);
        if (error is not null) { Reply(error); return; }
        var smtpUtf8 = false;
        var bodyType = "7BIT";
        DsnRet ret = DsnRet.Unspecified;
        string? envid = null;
        foreach (var (key, value) in parameters)
        {
            if (!_esmtp) { Reply("555 5.5.4 Error: parameters need EHLO"); return; }
            switch (key)
            {
                case "SIZE":
                    if (value is null || !SmtpSyntax.TryParseNumber(value, out var size)) { Reply("501 5.5.4 Bad SIZE parameter"); return; }
                    if (size > _policy.MaxMessageSize) { Reply("552 5.3.4 Message size exceeds fixed maximum message size"); return; }
                    break;
                case "BODY":
                    var b = value?.ToUpperInvariant();
                    if (b is not ("7BIT" or "8BITMIME")) { Reply("501 5.5.4 Unsupported BODY type"); return; }
                    bodyType = b;
                    break;
                case "SMTPUTF8":
                    if (value is not null) { Reply("501 5.5.4 SMTPUTF8 takes no value"); return; }
                    smtpUtf8 = true;
                    break;
                case "RET":
                    ret = value?.ToUpperInvariant() switch { "FULL" => DsnRet.Full, "HDRS" => DsnRet.Headers, _ => DsnRet.Unspecified };
                    if (ret == DsnRet.Unspecified) { Reply("501 5.5.4 Bad RET parameter"); return; }
                    break;
                case "ENVID":
                    envid = value is null ? null : SmtpSyntax.DecodeXtext(value);
                    if (envid is null || envid.Length > 100 || !SmtpSyntax.IsPrintable(envid)) { Reply("501 5.5.4 Bad ENVID parameter"); return; }
                    break;
                case "AUTH": break;   // RFC 4954 AUTH= on MAIL is informational; we do not advertise AUTH
                default: Reply($"555 5.5.4 Unsupported parameter {key}"); return;
            }
        }
        if (!smtpUtf8 && !SmtpSyntax.IsAscii(sender)) { Reply("553 5.6.7 Non-ASCII address needs SMTPUTF8"); return; }
        _mid = await _listener.Store.NextIdAsync(IdKind.Message).ConfigureAwait(false);
        _sender = sender;
        _smtpUtf8 = smtpUtf8;
        _bodyType = bodyType;
        _ret = ret;
        _envid = envid;
        _events.Publish(new MessageStarted(_mid, _icid));
        _events.Publish(new MessageFrom(_mid, _icid, sender));
        Reply("250 2.1.0 Ok");
    }

    private void Rcpt(string arg)
    {
        if (_sender is null) { Reply("503 5.5.1 Error: need MAIL command"); return; }
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) { Reply("501 5.5.4 Syntax: RCPT TO:<address>"); return; }
        // RFC 5321 §4.5.1: "<postmaster>" without a domain must be accepted; it means the
        // postmaster of the first domain this gateway accepts mail for.
        var path = arg[3..];
        if (path.TrimStart().StartsWith("<postmaster>", StringComparison.OrdinalIgnoreCase) && _listener.Rat.PostmasterDomain is { } own)
            path = $"<postmaster@{own}>" + path.TrimStart()["<postmaster>".Length..];
        var error = SmtpSyntax.ParsePath(path, allowNull: false, out var recipient, out var parameters);
        if (error is not null) { Reply(error); return; }
        if (_recipients.Count >= _policy.MaxRecipientsPerMessage) { Reply("452 4.5.3 Error: too many recipients"); return; }
        if (!_smtpUtf8 && !SmtpSyntax.IsAscii(recipient)) { Reply("553 5.6.7 Non-ASCII address needs SMTPUTF8"); return; }
        var notify = DsnNotify.Default;
        string? orcpt = null;
        foreach (var (key, value) in parameters)
        {
            if (!_esmtp) { Reply("555 5.5.4 Error: parameters need EHLO"); return; }
            switch (key)
            {
                case "NOTIFY":
                    foreach (var word in (value ?? "").ToUpperInvariant().Split(','))
                        notify |= word switch { "NEVER" => DsnNotify.Never, "SUCCESS" => DsnNotify.Success, "FAILURE" => DsnNotify.Failure, "DELAY" => DsnNotify.Delay, _ => (DsnNotify)(-1) };
                    if ((int)notify < 0 || (notify.HasFlag(DsnNotify.Never) && notify != DsnNotify.Never)) { Reply("501 5.5.4 Bad NOTIFY parameter"); return; }
                    break;
                case "ORCPT":
                    orcpt = SmtpSyntax.ParseOrcpt(value);
                    if (orcpt is null) { Reply("501 5.5.4 Bad ORCPT parameter"); return; }
                    break;
                default: Reply($"555 5.5.4 Unsupported parameter {key}"); return;
            }
        }
        var rawDomain = SmtpSyntax.DomainOf(recipient);
        var domain = rawDomain.StartsWith('[') ? rawDomain : DomainNames.Normalize(rawDomain);
        if (domain is null) { Reply("501 5.1.2 Bad recipient domain"); return; }
        if (_policy.Action != PolicyAction.Relay)
        {
            if (!_listener.Rat.Accepts(domain))
            {
                // Not one of ours and this sender may not relay: never an open relay.
                _events.Publish(new RecipientRefused(_mid, _icid, recipient, "RAT"));
                Reply($"550 5.7.1 <{recipient}>: Relay access denied");
                return;
            }
            // postmaster takes mail from anyone, bounces included (RFC 5321 §4.5.1).
            var toPostmaster = recipient[..recipient.LastIndexOf('@')].Equals("postmaster", StringComparison.OrdinalIgnoreCase);
            if (_sender!.Length == 0 && !toPostmaster && _listener.Config.DestinationControls.TagsAnyDestination && _listener.BounceVerification is { } tagger)
            {
                // A real bounce comes back to a sender we tagged; backscatter does not.
                var (check, original) = tagger.Check(recipient, DateTimeOffset.UtcNow);
                if (check != Security.BounceTagCheck.Valid)
                {
                    var why = check switch
                    {
                        Security.BounceTagCheck.Untagged => "untagged address",
                        Security.BounceTagCheck.Expired => "expired tag",
                        _ => "invalid tag",
                    };
                    _events.Publish(new BounceVerificationFailed(_mid, _icid, recipient, why));
                    Reply($"550 5.7.1 <{recipient}>: Bounce verification failed ({why})");
                    return;
                }
                _events.Publish(new BounceVerificationPassed(_mid, _icid, recipient, original));
                recipient = original;
            }
            if (_listener.Rat.Check(domain, recipient) == RatVerdict.UnknownRecipient)
            {
                _events.Publish(new RecipientRefused(_mid, _icid, recipient, "RAT valid recipients"));
                Reply($"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown");
                return;
            }
        }
        if (domain.StartsWith('['))
        {
            Reply("550 5.1.2 Address literals are not routed");
            return;
        }
        var rid = _recipients.Count;
        _recipients.Add(new QueuedRecipient
        {
            Rid = rid, Address = recipient, Domain = domain, OriginalRecipient = orcpt, Notify = notify,
            State = RecipientState.Pending, NextAttempt = DateTimeOffset.UtcNow,
        });
        _events.Publish(new RecipientAccepted(_mid, _icid, rid, recipient));
        Reply("250 2.1.5 Ok");
    }

    private async Task<bool> DataAsync(string arg, CancellationTokenSource timeout)
    {
        if (arg.Length > 0) { Reply("501 5.5.4 Syntax: DATA"); return true; }
        if (_bdat is not null) { Reply("503 5.5.1 Error: DATA after BDAT"); return true; }
        if (_sender is null) { Reply("503 5.5.1 Error: need MAIL command"); return true; }
        if (_recipients.Count == 0) { Reply("554 5.5.1 Error: no valid recipients"); return true; }
        Reply("354 End data with <CR><LF>.<CR><LF>");
        await FlushAsync().ConfigureAwait(false);
        _reader.Reserve(DataBufferSize);

        using var body = new MessageBuffer();
        var tooBig = false;
        var lineTooLong = false;
        var dataTimeout = TimeSpan.FromSeconds(_policy.DataTimeoutSeconds);
        while (true)
        {
            // The deadline covers each wait for the peer (RFC 5321 §4.5.3.2.7), not each line already here.
            if (!_reader.TryReadBufferedLine(_policy.MaxLineLength, out var line))
            {
                timeout.CancelAfter(dataTimeout);
                line = await _reader.ReadLineAsync(_policy.MaxLineLength, timeout.Token).ConfigureAwait(false);
            }
            if (line.EndOfStream) throw new IOException("connection closed during DATA");
            if (line.HasBareNewline)
            {
                // SMTP smuggling defence: only CRLF frames lines, so "\n.\r\n" must never end data.
                _events.Publish(new MessageRefused(_mid, _icid, "bare CR or LF in message data (SMTP smuggling defence)"));
                Reply($"521 5.5.2 {Hostname} Error: bare CR or LF in message data; closing connection");
                await FlushAsync().ConfigureAwait(false);
                return false;
            }
            if (line.TooLong) { lineTooLong = true; continue; }
            // The line with its CRLF (no bare newline means it ended in CRLF): one copy per line.
            var span = _reader.Buffer.AsSpan(line.Start, line.Length + 2);
            if (line.Length == 1 && span[0] == '.') break;
            if (line.Length > 0 && span[0] == '.') span = span[1..];   // dot-unstuffing
            if (tooBig) continue;
            if (body.Length + span.Length > _policy.MaxMessageSize) { tooBig = true; continue; }
            body.Write(span);
        }
        if (tooBig)
        {
            _events.Publish(new MessageRefused(_mid, _icid, $"message exceeds the maximum size of {_policy.MaxMessageSize} bytes"));
            Reply("552 5.3.4 Message size exceeds fixed maximum message size");
            ResetTransaction();
            return true;
        }
        if (lineTooLong)
        {
            _events.Publish(new MessageRefused(_mid, _icid, $"a line exceeds {_policy.MaxLineLength} octets"));
            Reply($"552 5.5.2 Message rejected: a line exceeds {_policy.MaxLineLength} octets");
            ResetTransaction();
            return true;
        }
        await AcceptMessageAsync(body).ConfigureAwait(false);
        return true;
    }

    private async Task<bool> BdatAsync(string arg, CancellationTokenSource timeout)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || !SmtpSyntax.TryParseNumber(parts[0], out var size)
            || (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
        {
            // Without a size we cannot find the end of the chunk: the stream is unusable.
            Reply("501 5.5.4 Syntax: BDAT size [LAST]");
            await FlushAsync().ConfigureAwait(false);
            return false;
        }
        var last = parts.Length == 2;
        timeout.CancelAfter(TimeSpan.FromSeconds(_policy.DataTimeoutSeconds));
        _reader.Reserve(DataBufferSize);
        string? refusal = null;
        if (_sender is null) refusal = "503 5.5.1 Error: need MAIL command";
        else if (_recipients.Count == 0) refusal = "554 5.5.1 Error: no valid recipients";
        if (refusal is not null)
        {
            if (!await _reader.ReadExactAsync(size, _ => { }, timeout.Token).ConfigureAwait(false)) return false;
            Reply(refusal);
            return true;
        }
        _bdat ??= new MessageBuffer();
        var bdat = _bdat;
        var ok = await _reader.ReadExactAsync(size, chunk =>
        {
            if (_bdatFailed) return;
            // BDAT frames by count, but the message still travels on as lines (DATA to the
            // next hop): a bare CR or LF would be read there as a line end (RFC 5321 §2.3.8).
            if (MessageText.HasBareNewline(chunk, ref _bdatLastWasCr))
            {
                _bdatFailed = true;
                _bdatError = "554 5.6.0 Message rejected: bare CR or LF in message data";
                _bdatRefusal = "bare CR or LF in message data (BDAT)";
                return;
            }
            if (bdat.Length + chunk.Length > _policy.MaxMessageSize)
            {
                _bdatFailed = true;
                _bdatError = "552 5.3.4 Message size exceeds fixed maximum message size";
                _bdatRefusal = $"message exceeds the maximum size of {_policy.MaxMessageSize} bytes";
                return;
            }
            bdat.Write(chunk);
        }, timeout.Token).ConfigureAwait(false);
        if (!ok) throw new IOException("connection closed during BDAT");
        if (!last)
        {
            Reply(_bdatFailed ? _bdatError! : $"250 2.0.0 {size} octets received");
            return true;
        }
        if (!_bdatFailed && _bdatLastWasCr)
        {
            _bdatFailed = true;
            _bdatError = "554 5.6.0 Message rejected: bare CR or LF in message data";
            _bdatRefusal = "bare CR at the end of message data (BDAT)";
        }
        if (_bdatFailed)
        {
            _events.Publish(new MessageRefused(_mid, _icid, _bdatRefusal!));
            Reply(_bdatError!);
            ResetTransaction();
            return true;
        }
        await AcceptMessageAsync(bdat).ConfigureAwait(false);
        return true;
    }

    private async Task AcceptMessageAsync(MessageBuffer buffer)
    {
        var peek = HeaderPeek.Find(buffer.Data.Span);
        if (peek.ReceivedCount > _listener.Config.MaxReceivedHeaders)
        {
            // RFC 5321 §6.3: a message that has passed this many hops is in a loop.
            _events.Publish(new MessageRefused(_mid, _icid, $"mail loop: {peek.ReceivedCount} Received: headers (limit {_listener.Config.MaxReceivedHeaders})"));
            Reply($"554 5.4.6 Too many hops: {peek.ReceivedCount} Received: headers (mail loop?)");
            ResetTransaction();
            return;
        }
        var protocol = (_smtpUtf8 ? "UTF8SMTP" : _esmtp ? "ESMTP" : "SMTP") + (_tls is not null ? "S" : "");
        var received = new StringBuilder()
            .Append("Received: from ").Append(_helo).Append(" ([").Append(_remote.Address).Append("])\r\n")
            .Append("\tby ").Append(Hostname).Append(" (Postern) with ").Append(protocol).Append(" id ").Append(_mid);
        if (_tls is not null) received.Append("\r\n\t(using ").Append(_tlsSummary).Append(')');
        if (_recipients.Count == 1) received.Append("\r\n\tfor <").Append(_recipients[0].Address).Append('>');
        received.Append("; ").Append(MimeKit.Utils.DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        var body = buffer.WithHeader(Encoding.UTF8.GetBytes(received.ToString()));

        _events.Publish(new MessageHeadersSeen(_mid, peek.MessageId, peek.Subject));
        var message = new QueuedMessage
        {
            Mid = _mid, Icid = _icid, ReceivedAt = DateTimeOffset.UtcNow, Sender = _sender!, EnvelopeId = _envid, Ret = _ret,
            SmtpUtf8 = _smtpUtf8, BodyType = _bodyType, Size = body.Length, ClientAddress = _remote.Address.ToString(),
            Helo = _helo ?? "", Listener = _listener.Settings.Name, Recipients = new List<QueuedRecipient>(_recipients),
        };
        _events.Publish(new MessageReady(_mid, body.Length, _sender!));
        try
        {
            await _listener.Store.EnqueueAsync(message, body).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _events.Publish(new MessageRefused(_mid, _icid, "queue write failed: " + e.Message));
            Reply("451 4.3.0 Error: queue file write error");
            ResetTransaction();
            return;
        }
        _events.Publish(new MessageQueued(_mid));
        _listener.QueueWakeup();
        _messagesThisSession++;
        Reply($"250 2.0.0 Ok: Message {_mid} accepted");
        ResetTransaction();
    }

    private void Reply(string line)
    {
        var span = _out.GetSpan(line.Length * 3 + 2);
        var n = Utf8.GetBytes(line, span);
        // Last line of defence: a reply is one line whatever text went into it.
        for (var i = 0; i < n; i++) if (span[i] < 0x20 || span[i] == 0x7F) span[i] = (byte)'?';
        span[n] = (byte)'\r';
        span[n + 1] = (byte)'\n';
        _out.Advance(n + 2);
    }

    private CancellationTokenSource? _writeDeadline;

    /// <summary>Writes the pending replies; a peer that does not read them in time ends the session.</summary>
    private async ValueTask FlushAsync()
    {
        if (_out.WrittenCount == 0) return;
        // One deadline source per session, re-armed for each write: nothing allocated per command.
        var deadline = _writeDeadline ??= CancellationTokenSource.CreateLinkedTokenSource(_shutdown);
        deadline.CancelAfter(CommandTimeout);
        await _stream.WriteAsync(_out.WrittenMemory, deadline.Token).ConfigureAwait(false);
        await _stream.FlushAsync(deadline.Token).ConfigureAwait(false);
        if (!deadline.TryReset()) { deadline.Dispose(); _writeDeadline = null; }
        _out.ResetWrittenCount();
    }
}

/// <summary>What the mail log and the loop check need from a message's header block.</summary>
public readonly record struct HeaderSummary(string? MessageId, string? Subject, int ReceivedCount);

/// <summary>Finds Message-ID, Subject and the Received: count in a message's header block.</summary>
public static class HeaderPeek
{
    public static HeaderSummary Find(ReadOnlySpan<byte> message)
    {
        string? messageId = null, subject = null;
        var received = 0;
        var limit = Math.Min(message.Length, 64 * 1024);
        var pos = 0;
        while (pos < limit)
        {
            var end = message[pos..limit].IndexOf((byte)'\n');
            if (end < 0) break;
            var line = message.Slice(pos, end);
            if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
            if (line.Length == 0) break;   // end of headers
            if (StartsWith(line, "message-id:")) messageId = Encoding.UTF8.GetString(line[11..]).Trim();
            else if (StartsWith(line, "subject:")) subject = Encoding.UTF8.GetString(line[8..]).Trim();
            else if (StartsWith(line, "received:")) received++;
            pos += end + 1;
        }
        return new HeaderSummary(messageId, subject, received);
    }

    private static bool StartsWith(ReadOnlySpan<byte> line, string name)
    {
        if (line.Length < name.Length) return false;
        for (var i = 0; i < name.Length; i++)
            if (char.ToLowerInvariant((char)line[i]) != name[i]) return false;
        return true;
    }
}

public static class TlsNames
{
    public static string Protocol(SslProtocols p) => p switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
#pragma warning disable SYSLIB0039
        SslProtocols.Tls11 => "TLSv1.1",
        SslProtocols.Tls => "TLSv1",
#pragma warning restore SYSLIB0039
        _ => p.ToString(),
    };

    public static string Cipher(SslStream s) => s.NegotiatedCipherSuite.ToString();
}

/// <summary>Checks on message text as it passes through.</summary>
public static class MessageText
{
    /// <summary>
    /// True when the chunk holds a CR not followed by LF or an LF not preceded by CR.
    /// lastWasCr carries a CR at the end of one chunk into the next.
    /// </summary>
    public static bool HasBareNewline(ReadOnlySpan<byte> chunk, ref bool lastWasCr)
    {
        var i = 0;
        if (lastWasCr)
        {
            if (chunk.Length == 0) return false;
            if (chunk[0] != '\n') return true;
            i = 1;
            lastWasCr = false;
        }
        while (i < chunk.Length)
        {
            var k = chunk[i..].IndexOfAny((byte)'\r', (byte)'\n');
            if (k < 0) return false;
            i += k;
            if (chunk[i] == '\n') return true;
            if (i + 1 == chunk.Length) { lastWasCr = true; return false; }
            if (chunk[i + 1] != '\n') return true;
            i += 2;
        }
        return false;
    }
}
