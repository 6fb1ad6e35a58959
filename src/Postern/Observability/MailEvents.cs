using System.Net;

namespace Postern.Observability;

/// <summary>
/// Every decision and state change in the mail flow is one typed event. The mail log,
/// message tracking, metrics and alerts all subscribe to the same stream, so nothing is
/// logged in one place and forgotten in another. Each event knows its mail-log text.
/// </summary>
public abstract record MailEvent
{
    public DateTimeOffset Time { get; init; } = DateTimeOffset.Now;
    public virtual bool IsDebug => false;
    /// <summary>The log level word: Info, Debug or Warning.</summary>
    public virtual string Level => IsDebug ? "Debug" : "Info";
    /// <summary>The appliance-style mail log text (without timestamp and level).</summary>
    public abstract string LogText { get; }
    /// <summary>The counter this event adds to (metrics); the type name unless a kind needs its own.</summary>
    public virtual string CounterName => GetType().Name;
}

// ---- inbound ----
public sealed record ConnectionOpened(long Icid, string Listener, IPEndPoint Local, IPAddress Remote, string? ReverseDns, bool ReverseVerified) : MailEvent
{
    public override string LogText =>
        $"New SMTP ICID {Icid} interface {Listener} ({Local.Address}) address {Remote} reverse dns host {ReverseDns ?? "unknown"} verified {(ReverseVerified ? "yes" : "no")}";
}
public sealed record SenderGroupMatched(long Icid, string Action, string Group, string Policy, string? Match) : MailEvent
{
    public override string LogText => $"ICID {Icid} {Action.ToUpperInvariant()} SG {Group} match {Match ?? "default"} policy {Policy}";
}
public sealed record ConnectionRefused(long Icid, IPAddress Remote, string Reason) : MailEvent
{
    public override string LogText => $"ICID {Icid} REFUSED address {Remote}: {Reason}";
}
public sealed record InboundTlsNegotiated(long Icid, string Protocol, string Cipher) : MailEvent
{
    public override string LogText => $"ICID {Icid} TLS success protocol {Protocol} cipher {Cipher}";
}
public sealed record InboundTlsFailed(long Icid, string Reason) : MailEvent
{
    public override string LogText => $"ICID {Icid} TLS failed: {Reason}";
}
public sealed record InboundTlsRequired(long Icid, string Command) : MailEvent
{
    public override string LogText => $"ICID {Icid} TLS was required but the client sent {Command} before STARTTLS: rejected with 530";
}
public sealed record MessageStarted(long Mid, long Icid) : MailEvent
{
    public override string LogText => $"Start MID {Mid} ICID {Icid}";
}
public sealed record MessageFrom(long Mid, long Icid, string Sender) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} From: <{Sender}>";
}
public sealed record RecipientAccepted(long Mid, long Icid, int Rid, string Recipient) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} RID {Rid} To: <{Recipient}>";
}
public sealed record RecipientRefused(long Mid, long Icid, string Recipient, string Reason) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} To: <{Recipient}> Rejected by {Reason}";
}
/// <summary>A bounce (null sender) to an address without a valid Bounce Verification tag: refused at RCPT.</summary>
public sealed record BounceVerificationFailed(long Mid, long Icid, string Recipient, string Reason) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} To: <{Recipient}> Rejected by bounce verification: {Reason}";
}
/// <summary>A valid tagged bounce: delivered to the address without its tag.</summary>
public sealed record BounceVerificationPassed(long Mid, long Icid, string Recipient, string Original) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} bounce verification passed: <{Recipient}> is a valid tag for <{Original}>";
}
public sealed record MessageHeadersSeen(long Mid, string? MessageId, string? Subject) : MailEvent
{
    public override string LogText =>
        $"MID {Mid} Message-ID '{MessageId ?? "(none)"}'" + (Subject is null ? "" : $" Subject '{Subject}'");
}
public sealed record MessageReady(long Mid, long Size, string Sender) : MailEvent
{
    public override string LogText => $"MID {Mid} ready {Size} bytes from <{Sender}>";
}
public sealed record MessageQueued(long Mid) : MailEvent
{
    public override string LogText => $"MID {Mid} queued for delivery";
}
public sealed record MessageRefused(long Mid, long Icid, string Reason) : MailEvent
{
    public override string LogText => $"MID {Mid} ICID {Icid} rejected: {Reason}";
}
public sealed record ProtocolViolation(long Icid, string Reason) : MailEvent
{
    public override string LogText => $"ICID {Icid} protocol violation: {Reason}";
}
public sealed record ConnectionClosed(long Icid, string Reason) : MailEvent
{
    public override string LogText => $"ICID {Icid} close" + (Reason.Length == 0 ? "" : $" ({Reason})");
}

