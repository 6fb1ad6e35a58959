using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Postern.Admin;
using Postern.Inbound;
using Postern.Observability;
using Postern.Policy;
using Postern.Queue;

namespace Postern.Outbound;

public enum RecipientOutcome { Delivered, Deferred, Bounced }

/// <param name="Detail">What the mail log shows.</param>
/// <param name="Diagnostic">RFC 3464 Diagnostic-Code ("smtp; 550 5.1.1 ..."), when the peer said it.</param>
/// <param name="RetryAfter">Set when Postern itself held the recipient back (rate limit): retry then, not counted as an attempt.</param>
public sealed record RecipientResult(int Rid, RecipientOutcome Outcome, string Status, string Detail, long Dcid, string? RemoteHost,
    bool PeerSupportsDsn = false, string? Diagnostic = null, TimeSpan? RetryAfter = null);

/// <summary>What every outbound connection needs besides its destination: settings, trust, identity, clock.</summary>
public sealed record OutboundContext(PosternConfig Config, MailEventStream Events, Func<X509Certificate2Collection> TrustedRoots,
    Func<X509Certificate2?> ClientCertificate, VerificationOptions VerificationOptions, Func<DateTimeOffset> Now)
{
    /// <summary>The configuration in force now (a committed version applied live); Config when there is none.</summary>
    public Func<PosternConfig>? Live { get; init; }
    public PosternConfig Current => Live?.Invoke() ?? Config;

    /// <summary>Tags envelope senders for destinations with Bounce Verification on.</summary>
    public Security.BounceTagger? BounceTagger { get; init; }
}

/// <summary>Why a connection attempt did not yield a usable SMTP session.</summary>
/// <param name="Dane">The host failed DANE (verification, or unusable TLSA data): counts toward the all-hosts-failed alert.</param>
public sealed record ConnectFailure(string Status, string Reason, bool Permanent = false, bool Dane = false);

/// <summary>
/// The one exception the SMTP client throws for anything that goes wrong on the wire: I/O
/// errors, deadlines, a malformed or injected reply. Every caller handles it; the connection
/// is then unusable.
/// </summary>
public sealed class SmtpClientException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The innermost message: for TLS, the peer's alert or OpenSSL's reason, not ".NET Authentication failed".</summary>
    public static string Describe(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return ReferenceEquals(inner, e) || e.Message.Contains(inner.Message, StringComparison.Ordinal) ? e.Message : $"{e.Message} ({inner.Message})";
    }

    public static bool IsWireError(Exception e) =>
        e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or AuthenticationException or InvalidOperationException;
}

/// <summary>
/// One outbound SMTP connection (RFC 5321 client, STARTTLS, PIPELINING, CHUNKING, DSN,
/// SIZE, 8BITMIME, SMTPUTF8). It carries several transactions when the peer allows.
/// </summary>
public sealed class SmtpClientConnection : IAsyncDisposable
{
    private static readonly Encoding Utf8 = new UTF8Encoding(false);
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private Stream _stream;
    private readonly SmtpLineReader _reader;
    private readonly ArrayBufferWriter<byte> _out = new(8192);
    private readonly MailEventStream _events;
    private readonly DeliverySettings _timeouts;
    private TimeSpan CommandTimeout => TimeSpan.FromSeconds(_timeouts.CommandTimeoutSeconds);
    private TimeSpan DataBlockTimeout => TimeSpan.FromSeconds(_timeouts.DataBlockTimeoutSeconds);
    private TimeSpan DataDoneTimeout => TimeSpan.FromSeconds(_timeouts.DataDoneTimeoutSeconds);
    private readonly SmtpReplyAssembler _replies = new();
    private EhloCapabilities _capabilities = EhloCapabilities.None;
    /// <summary>True from an accepted MAIL until the final reply to the message data: only then does the next message need RSET.</summary>
    private bool _transactionOpen;
    private Security.BounceTagger? _senderTagger;
    private Func<DateTimeOffset> _now = () => DateTimeOffset.UtcNow;

    public long Dcid { get; }
    public NextHop Hop { get; }
    public string Domain { get; }
    public bool IsEsmtp { get; private set; }
    public bool Reusable { get; private set; } = true;

