using System.Globalization;

namespace Postern.Observability;

/// <summary>
/// Where message tracking keeps its records: SQLite in the data directory on one machine,
/// the cluster's PostgreSQL database in a cluster (where every member writes, so a message
/// accepted by one member and delivered by another has one story). Writes come from one
/// writer per process (the <see cref="MessageTracker"/>'s task) as batches, each applied in
/// one transaction; searches and stories may run at any time from any thread (the CLI, the web page).
/// </summary>
public interface ITrackingStore : IDisposable
{
    /// <summary>Applies a batch of writes in one transaction (the single writer only).</summary>
    void Write(IReadOnlyList<TrackingWrite> batch);

    /// <summary>Deletes up to <paramref name="maxMessages"/> of the messages received before <paramref name="cutoff"/>, oldest first; returns how many went.</summary>
    int DeleteReceivedBefore(DateTimeOffset cutoff, int maxMessages);

    /// <summary>The messages matching every given criterion, newest first, at most <see cref="TrackingQuery.Limit"/>.</summary>
    IReadOnlyList<TrackedMessageSummary> Search(TrackingQuery query);

    /// <summary>One message with its recipients and its steps in order, or null when it is not tracked.</summary>
    TrackedMessage? Get(long mid);

    /// <summary>Refreshes whatever helps searches stay fast after many deletions (statistics); bounded work.</summary>
    void Optimize() { }

    /// <summary>The message's life told as English sentences, one per step, or null when it is not tracked.</summary>
    TrackedStory? Story(long mid) => Get(mid) is { } message ? TrackingStory.Tell(message) : null;
}

/// <summary>What a message has come to (its recipients taken together).</summary>
public static class TrackingStatus
{
    /// <summary>In the queue, no attempt made yet.</summary>
    public const string Queued = "queued";
    /// <summary>At least one recipient waits for another attempt after a temporary failure.</summary>
    public const string Deferred = "deferred";
    /// <summary>Every recipient delivered.</summary>
    public const string Delivered = "delivered";
    /// <summary>Every recipient bounced (refused, or expired in the queue).</summary>
    public const string Bounced = "bounced";
    /// <summary>Finished: some recipients delivered, the others bounced.</summary>
    public const string Partial = "partial";
    /// <summary>Refused at the end of DATA (size, loop, smuggling defence, queue write): never queued.</summary>
    public const string Rejected = "rejected";

    public static readonly IReadOnlyList<string> All = [Queued, Deferred, Delivered, Bounced, Partial, Rejected];
}

/// <summary>How the TLS of a delivery attempt turned out, in the words the search uses.</summary>
public static class TlsOutcome
{
    /// <summary>No delivery attempt reached a mail host yet (or none was made).</summary>
    public const string None = "none";
    /// <summary>The certificate was authenticated by DANE (a TLSA record matched).</summary>
    public const string Dane = "dane";
    /// <summary>An MTA-STS policy applied and the host passed it (TLS 1.2+, certificate valid for the MX name).</summary>
    public const string MtaSts = "mta-sts";
    /// <summary>The certificate was verified against the trusted CAs (PKIX).</summary>
    public const string Verified = "verified";
    /// <summary>Encrypted, certificate not verified.</summary>
    public const string Encrypted = "encrypted";
    /// <summary>In clear: the host offered no TLS and the level allowed it, or the level is No.</summary>
    public const string Clear = "clear";
    /// <summary>TLS, DANE or MTA-STS failed, so the host was not used.</summary>
    public const string Failed = "failed";

    public static readonly IReadOnlyList<string> All = [None, Dane, MtaSts, Verified, Encrypted, Clear, Failed];
}

/// <summary>A search. Every criterion given must hold; none given means the newest messages.</summary>
public sealed record TrackingQuery
{
    public const int MaxLimit = 1000;
    public const int DefaultLimit = 100;
    /// <summary>Subjects are indexed by trigrams: shorter text would mean reading every message.</summary>
    public const int MinSubjectText = 3;

    /// <summary>An envelope sender address (case-insensitive), or a domain ("example.com" or "@example.com").</summary>
    public string? Sender { get; init; }
    /// <summary>A recipient address (case-insensitive), or a domain ("example.com" or "@example.com").</summary>
    public string? Recipient { get; init; }
    public long? Mid { get; init; }
    /// <summary>Text the Subject header contains, at least <see cref="MinSubjectText"/> characters (case-insensitive).</summary>
    public string? SubjectContains { get; init; }
    /// <summary>Received at or after.</summary>
    public DateTimeOffset? From { get; init; }
    /// <summary>Received before.</summary>
    public DateTimeOffset? To { get; init; }
    /// <summary>One of <see cref="TrackingStatus.All"/>.</summary>
    public string? Status { get; init; }
    /// <summary>One of <see cref="TlsOutcome.All"/>: the outcome of the message's latest delivery attempt.</summary>
    public string? Tls { get; init; }
    /// <summary>1 to <see cref="MaxLimit"/>.</summary>
    public int Limit { get; init; } = DefaultLimit;