// ---- DNS ----
public sealed record DnsQueried(string Name, string Type, string Outcome) : MailEvent
{
    public override bool IsDebug => true;
    public override string LogText => $"DNS query: Q({Name}, '{Type}') {Outcome}";
}

// ---- outbound ----
public sealed record DeliveryPolicyApplied(long Dcid, string Domain, string TlsLevel, string Source, string? Dane = null) : MailEvent
{
    public override string LogText => $"DCID {Dcid} Destination Controls for domain ({Domain}): TLS {TlsLevel} ({Source})" + (Dane is null ? "" : $", DANE {Dane}");
}

public enum DaneResult { NotApplicable, Authenticated, EncryptOnly, Failed, HostUnusable }

/// <summary>
/// What DANE decided for one MX host: the typed facts (result, matched record, depth,
/// reason) that the mail log, tracking, alerts and TLS reports all read.
/// </summary>
public sealed record DaneOutcome(long Dcid, string Domain, string Host, DaneResult Result, string? Record, int Depth, string Reason) : MailEvent
{
    public override string LogText => Result switch
    {
        DaneResult.Authenticated => $"DCID {Dcid} DANE: authenticated {Host}: {Reason}",
        DaneResult.EncryptOnly => $"DCID {Dcid} DANE: TLS without authentication to {Host}: {Reason}",
        DaneResult.Failed => $"DCID {Dcid} DANE: verification of {Host} failed: {Reason}",
        DaneResult.HostUnusable => $"DANE: MX host {Host} of {Domain} not used: {Reason}",
        _ => $"DCID {Dcid} DANE: not applicable to {Host}: {Reason}",
    };
}

// ---- MTA-STS (SPEC §7 lines; result types of RFC 8460 §4.3) ----
public enum StsResult { Ok, NoPolicy, PolicyFetchError, PolicyInvalid, WebPkiInvalid, NotInPolicy, CertificateHostMismatch, ValidationFailure, StartTlsNotSupported }