    /// <summary>
    /// Whether an idle connection can take another message: the peer has neither closed it
    /// nor said anything (an unsolicited reply is a 421 timeout). Checked before reusing a
    /// connection that waited, so a lost session never costs a message an attempt.
    /// </summary>
    public bool IsIdleAndOpen()
    {
        if (!Reusable || _reader.Buffered > 0) return false;
        try { return !_socket.Poll(0, SelectMode.SelectRead) && _socket.Connected; }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return false; }
    }

    private SmtpClientConnection(Socket socket, long dcid, NextHop hop, string domain, MailEventStream events, DeliverySettings timeouts)
    {
        _socket = socket;
        _network = new NetworkStream(socket, ownsSocket: true);
        _stream = _network;
        _reader = new SmtpLineReader(_network, 8192);
        _events = events;
        _timeouts = timeouts;
        Dcid = dcid;
        Hop = hop;
        Domain = domain;
    }

    /// <summary>
    /// Connects, reads the greeting, says EHLO and applies the destination's TLS level.
    /// Returns the connection, or the reason this host could not be used.
    /// </summary>
    public static async Task<(SmtpClientConnection? Connection, ConnectFailure? Failure)> OpenAsync(
        NextHop hop, EffectiveDestination destination, long dcid, OutboundContext context, CancellationToken ct, DaneHostPolicy? dane = null,
        StsHostKind sts = StsHostKind.NotApplicable, TlsRptPolicy? report = null)
    {
        dane ??= new DaneHostPolicy(DaneHostKind.NotApplicable, [], "DANE is off for this destination");
        var settings = context.Current.Delivery;
        var events = context.Events;
        var domain = destination.Domain;
        var socket = new Socket(hop.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (settings.SourceAddress is not null) socket.Bind(new IPEndPoint(IPAddress.Parse(settings.SourceAddress), 0));
            using var connectCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connectCts.CancelAfter(TimeSpan.FromSeconds(settings.ConnectTimeoutSeconds));
            await socket.ConnectAsync(new IPEndPoint(hop.Address, hop.Port), connectCts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            socket.Dispose();
            var reason = e is OperationCanceledException ? "connection timed out" : ((SocketException)e).SocketErrorCode == SocketError.ConnectionRefused ? "connection refused" : e.Message;
            events.Publish(new DeliveryConnectionFailed(domain, hop.Host, hop.Address, hop.Port, reason));
            return (null, new ConnectFailure("4.4.1", $"connect to {hop.Host}[{hop.Address}]:{hop.Port}: {reason}"));
        }
        var connection = new SmtpClientConnection(socket, dcid, hop, domain, events, settings)
        {
            _senderTagger = destination.BounceVerification ? context.BounceTagger : null,
            _now = context.Now,
            _report = report,
        };
        events.Publish(new DeliveryConnectionOpened(dcid, (IPEndPoint)socket.LocalEndPoint!, hop.Address, hop.Port, hop.Host, domain));
        var daneMode = destination.Dane is DaneSupport.None or DaneSupport.Default ? null : destination.Dane.ToString().ToLowerInvariant();
        events.Publish(new DeliveryPolicyApplied(dcid, domain, EffectiveDestination.LevelName(destination.Tls), destination.TlsSource, daneMode));
        if (daneMode is not null && dane.Kind == DaneHostKind.NotApplicable)
            events.Publish(new DaneOutcome(dcid, domain, hop.Host, DaneResult.NotApplicable, null, -1, $"{dane.Reason}; TLS {EffectiveDestination.LevelName(destination.Tls)} applies"));
        try
        {
            var failure = await connection.HandshakeAsync(destination, dane, sts, context, ct).ConfigureAwait(false);
            if (failure is null) return (connection, null);
            await connection.CloseAsync(failure.Reason, sendQuit: connection.Reusable).ConfigureAwait(false);
            return (null, failure);
        }
        catch (SmtpClientException e)
        {
            // The peer went away (or went silent) between STARTTLS and a TLS session: a failed TLS session for reports.
            if (connection._startTlsSent) connection.ReportSession(TlsRptResultType.ValidationFailure, e.Message);
            await connection.CloseAsync(e.Message, sendQuit: false).ConfigureAwait(false);
            return (null, new ConnectFailure("4.4.2", $"{hop.Host}[{hop.Address}]: {e.Message}"));
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // Not a wire error: a fault of ours. The socket is still closed and the attempt still counts.
            await connection.CloseAsync("internal error", sendQuit: false).ConfigureAwait(false);
            return (null, new ConnectFailure("4.3.0", $"{hop.Host}[{hop.Address}]: internal error: {e.GetType().Name}: {e.Message}"));
        }
        catch (Exception)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<ConnectFailure?> HandshakeAsync(EffectiveDestination destination, DaneHostPolicy dane, StsHostKind sts, OutboundContext context, CancellationToken ct)
    {
        var hostname = context.Current.Hostname;
        // Usable (or only unusable) secure TLSA records make TLS mandatory for this host whatever the level says (RFC 7672 §2.2);
        // an enforced MTA-STS policy makes a verified certificate for this MX host mandatory (RFC 8461 §4.2).
        var requirement = OutboundTlsPolicy.ForHost(destination, dane, sts, Hop.Host);
        var level = requirement.Level;
        _sts = requirement.StsEnforced ? "enforce" : requirement.StsTesting ? "testing" : null;
        if (_sts is not null) _events.Publish(new StsApplying(Dcid, destination.Domain, _sts));
        var greeting = await ReadReplyAsync(CommandTimeout, ct).ConfigureAwait(false);
        if (greeting.Code != 220)
            return new ConnectFailure(greeting.IsPermanent ? "5.0.0" : "4.0.0", $"{Hop.Host}[{Hop.Address}] greeted with {greeting}");
        var ehlo = await EhloAsync(hostname, ct).ConfigureAwait(false);
        if (ehlo is not null) return ehlo;

        var decision = OutboundTlsPolicy.AfterEhlo(level, IsEsmtp, Supports("STARTTLS"));
        if (decision.Step != TlsStep.StartTls)
        {
            if (level != TlsLevel.No) ReportSession(TlsRptResultType.StartTlsNotSupported, decision.Reason ?? "STARTTLS not offered");
            StsReport(destination, StsResult.StartTlsNotSupported, decision.Reason ?? "no TLS at this level", ok: false);
            return StsAware(DaneAware(TlsStepOutcome(decision, destination), dane, destination));
        }
        _startTlsSent = true;
        var reply = await CommandAsync("STARTTLS", ct).ConfigureAwait(false);
        if (reply.Code != 220)
        {
            ReportSession(TlsRptResultType.StartTlsNotSupported, $"STARTTLS answered with an error: {reply}");
            StsReport(destination, StsResult.StartTlsNotSupported, $"STARTTLS answered with an error: {reply}", ok: false);
            return StsAware(DaneAware(TlsStepOutcome(OutboundTlsPolicy.AfterStartTlsRefused(level, reply.ToString()), destination), dane, destination));
        }
        if (_reader.Buffered > 0)
        {
            // Bytes after the 220 would be read as if they came under TLS: a man in the middle
            // injecting replies (CVE-2011-0411 class). Nothing on this connection can be trusted.
            Reusable = false;
            var why = $"{Hop.Host} sent data after its 220 to STARTTLS (response injection?)";
            _events.Publish(new DeliveryTlsOutcome(Dcid, TlsOutcomeKind.ResponseInjection, why));
            ReportSession(TlsRptResultType.ValidationFailure, why);
            if (OutboundTlsPolicy.RequiresTls(level)) _events.Publish(new TlsRequiredFailed(Dcid, destination.Domain, Hop.Host, why));
            return new ConnectFailure("4.7.5", $"TLS with {Hop.Host}[{Hop.Address}] failed: {why}", Dane: dane.RequiresTls);
        }

        X509Certificate2? leaf = null;
        var clientCertificate = context.ClientCertificate();
        var presented = new List<X509Certificate2>();
        var ssl = new SslStream(_network, leaveInnerStreamOpen: true);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(CommandTimeout);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                // SNI: the TLSA base domain under DANE (RFC 7672 §8.1), else the MX host name.
                TargetHost = dane.TlsaBase ?? (Hop.IsIpLiteral ? destination.Domain : Hop.Host),
                ClientCertificates = clientCertificate is { } cc ? new X509CertificateCollection { cc } : null,
                LocalCertificateSelectionCallback = clientCertificate is { } c2 ? (_, _, _, _, _) => c2 : null,
                // The check is ours (the enabled CA lists, the level's identity rule); capture what the peer sent.
                RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
                {
                    if (certificate is not null) leaf = new X509Certificate2(certificate);
                    if (chain is not null)
                        foreach (var extra in chain.ChainPolicy.ExtraStore) presented.Add(extra);
                    return true;
                },
                EncryptionPolicy = EncryptionPolicy.RequireEncryption,
            }, cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // After the 220 there is no way back to clear text on this connection (SPEC §2).
            await ssl.DisposeAsync().ConfigureAwait(false);
            Reusable = false;
            var detail = e is OperationCanceledException ? $"no answer within {CommandTimeout.TotalSeconds} s" : SmtpClientException.Describe(e);
            var why = $"handshake with {Hop.Host} failed: {detail}";
            _events.Publish(new DeliveryTlsOutcome(Dcid, TlsOutcomeKind.HandshakeFailed, why));
            ReportSession(TlsRptResultType.ValidationFailure, why);
            if (OutboundTlsPolicy.RequiresTls(level)) _events.Publish(new TlsRequiredFailed(Dcid, destination.Domain, Hop.Host, why));
            StsReport(destination, StsResult.ValidationFailure, why, ok: false);
            return StsAware(new ConnectFailure("4.7.5", $"TLS handshake with {Hop.Host}[{Hop.Address}] failed: {detail}", Dane: dane.RequiresTls));
        }
        _stream = ssl;
        _reader.ReplaceStream(ssl);
        _events.Publish(new DeliveryTlsNegotiated(Dcid, TlsNames.Protocol(ssl.SslProtocol), TlsNames.Cipher(ssl), PeerIdentity(leaf)));

        if (requirement.Authentication == HostAuthentication.Dane)
        {
            var match = leaf is null ? DaneCheck.NoCertificate
                : DaneVerifier.Verify(leaf, presented, dane.Records, dane.ReferenceIdentifiers ?? [Hop.Host], context.Now());
            if (!match.Matched)
            {
                _events.Publish(new DaneOutcome(Dcid, destination.Domain, Hop.Host, DaneResult.Failed, null, -1, match.Reason));
                // No TLSA record of the RRset validated the certificate (RFC 8460 §4.3.2.1).
                ReportSession(TlsRptResultType.TlsaInvalid, match.Reason);
                _events.Publish(new TlsRequiredFailed(Dcid, destination.Domain, Hop.Host, "DANE: " + match.Reason));
                return new ConnectFailure("4.7.5", $"DANE verification of {Hop.Host}[{Hop.Address}] failed: {match.Reason}", Dane: true);
            }
            _events.Publish(new DaneOutcome(Dcid, destination.Domain, Hop.Host, DaneResult.Authenticated, match.Record!.ToString(), match.Depth,
                $"{match.Reason} ({dane.Reason})"));
            ReportSession(null, "");
            Encrypted = true;
            CertificateVerified = true;
            return await EhloAsync(hostname, ct).ConfigureAwait(false);
        }
        if (dane.Kind == DaneHostKind.EncryptOnly)   // mandatory TLS, no authentication (RFC 7672 §2.2)
        {
            _events.Publish(new DaneOutcome(Dcid, destination.Domain, Hop.Host, DaneResult.EncryptOnly, null, -1, dane.Reason));
            ReportSession(null, "");
            Encrypted = true;
            return await EhloAsync(hostname, ct).ConfigureAwait(false);
        }

        var references = requirement.References ?? ReferenceIdentifiers(destination.Domain);
        var rule = requirement.StsEnforced ? IdentityRule.SubjectAltNameOnly : OutboundTlsPolicy.IdentityRuleFor(level);
        var check = leaf is null ? CertificateCheck.NoCertificate
            : CertificateVerifier.Verify(leaf, presented, context.TrustedRoots(), references, rule, context.Now(), context.VerificationOptions);
        if (_sts is not null)
        {
            // MTA-STS: TLS 1.2 or newer, a PKIX-valid certificate for the MX host actually dialled (not the domain, not another policy MX).
            var stsCheck = requirement.StsEnforced ? check : leaf is null ? CertificateCheck.NoCertificate
                : CertificateVerifier.Verify(leaf, presented, context.TrustedRoots(), [Hop.Host], IdentityRule.SubjectAltNameOnly, context.Now(), context.VerificationOptions);
            var oldTls = ssl.SslProtocol is not (SslProtocols.Tls12 or SslProtocols.Tls13);
            if (oldTls) ReportSession(TlsRptResultType.ValidationFailure, $"{TlsNames.Protocol(ssl.SslProtocol)} is older than TLS 1.2");
            else if (!stsCheck.Verified) ReportSession(TlsRptPolicy.ForCertificate(stsCheck), stsCheck.Reason);
            else ReportSession(null, "");
            if (oldTls) StsReport(destination, StsResult.ValidationFailure, $"{TlsNames.Protocol(ssl.SslProtocol)} is older than TLS 1.2", ok: false);
            else if (!stsCheck.Verified)
                StsReport(destination, stsCheck.NameMatched || !stsCheck.ChainTrusted ? StsResult.ValidationFailure : StsResult.CertificateHostMismatch, "certificate: " + stsCheck.Reason, ok: false);
            else StsReport(destination, StsResult.Ok, "", ok: true);
            if (requirement.StsEnforced && oldTls)
                return new ConnectFailure("4.7.5", $"MTA-STS policy for {destination.Domain}: {Hop.Host} negotiated {TlsNames.Protocol(ssl.SslProtocol)}, older than TLS 1.2");
        }
        var verdict = OutboundTlsPolicy.AfterHandshake(level, check);
        if (OutboundTlsPolicy.Verifies(level) || check.Verified)
            _events.Publish(verdict.Verified ? new DeliveryTlsOutcome(Dcid, TlsOutcomeKind.CertificateVerified, check.Reason)
                : verdict.Deliver ? new DeliveryTlsOutcome(Dcid, TlsOutcomeKind.CertificateNotVerified, verdict.LogText)
                : new DeliveryTlsOutcome(Dcid, TlsOutcomeKind.VerifyFailed, check.Reason));
        // Without a policy a session counts as TLS negotiated, unless the level's own verification refused it.
        if (!verdict.Deliver) ReportSession(TlsRptPolicy.ForCertificate(check), check.Reason);
        else ReportSession(null, "");
        if (!verdict.Deliver)
        {
            _events.Publish(new TlsRequiredFailed(Dcid, destination.Domain, Hop.Host, "verify error: " + check.Reason));
            return StsAware(new ConnectFailure("4.7.5", $"TLS required, but the certificate of {Hop.Host}[{Hop.Address}] did not verify: {check.Reason}"));
        }
        Encrypted = true;
        CertificateVerified = check.Verified;
        return await EhloAsync(hostname, ct).ConfigureAwait(false);
    }

    private string? _sts;
    /// <summary>The policy this connection's TLS session is reported under; null = not reported (reporting off, or report traffic itself).</summary>
    private TlsRptPolicy? _report;
    private bool _reported;
    private bool _startTlsSent;

    /// <summary>
    /// The session's outcome for TLS reports, once per connection. A policy that could not be
    /// had (an MTA-STS fetch failure, a host outside the policy's mx list) fails every session
    /// under it, whatever TLS did.
    /// </summary>
    private void ReportSession(TlsRptResultType? failure, string detail)
    {
        if (_report is null || _reported) return;
        _reported = true;
        if (_report.Failure is { } policyFailure) (failure, detail) = (policyFailure, _report.FailureDetail);
        _events.Publish(new TlsSessionReported(Dcid, _report, Hop.Host, (_socket.LocalEndPoint as IPEndPoint)?.Address.ToString(), Hop.Address.ToString(),
            failure, detail));
    }

    /// <summary>The MTA-STS outcome for this host: success, an enforced failure, or what testing mode would have refused.</summary>
    private void StsReport(EffectiveDestination destination, StsResult result, string reason, bool ok)
    {
        if (_sts is null) return;
        if (ok) _events.Publish(new StsSuccessful(Dcid, destination.Domain));
        else _events.Publish(new StsHostFailed(Dcid, destination.Domain, Hop.Host, result, reason, Testing: _sts == "testing"));
    }

    /// <summary>Under an enforced MTA-STS policy a failure says so (the deferral and, in the end, the DSN carry it).</summary>
    private ConnectFailure? StsAware(ConnectFailure? failure) =>
        failure is null || _sts != "enforce" ? failure : failure with { Reason = $"MTA-STS policy enforced: {failure.Reason}" };

    /// <summary>Under DANE a failed TLS step is a DANE failure of this host (it counts toward the alert).</summary>
    private ConnectFailure? DaneAware(ConnectFailure? failure, DaneHostPolicy dane, EffectiveDestination destination)
    {
        if (failure is null || !dane.RequiresTls) return failure;
        _events.Publish(new DaneOutcome(Dcid, destination.Domain, Hop.Host, DaneResult.Failed, null, -1, $"TLS is mandatory ({dane.Reason}), but {failure.Reason}"));
        return failure with { Dane = true };
    }

    /// <summary>RFC 6125 reference identifiers: the MX (or route) host name and the destination domain.</summary>
    private IReadOnlyList<string> ReferenceIdentifiers(string domain) =>
        Hop.IsIpLiteral || string.Equals(Hop.Host, domain, StringComparison.OrdinalIgnoreCase) ? [domain] : [Hop.Host, domain];

    private ConnectFailure? TlsStepOutcome(TlsDecision decision, EffectiveDestination destination)
    {
        if (decision.Reason is not null)
            _events.Publish(new DeliveryTlsOutcome(Dcid, decision.Step == TlsStep.ContinueInClear ? TlsOutcomeKind.NotPossibleContinuingInClear : TlsOutcomeKind.NotPossible, decision.Reason));
        if (decision.Step != TlsStep.Fail) return null;
        _events.Publish(new TlsRequiredFailed(Dcid, destination.Domain, Hop.Host, decision.Reason!));
        return new ConnectFailure("4.7.4", $"TLS is required, but {Hop.Host}[{Hop.Address}]: {decision.Reason}");
    }

    public bool Encrypted { get; private set; }
    public bool CertificateVerified { get; private set; }

    /// <summary>"subjectAltName:dNSName=a, dNSName=b" or the subject when there is no SAN.</summary>
    public static string PeerIdentity(X509Certificate? certificate)
    {
        if (certificate is null) return "no peer certificate";
        using var cert = new X509Certificate2(certificate);
        var names = new List<string>();
        foreach (var ext in cert.Extensions)
            if (ext is X509SubjectAlternativeNameExtension san)
                names.AddRange(san.EnumerateDnsNames().Select(n => "dNSName=" + n));
        return names.Count > 0 ? "subjectAltName:" + string.Join(", ", names) : "subject:" + cert.Subject;
    }

    private async Task<ConnectFailure?> EhloAsync(string hostname, CancellationToken ct)
    {
        var reply = await CommandAsync($"EHLO {hostname}", ct).ConfigureAwait(false);
        if (reply.Code == 250)
        {
            IsEsmtp = true;
            _capabilities = EhloCapabilities.Parse(reply.Lines);
            return null;
        }
        _capabilities = EhloCapabilities.None;
        if (reply.Code == 421) return new ConnectFailure("4.0.0", $"{Hop.Host} said {reply}");
        IsEsmtp = false;
        reply = await CommandAsync($"HELO {hostname}", ct).ConfigureAwait(false);
        return reply.Code == 250 ? null : new ConnectFailure(reply.IsPermanent ? "5.0.0" : "4.0.0", $"{Hop.Host} refused HELO: {reply}");
    }

    public bool Supports(string extension) => _capabilities.Supports(extension);

    /// <summary>Sends one message to the given recipients; returns a result per recipient.</summary>
    /// <param name="beforeData">Runs once the receiver took recipients and before the message data goes out (the cluster store marks them in doubt).</param>
    public async Task<IReadOnlyList<RecipientResult>> SendAsync(QueuedMessage message, IReadOnlyList<QueuedRecipient> recipients, ReadOnlyMemory<byte> body, CancellationToken ct,
        Func<IReadOnlyList<QueuedRecipient>, Task>? beforeData = null)
    {
        var results = new List<RecipientResult>(recipients.Count);
        var dsn = Supports("DSN");
        RecipientResult Result(QueuedRecipient r, RecipientOutcome o, string status, string detail, SmtpReply? reply = null) =>
            new(r.Rid, o, status, detail, Dcid, Hop.Host, dsn, reply is null ? null : $"smtp; {reply.Code} {reply.Text}");

        if (message.SmtpUtf8 && !Supports("SMTPUTF8"))
        {
            // RFC 6531 §3.2: cannot be downgraded here; return it to the sender.
            foreach (var r in recipients)
                results.Add(Result(r, RecipientOutcome.Bounced, "5.6.7", $"{Hop.Host} does not support SMTPUTF8"));
            return results;
        }
        if (message.BodyType == "8BITMIME" && !Supports("8BITMIME"))
        {
            var converted = MimeDowngrade.ToSevenBit(body);
            if (converted is null)
            {
                foreach (var r in recipients)
                    results.Add(Result(r, RecipientOutcome.Bounced, "5.6.3", $"{Hop.Host} does not support 8BITMIME and the message cannot be converted to 7 bits (8-bit header text)"));
                return results;
            }
            _events.Publish(new MessageConverted(Dcid, message.Mid, $"{Hop.Host} does not offer 8BITMIME (RFC 6152)"));
            body = converted.Value;
        }
        var maxSize = _capabilities.MaxSize;
        if (maxSize > 0 && body.Length > maxSize)
        {
            foreach (var r in recipients)
                results.Add(Result(r, RecipientOutcome.Bounced, "5.3.4", $"message size {body.Length} exceeds {Hop.Host}'s limit of {maxSize}"));
            return results;
        }
        if (_transactionOpen)
        {
            // Only an abandoned transaction needs RSET; after the final reply to the data the
            // next MAIL starts a new one (RFC 5321 §4.1.1.4), which saves a round trip per message.
            var rset = await CommandAsync("RSET", ct).ConfigureAwait(false);
            if (rset.Code != 250) { Reusable = false; throw new SmtpClientException($"RSET refused: {rset}"); }
            _transactionOpen = false;
        }

        var sender = message.Sender;
        if (_senderTagger is not null && !message.IsNullSender)
        {
            sender = _senderTagger.Tag(sender, _now());
            if (sender != message.Sender) _events.Publish(new SenderTagged(Dcid, message.Mid, sender));
        }
        var mail = new StringBuilder("MAIL FROM:<").Append(sender).Append('>');
        if (Supports("SIZE")) mail.Append(" SIZE=").Append(body.Length);
        if (message.BodyType == "8BITMIME" && Supports("8BITMIME")) mail.Append(" BODY=8BITMIME");
        if (message.SmtpUtf8) mail.Append(" SMTPUTF8");
        if (dsn)
        {
            if (message.Ret != DsnRet.Unspecified) mail.Append(" RET=").Append(message.Ret == DsnRet.Full ? "FULL" : "HDRS");
            if (message.EnvelopeId is not null) mail.Append(" ENVID=").Append(SmtpSyntax.EncodeXtext(message.EnvelopeId));
        }
        var commands = new List<string> { mail.ToString() };
        foreach (var r in recipients)
        {
            var rcpt = new StringBuilder("RCPT TO:<").Append(r.Address).Append('>');
            if (dsn)
            {
                if (r.Notify != DsnNotify.Default)
                    rcpt.Append(" NOTIFY=").Append(r.Notify == DsnNotify.Never ? "NEVER" : string.Join(",",
                        new[] { (DsnNotify.Success, "SUCCESS"), (DsnNotify.Failure, "FAILURE"), (DsnNotify.Delay, "DELAY") }
                            .Where(x => r.Notify.HasFlag(x.Item1)).Select(x => x.Item2)));
                if (r.OriginalRecipient is { } orcpt)
                {
                    var semi = orcpt.IndexOf(';');
                    rcpt.Append(" ORCPT=").Append(orcpt[..semi]).Append(';').Append(SmtpSyntax.EncodeXtext(orcpt[(semi + 1)..]));
                }
            }
            commands.Add(rcpt.ToString());
        }

        // PIPELINING (RFC 2920): MAIL and every RCPT in one write, then the replies in order.
        var replies = new List<SmtpReply>(commands.Count);
        if (Supports("PIPELINING"))
        {
            foreach (var c in commands) Write(c);
            await FlushAsync(ct).ConfigureAwait(false);
            foreach (var _ in commands) replies.Add(await ReadReplyAsync(CommandTimeout, ct).ConfigureAwait(false));
        }
        else
        {
            replies.Add(await CommandAsync(commands[0], ct).ConfigureAwait(false));
            if (replies[0].IsPositive)
                for (var i = 1; i < commands.Count; i++) replies.Add(await CommandAsync(commands[i], ct).ConfigureAwait(false));
        }

        var mailReply = replies[0];
        _transactionOpen = mailReply.IsPositive;
        if (!mailReply.IsPositive)
        {
            foreach (var r in recipients)
                results.Add(Result(r, mailReply.IsPermanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred, mailReply.Status, $"MAIL FROM refused: {mailReply.Quoted}", mailReply));
            if (mailReply.Code == 421) Reusable = false;
            return results;
        }
        var accepted = new List<QueuedRecipient>();
        for (var i = 0; i < recipients.Count; i++)
        {
            var reply = replies[i + 1];
            if (reply.IsPositive) accepted.Add(recipients[i]);
            else
            {
                results.Add(Result(recipients[i], reply.IsPermanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred, reply.Status, reply.Quoted, reply));
                if (reply.Code == 421) Reusable = false;
            }
        }
        if (accepted.Count == 0) return results;

        SmtpReply final;
        if (Supports("CHUNKING"))
        {
            // BDAT carries the stored bytes as they are: no dot-stuffing, binary safe (RFC 3030).
            if (beforeData is not null) await beforeData(accepted).ConfigureAwait(false);
            Write($"BDAT {body.Length} LAST");
            await FlushAsync(ct).ConfigureAwait(false);
            await WriteDataAsync(body, ct).ConfigureAwait(false);
            final = await ReadReplyAsync(DataDoneTimeout, ct).ConfigureAwait(false);
        }
        else
        {
            var data = await CommandAsync("DATA", ct).ConfigureAwait(false);
            if (data.Code != 354)
            {
                foreach (var r in accepted)
                    results.Add(Result(r, data.IsPermanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred, data.Status, $"DATA refused: {data.Quoted}", data));
                return results;
            }
            if (beforeData is not null) await beforeData(accepted).ConfigureAwait(false);
            await WriteStuffedDataAsync(body, ct).ConfigureAwait(false);
            final = await ReadReplyAsync(DataDoneTimeout, ct).ConfigureAwait(false);
        }
        _transactionOpen = false;
        foreach (var r in accepted)
        {
            var outcome = final.IsPositive ? RecipientOutcome.Delivered : final.IsPermanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred;
            results.Add(Result(r, outcome, final.Status, final.IsPositive ? final.Text : final.Quoted, final));
        }
        if (final.Code == 421) Reusable = false;
        results.Sort((a, b) => a.Rid.CompareTo(b.Rid));
        return results;
    }

    /// <summary>
    /// The DATA form of a stored message: a dot doubled at each line start (RFC 5321
    /// §4.5.2) and the terminating "." line, in one array (the wire path streams it instead).
    /// </summary>
    public static byte[] DotStuff(byte[] body)
    {
        var output = new byte[DotStuffedLength(body)];
        var o = StuffChunk(body, output, atLineStart: true);
        DataEnd(body).CopyTo(output.AsSpan(o));
        return output;
    }

    /// <summary>The length of the DATA form: the body, one more byte per line starting with a dot, and the end.</summary>
    public static int DotStuffedLength(ReadOnlySpan<byte> body)
    {
        var dots = body.Length > 0 && body[0] == '.' ? 1 : 0;
        // Vectorised search for a dot after a line end: the bytes between are copied, not inspected.
        for (var rest = body; rest.IndexOf("\n."u8) is var i and >= 0; rest = rest[(i + 2)..]) dots++;
        return body.Length + dots + DataEnd(body).Length;
    }

    /// <summary>What ends the data: the "." line, after a CRLF of its own when the body lacks a final one.</summary>
    private static ReadOnlySpan<byte> DataEnd(ReadOnlySpan<byte> body) =>
        body.Length >= 2 && body[^2] == '\r' && body[^1] == '\n' ? ".\r\n"u8 : "\r\n.\r\n"u8;

    /// <summary>
    /// Dot-stuffs one piece of the body into output (room for 1.5 times the piece is always
    /// enough: each added dot follows an LF); atLineStart says whether the piece begins a line.
    /// </summary>
    private static int StuffChunk(ReadOnlySpan<byte> chunk, Span<byte> output, bool atLineStart)
    {
        var o = 0;
        var rest = chunk;
        if (atLineStart && rest.Length > 0 && rest[0] == '.') output[o++] = (byte)'.';
        while (rest.IndexOf("\n."u8) is var i and >= 0)
        {
            rest[..(i + 1)].CopyTo(output[o..]);   // up to and including the LF
            o += i + 1;
            output[o++] = (byte)'.';
            output[o++] = (byte)'.';                // the line's own dot
            rest = rest[(i + 2)..];
        }
        rest.CopyTo(output[o..]);
        return o + rest.Length;
    }

    /// <summary>
    /// The DATA form of body[offset..offset+length]: dot-stuffed, with the end appended when
    /// the piece is the body's last. Output needs room for 1.5 times the piece plus 6 bytes
    /// (each added dot follows an LF). Returns the bytes written.
    /// </summary>
    public static int StuffPiece(ReadOnlySpan<byte> body, int offset, int length, Span<byte> output)
    {
        var n = StuffChunk(body.Slice(offset, length), output, atLineStart: offset == 0 || body[offset - 1] == '\n');
        if (offset + length < body.Length) return n;
        var end = DataEnd(body);
        end.CopyTo(output[n..]);
        return n + end.Length;
    }

    /// <summary>
    /// Writes the body as DATA: dot-stuffed piece by piece through one pooled buffer (no copy
    /// of the whole message), each write within the data block deadline.
    /// </summary>
    private async Task WriteStuffedDataAsync(ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        const int Piece = 32 * 1024;
        var buffer = ArrayPool<byte>.Shared.Rent(Piece + Piece / 2 + 8);
        try
        {
            var offset = 0;
            do
            {
                var length = Math.Min(Piece, body.Length - offset);
                var n = StuffPiece(body.Span, offset, length, buffer);
                await WriteAsync(buffer.AsMemory(0, n), DataBlockTimeout, ct).ConfigureAwait(false);
                offset += length;
            } while (offset < body.Length);
            await WriteAsync(ReadOnlyMemory<byte>.Empty, DataBlockTimeout, ct, flush: true).ConfigureAwait(false);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>Writes message data in blocks, each within the RFC 5321 §4.5.3.2.5 data block deadline.</summary>
    private async Task WriteDataAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        const int Block = 64 * 1024;
        for (var offset = 0; offset < data.Length; offset += Block)
            await WriteAsync(data.Slice(offset, Math.Min(Block, data.Length - offset)), DataBlockTimeout, ct).ConfigureAwait(false);
        await WriteAsync(ReadOnlyMemory<byte>.Empty, DataBlockTimeout, ct, flush: true).ConfigureAwait(false);
    }

    /// <summary>Every write has a deadline; any failure becomes an <see cref="SmtpClientException"/>.</summary>
    private async Task WriteAsync(ReadOnlyMemory<byte> data, TimeSpan deadline, CancellationToken ct, bool flush = false)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(deadline);
        try
        {
            if (data.Length > 0) await _stream.WriteAsync(data, cts.Token).ConfigureAwait(false);
            if (flush) await _stream.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (SmtpClientException.IsWireError(e) && !ct.IsCancellationRequested)
        {
            Reusable = false;
            throw new SmtpClientException(e is OperationCanceledException
                ? $"timeout: {Hop.Host} did not take data for {deadline.TotalSeconds} s"
                : $"write to {Hop.Host} failed: {SmtpClientException.Describe(e)}", e);
        }
    }

    private void Write(string command)
    {
        var span = _out.GetSpan(command.Length * 3 + 2);
        var n = Utf8.GetBytes(command, span);
        span[n] = (byte)'\r';
        span[n + 1] = (byte)'\n';
        _out.Advance(n + 2);
    }

    private async Task FlushAsync(CancellationToken ct)
    {
        await WriteAsync(_out.WrittenMemory, CommandTimeout, ct, flush: true).ConfigureAwait(false);
        _out.ResetWrittenCount();
    }

    private async Task<SmtpReply> CommandAsync(string command, CancellationToken ct)
    {
        Write(command);
        await FlushAsync(ct).ConfigureAwait(false);
        return await ReadReplyAsync(CommandTimeout, ct).ConfigureAwait(false);
    }

    /// <summary>Reads one whole reply within the deadline of the phase (RFC 5321 §4.5.3.2).</summary>
    private async Task<SmtpReply> ReadReplyAsync(TimeSpan deadline, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(deadline);
        while (true)
        {
            SmtpLine line;
            try { line = await _reader.ReadLineAsync(4096, cts.Token).ConfigureAwait(false); }
            catch (Exception e) when (SmtpClientException.IsWireError(e) && !ct.IsCancellationRequested)
            {
                Reusable = false;
                throw new SmtpClientException(e is OperationCanceledException
                    ? $"timeout: no reply from {Hop.Host} within {deadline.TotalSeconds} s"
                    : $"read from {Hop.Host} failed: {SmtpClientException.Describe(e)}", e);
            }
            if (line.EndOfStream) { Reusable = false; throw new SmtpClientException("connection closed by peer"); }
            if (line.TooLong || line.HasBareNewline) { Reusable = false; throw new SmtpClientException("malformed reply from peer (line too long, or bare CR or LF)"); }
            var text = Utf8.GetString(_reader.Buffer, line.Start, line.Length);
            var reply = _replies.Add(text, out var error);
            if (error is not null) { Reusable = false; throw new SmtpClientException($"malformed reply from peer: {error}"); }
            if (reply is null) continue;
            if (reply.Code == 421) Reusable = false;
            return reply;
        }
    }

    public async Task CloseAsync(string reason, bool sendQuit = true)
    {
        if (sendQuit)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await CommandAsync("QUIT", cts.Token).ConfigureAwait(false);
                // TLS close_notify: the peer sees a proper end of the session, not a truncation.
                if (_stream is SslStream ssl) await ssl.ShutdownAsync().WaitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (Exception) { /* closing anyway */ }
        }
        _events.Publish(new DeliveryConnectionClosed(Dcid, reason));
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream is SslStream ssl) await ssl.DisposeAsync().ConfigureAwait(false);
        await _network.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _reader.Dispose();
    }
}