    /// <summary>The problems with this query (unknown status or TLS outcome, limit out of range), empty when it is fine.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Status is not null && !TrackingStatus.All.Contains(Status)) problems.Add($"status '{Status}' is not one of {string.Join(", ", TrackingStatus.All)}");
        if (Tls is not null && !TlsOutcome.All.Contains(Tls)) problems.Add($"TLS outcome '{Tls}' is not one of {string.Join(", ", TlsOutcome.All)}");
        if (SubjectContains is { Length: < MinSubjectText }) problems.Add($"subject text '{SubjectContains}' is shorter than {MinSubjectText} characters");
        if (Limit is < 1 or > MaxLimit) problems.Add($"limit {Limit} is out of range 1-{MaxLimit}");
        if (From is { } f && To is { } t && f >= t) problems.Add("the time range is empty (since is not before until)");
        return problems;
    }
}

public sealed record TrackedRecipient(int Rid, string Address, string Status, string Tls, string? Response, long? Dcid, DateTimeOffset Updated);

public sealed record TrackedMessageSummary(
    long Mid, DateTimeOffset Received, DateTimeOffset Updated, string Status, string Tls, string Origin, string Sender, string? Subject,
    long? Size, string? MessageId, string? ClientAddress, string? Listener, long? Icid, long? BounceOf,
    IReadOnlyList<TrackedRecipient> Recipients, int RecipientCount);

/// <summary>One thing that happened to a message. Fields hold the facts as text (peer text as received), by name.</summary>
public sealed record TrackingStep(DateTimeOffset Time, string Kind, long? Dcid, int? Rid, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>The cluster member that recorded the step (a cluster's story is told by several); null on a single machine.</summary>
    public string? Member { get; init; }

    public string? this[string name] => Fields.TryGetValue(name, out var v) ? v : null;
}

/// <summary>Step kinds (the Kind of a <see cref="TrackingStep"/>).</summary>
public static class StepKind
{
    /// <summary>The inbound connection the message came over; its facts are <see cref="TrackedMessage.Inbound"/>.</summary>
    public const string Connection = "connection";
    public const string MailFrom = "mail-from";
    public const string RecipientAccepted = "recipient-accepted";
    public const string RecipientRefused = "recipient-refused";
    public const string BounceVerification = "bounce-verification";
    public const string Content = "content";
    public const string Queued = "queued";
    public const string Rejected = "rejected";
    public const string Generated = "generated";
    /// <summary>A delivery over a connection that was established (DeliveryStarted); its fields carry the connection's facts.</summary>
    public const string DeliveryAttempt = "delivery-attempt";
    /// <summary>A connection (or MX host) tried for this message's destination that never carried it: refused, TLS, DANE or MTA-STS failure.</summary>
    public const string HostAttempt = "host-attempt";
    public const string SenderTagged = "sender-tagged";
    public const string Converted = "converted";
    public const string Delivered = "delivered";
    public const string Deferred = "deferred";
    public const string Bounced = "bounced";
    public const string BounceSent = "bounce-sent";
    public const string BounceSuppressed = "bounce-suppressed";
    public const string Finished = "finished";
}

/// <summary>A message with everything tracking knows of it.</summary>
public sealed record TrackedMessage(TrackedMessageSummary Summary, IReadOnlyDictionary<string, string> Inbound, IReadOnlyList<TrackingStep> Steps, bool StepsTruncated);

public sealed record StorySentence(DateTimeOffset Time, string Text);

public sealed record TrackedStory(TrackedMessage Message, IReadOnlyList<StorySentence> Sentences);

// ---- writes (what the tracker asks the store to record) ----

public abstract record TrackingWrite(long Mid, DateTimeOffset Time);

/// <summary>
/// A message enters tracking: accepted over SMTP (queued or rejected), or generated by Postern
/// (a DSN, an alert). Replaces whatever was recorded under the same MID (a MID reused after the
/// queue was reset belongs to a new message).
/// </summary>
public sealed record MessageEntered(long Mid, DateTimeOffset Time, string Origin, string Status, string Sender, IReadOnlyDictionary<string, string> Inbound,
    string? Subject, long? Size, string? MessageId, long? BounceOf, IReadOnlyList<(int Rid, string Address)> Recipients,
    IReadOnlyList<TrackingStep> Steps, long? RecipientIsSenderOf = null) : TrackingWrite(Mid, Time)
{
    public const string FromSmtp = "smtp", FromDsn = "dsn", FromAlert = "alert", Unknown = "unknown";
}

/// <summary>A step for a message already entered (or, when it was not, entered as a placeholder of unknown origin).</summary>
public sealed record StepAdded(long Mid, TrackingStep Step) : TrackingWrite(Mid, Step.Time);

/// <summary>A recipient's new state; the message's status and latest TLS outcome follow from it.</summary>
public sealed record RecipientChanged(long Mid, DateTimeOffset Time, int Rid, string? Address, string Status, string Tls, string? Response, long? Dcid, string? Sender)
    : TrackingWrite(Mid, Time);

/// <summary>Names of the inbound facts of a message (<see cref="MessageEntered.Inbound"/>).</summary>
public static class InboundField
{
    public const string Icid = "icid", Client = "client", ReverseDns = "reverseDns", ReverseVerified = "reverseVerified", Listener = "listener",
        SenderGroup = "senderGroup", Policy = "policy", Action = "action", Match = "match", Tls = "tls", TlsCipher = "tlsCipher";
}

/// <summary>Time as stored: Unix milliseconds.</summary>
internal static class TrackingTime
{
    public static long ToStored(DateTimeOffset t) => t.ToUnixTimeMilliseconds();
    public static DateTimeOffset FromStored(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
    public static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