public sealed record StsTxtFetched(string Domain, string Id) : MailEvent
{
    public override string LogText => $"Successfully fetched MTA-STS TXT record for domain({Domain})";
}
public sealed record StsNoPolicy(string Domain, string Reason) : MailEvent
{
    public override bool IsDebug => true;
    public override string LogText => $"No MTA-STS policy for the domain ({Domain}): {Reason}";
}
public sealed record StsCacheValid(string Domain) : MailEvent
{
    public override bool IsDebug => true;
    public override string LogText => $"Valid cache entry found for the domain ({Domain}).";
}
public sealed record StsFetchStarted(string Domain) : MailEvent
{
    public override bool IsDebug => true;
    public override string LogText => $"Fetch MTA-STS policy for the domain({Domain})";
}
public sealed record StsFetchFailed(string Domain, StsResult Result, string Reason) : MailEvent
{
    public override string LogText => $"Failure encountered while fetching MTA-STS policy for the domain({Domain})";
}
public sealed record StsFetchFailureDetail(string Domain, string Reason) : MailEvent
{
    public override bool IsDebug => true;
    public override string LogText => $"Request to fetch STS policy failed due to {Reason}, for the domain {Domain}";
}
public sealed record StsPolicyFetched(string Domain, string Id, string Policy, string Certificate, string? Proxy = null) : MailEvent
{
    public override string LogText => $"MTA-STS policy fetched for the domain ({Domain}) id {Id}: {Policy} (policy host certificate {Certificate}{(Proxy is null ? "" : $", via proxy {Proxy}")})";
}
public sealed record StsCachedPolicyKept(string Domain, DateTimeOffset Expires) : MailEvent
{
    public override string LogText => $"Using the cached MTA-STS policy for the domain ({Domain}) until it expires {Expires:u}";
}
public sealed record StsApplying(long Dcid, string Domain, string Mode) : MailEvent
{
    public override string LogText => $"Applying MTA-STS policy for the domain ({Domain})" + (Mode == "enforce" ? "" : $" (mode {Mode})");
}
public sealed record StsSuccessful(long Dcid, string Domain) : MailEvent
{
    public override string LogText => $"MTA-STS policy for the domain ({Domain}) Successful.";
}
/// <summary>An MX host the policy refuses (enforce: not used) or would refuse (testing: used anyway).</summary>
public sealed record StsHostFailed(long Dcid, string Domain, string Host, StsResult Result, string Reason, bool Testing) : MailEvent
{
    /// <summary>Testing mode counts what enforce would have refused, apart from real refusals.</summary>
    public override string CounterName => Testing ? "StsHostWouldFail" : nameof(StsHostFailed);
    public override string LogText => Testing
        ? $"MTA-STS policy for the domain ({Domain}) would fail for {Host} (mode testing, delivering anyway): {Reason}"
        : $"MTA-STS policy for the domain ({Domain}) failed for {Host}: {Reason}";
}
public sealed record StsSkipped(string Domain, string Reason) : MailEvent
{
    public override string LogText => $"MTA-STS not applied for the domain ({Domain}): {Reason}";
}

/// <summary>DANE failed for every MX host of a domain (feeds the alert).</summary>
public sealed record DaneFailedForDomain(string Domain, string Reason) : MailEvent
{
    public override string Level => "Warning";
    public override string LogText => $"DANE failed for every MX host of {Domain}: {(Reason.StartsWith("DANE: ", StringComparison.Ordinal) ? Reason[6..] : Reason)}";
}
public sealed record DeliveryConnectionOpened(long Dcid, IPEndPoint Local, IPAddress Remote, int Port, string MxHost, string Domain) : MailEvent
{
    public override string LogText => $"New SMTP DCID {Dcid} interface {Local.Address} address {Remote} port {Port} (MX {MxHost} for {Domain})";
}
public sealed record DeliveryConnectionFailed(string Domain, string MxHost, IPAddress Address, int Port, string Reason) : MailEvent
{
    public override string LogText => $"Connection Error: DCID 0 domain: {Domain} IP: {Address} port: {Port} details: {Reason} (MX {MxHost})";
}
public sealed record DeliveryTlsNegotiated(long Dcid, string Protocol, string Cipher, string PeerIdentity) : MailEvent
{
    public override string LogText => $"DCID {Dcid} TLS success protocol {Protocol} cipher {Cipher} {PeerIdentity}";
}
/// <summary>How the outbound TLS negotiation with one host turned out (typed, for logs, tracking, alerts and TLS reports).</summary>
public enum TlsOutcomeKind
{
    /// <summary>The peer offered no TLS (no ESMTP, no STARTTLS, STARTTLS refused) and the level lets mail go in clear.</summary>
    NotPossibleContinuingInClear,
    /// <summary>The same, where the level (or DANE) requires TLS: this host fails.</summary>
    NotPossible,
    HandshakeFailed,
    /// <summary>The peer sent data behind its 220 to STARTTLS.</summary>
    ResponseInjection,
    CertificateVerified,
    /// <summary>Encrypted, certificate not verified, and the level delivers anyway.</summary>
    CertificateNotVerified,
    /// <summary>The level requires a verified certificate and it did not verify: this host fails.</summary>
    VerifyFailed,
}

public sealed record DeliveryTlsOutcome(long Dcid, TlsOutcomeKind Kind, string Detail) : MailEvent
{
    public override string CounterName => $"{nameof(DeliveryTlsOutcome)}.{Kind}";
    public override string LogText => Kind switch
    {
        TlsOutcomeKind.NotPossibleContinuingInClear => $"DCID {Dcid} TLS not possible: {Detail}; continuing in clear",
        TlsOutcomeKind.NotPossible => $"DCID {Dcid} TLS not possible: {Detail}",
        TlsOutcomeKind.HandshakeFailed or TlsOutcomeKind.ResponseInjection => $"DCID {Dcid} TLS failed: {Detail}",
        TlsOutcomeKind.CertificateVerified => $"DCID {Dcid} TLS certificate verified",
        TlsOutcomeKind.CertificateNotVerified => $"DCID {Dcid} TLS {Detail}",
        _ => $"DCID {Dcid} TLS deferring: verify error: {Detail}",
    };
}
/// <summary>
/// How one TLS session to an MX host ended, under which policy (RFC 8460 §4): the one fact
/// TLS reports count. A failure carries the report's result type; success has none. DCID 0:
/// the host was never connected (DANE unusable, not in the MTA-STS policy).
/// </summary>
public sealed record TlsSessionReported(long Dcid, Policy.TlsRptPolicy Policy, string MxHost, string? SendingIp, string? ReceivingIp,
    Policy.TlsRptResultType? Failure, string Detail) : MailEvent
{
    public override bool IsDebug => true;
    public override string CounterName => Failure is null ? "TlsSessionSucceeded" : "TlsSessionFailed";
    public override string LogText =>
        $"DCID {Dcid} TLS report: session to {MxHost} under {Describe(Policy)}: " +
        (Failure is { } f ? $"failure {Postern.Policy.TlsRptNames.Of(f)}" + (Detail.Length == 0 ? "" : $" ({Detail})") : "success");

    private static string Describe(Policy.TlsRptPolicy p) => p.Type == Postern.Policy.TlsRptPolicyType.NoPolicyFound
        ? $"no policy ({p.PolicyDomain})" : $"the {Postern.Policy.TlsRptNames.Of(p.Type)} policy of {p.PolicyDomain}";
}
/// <summary>A destination whose level requires TLS could not get it (feeds the mail log and alerts).</summary>
public sealed record TlsRequiredFailed(long Dcid, string Domain, string MxHost, string Reason) : MailEvent
{
    public override string LogText => $"DCID {Dcid} TLS was required but could not be successfully negotiated";
}
public sealed record SenderTagged(long Dcid, long Mid, string Tagged) : MailEvent
{
    public override string LogText => $"DCID {Dcid} MID {Mid} envelope sender tagged for bounce verification: <{Tagged}>";
}
public sealed record MessageConverted(long Dcid, long Mid, string Reason) : MailEvent
{
    public override string LogText => $"DCID {Dcid} MID {Mid} converted to 7-bit MIME: {Reason}";
}
public sealed record DeliveryStarted(long Dcid, long Mid, IReadOnlyList<int> Rids) : MailEvent
{
    public override string LogText => $"Delivery start DCID {Dcid} MID {Mid} to RID [{string.Join(", ", Rids)}]";
}
public sealed record RecipientResponse(long Mid, int Rid, string Response) : MailEvent
{
    public override string LogText => $"MID {Mid} RID [{Rid}] Response '{Response}'";
}
public sealed record MessageDone(long Dcid, long Mid, IReadOnlyList<int> Rids) : MailEvent
{
    public override string LogText => $"Message done DCID {Dcid} MID {Mid} to RID [{string.Join(", ", Rids)}]";
}
public sealed record RecipientDelayed(long Dcid, long Mid, int Rid, string Sender, string Recipient, string Status, string Reason, DateTimeOffset NextAttempt) : MailEvent
{
    public override string LogText =>
        $"Delayed: DCID {Dcid} MID {Mid} From:<{Sender}> To:<{Recipient}> RID {Rid} - {Status} - {Reason} (next attempt {NextAttempt.ToLocalTime():HH:mm:ss})";
}
public sealed record RecipientBounced(long Dcid, long Mid, int Rid, string Sender, string Recipient, string Status, string Reason) : MailEvent
{
    public override string LogText => $"Bounced: DCID {Dcid} MID {Mid} From:<{Sender}> To:<{Recipient}> RID {Rid} - {Status} - {Reason}";
}
public sealed record BounceGenerated(long BounceMid, long OriginalMid) : MailEvent
{
    public override string LogText => $"MID {BounceMid} was generated for bounce of MID {OriginalMid}";
}
public sealed record BounceSuppressed(long Mid, string Reason) : MailEvent
{
    public override string LogText => $"MID {Mid} no bounce sent: {Reason}";
}
public sealed record MessageFinished(long Mid, string Outcome) : MailEvent
{
    public override string LogText => $"Message finished MID {Mid} {Outcome}";
}
public sealed record DeliveryConnectionClosed(long Dcid, string Reason) : MailEvent
{
    public override string LogText => $"DCID {Dcid} close" + (Reason.Length == 0 ? "" : $" ({Reason})");
}

// ---- cluster ----
/// <summary>A member claimed a message another member had claimed and could not finish (its lease lapsed: it crashed or hung).</summary>
public sealed record MessageTakenOver(long Mid, string FromMember, string ByMember) : MailEvent
{
    public override string Level => "Warning";
    public override string LogText => $"MID {Mid} taken over by cluster member {ByMember} from member {FromMember}, whose claim lapsed";
}
/// <summary>
/// A recipient whose final dot went out from another member without its answer being recorded:
/// it is delivered again, so the receiver may get it twice (RFC 5321 §6.1: a duplicate, never a loss).
/// </summary>
public sealed record RecipientInDoubt(long Mid, int Rid, string Recipient, string Member, DateTimeOffset Since) : MailEvent
{
    public override string Level => "Warning";
    public override string LogText =>
        $"MID {Mid} RID {Rid} To:<{Recipient}> in doubt: member {Member} sent the message at {Since.UtcDateTime:HH:mm:ss.fff} UTC and never recorded the answer; delivering again, the receiver may get a duplicate";
}
/// <summary>A member joined the cluster (or came back); the line says where the shared store is.</summary>
public sealed record ClusterMemberStarted(string Member, string Store, int ReleasedClaims) : MailEvent
{
    public override string LogText => $"Cluster member {Member} started on {Store}" +
        (ReleasedClaims > 0 ? $"; {ReleasedClaims} message(s) its previous run had claimed are released for delivery" : "");
}

// ---- system ----
/// <summary>An operator switch took effect (suspend, resume): the audit line.</summary>
public sealed record OperatorAction(string What, string Who) : MailEvent
{
    public override string LogText => $"Operator: {What} (by {Who})";
}

/// <summary>A committed configuration version is in force now (the audit line of every commit).</summary>
public sealed record ConfigurationApplied(int Version, string Who, string Comment) : MailEvent
{
    public override string LogText => $"Configuration version {Version} applied (committed by {Who}{(Comment.Length == 0 ? "" : $": {Comment}")})";
}
public sealed record SystemNotice(string Text) : MailEvent
{
    public override string LogText => Text;
}
public sealed record SystemWarning(string Text) : MailEvent
{
    public override string Level => "Warning";
    public override string LogText => Text;
}

/// <summary>The one stream. Subscribers must be fast and never throw (they queue their own work).</summary>
public sealed class MailEventStream
{
    private volatile Action<MailEvent>[] _subscribers = [];
    private readonly Lock _gate = new();

    public void Subscribe(Action<MailEvent> subscriber)
    {
        lock (_gate) _subscribers = [.. _subscribers, subscriber];
    }

    public void Publish(MailEvent e)
    {
        foreach (var s in _subscribers) s(e);
    }
}
