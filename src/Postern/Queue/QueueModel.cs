namespace Postern.Queue;

/// <summary>RFC 3461 NOTIFY: Default means the parameter was absent (failures and delays are reported).</summary>
[Flags]
public enum DsnNotify { Default = 0, Never = 1, Success = 2, Failure = 4, Delay = 8 }

public enum DsnRet { Unspecified = 0, Full, Headers }

public enum RecipientState { Pending = 0, Delivered = 1, Bounced = 2, Deleted = 3 }

public sealed class QueuedRecipient
{
    public int Rid { get; init; }
    public required string Address { get; init; }
    /// <summary>Lower-case A-label domain used for routing.</summary>
    public required string Domain { get; init; }
    /// <summary>RFC 3461 ORCPT as received ("rfc822;user@example.com"), or null.</summary>
    public string? OriginalRecipient { get; init; }
    public DsnNotify Notify { get; init; }
    public RecipientState State { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset NextAttempt { get; set; }
    public string? LastResponse { get; set; }
    /// <summary>Cluster store: when the final dot of a delivery went out whose answer was never recorded (by InDoubtBy).</summary>
    public DateTimeOffset? InDoubtSince { get; init; }
    public string? InDoubtBy { get; init; }

    public bool IsFinal => State != RecipientState.Pending;

    /// <summary>The recipient columns both queue stores select, in this order (times in milliseconds).</summary>
    public const string Columns = "rid, address, domain, orcpt, notify, state, attempts, next_attempt, last_response";

    /// <summary>One row of <see cref="Columns"/> starting at column <paramref name="at"/>; a shared store's in-doubt columns follow when it has them.</summary>
    public static QueuedRecipient FromRow(System.Data.Common.DbDataReader r, int at, bool inDoubt = false) => new()
    {
        Rid = r.GetInt32(at), Address = r.GetString(at + 1), Domain = r.GetString(at + 2),
        OriginalRecipient = r.IsDBNull(at + 3) ? null : r.GetString(at + 3), Notify = (DsnNotify)r.GetInt32(at + 4),
        State = (RecipientState)r.GetInt32(at + 5), Attempts = r.GetInt32(at + 6),
        NextAttempt = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(at + 7)),
        LastResponse = r.IsDBNull(at + 8) ? null : r.GetString(at + 8),
        InDoubtSince = inDoubt && !r.IsDBNull(at + 9) ? DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(at + 9)) : null,
        InDoubtBy = inDoubt && !r.IsDBNull(at + 10) ? r.GetString(at + 10) : null,
    };
}

public sealed class QueuedMessage
{
    public long Mid { get; init; }
    public long Icid { get; init; }
    public DateTimeOffset ReceivedAt { get; init; }
    /// <summary>Envelope sender; empty string for the null reverse-path (bounces).</summary>
    public required string Sender { get; init; }
    public string? EnvelopeId { get; init; }
    public DsnRet Ret { get; init; }
    public bool SmtpUtf8 { get; init; }
    /// <summary>7BIT or 8BITMIME (BINARYMIME is not offered).</summary>
    public string BodyType { get; init; } = "7BIT";
    public long Size { get; init; }
    public string ClientAddress { get; init; } = "";
    public string Helo { get; init; } = "";
    public string Listener { get; init; } = "";
    /// <summary>For a DSN Postern generated: the MID it reports on.</summary>
    public long? BounceOf { get; init; }
    public required List<QueuedRecipient> Recipients { get; init; }
    /// <summary>Cluster store: the member this message was claimed from because its lease lapsed (it crashed or hung); null otherwise.</summary>
    public string? TakenOverFrom { get; init; }
    /// <summary>Cluster store: the member that accepted it.</summary>
    public string? AcceptedBy { get; init; }

    public bool IsNullSender => Sender.Length == 0;
}

public sealed record RecipientUpdate(int Rid, RecipientState State, int Attempts, DateTimeOffset NextAttempt, string? LastResponse);

/// <summary>
/// The durable queue. Implementations must make EnqueueAsync durable (fsync'd) before it
/// completes: the SMTP server answers 250 only after that. SQLite for one machine
/// (SqliteQueueStore), PostgreSQL for a cluster (Cluster.PostgresQueueStore).
/// </summary>
public interface IQueueStore : IAsyncDisposable
{
    ValueTask<long> NextIdAsync(IdKind kind);
    Task EnqueueAsync(QueuedMessage message, ReadOnlyMemory<byte> body);
    /// <summary>
    /// Hands out due messages to deliver. A shared store claims them for this member (until
    /// UpdateRecipientsAsync or ReleaseAsync, or until the claim's lease lapses); exclude is
    /// what this process already has in flight.
    /// </summary>
    Task<IReadOnlyList<QueuedMessage>> LoadDueAsync(DateTimeOffset now, int limit, IReadOnlySet<long> exclude);
    /// <summary>Gives up a claim without recording anything (nothing was due after all).</summary>
    Task ReleaseAsync(long mid) => Task.CompletedTask;
    /// <summary>Records, before the final dot, that an answer is awaited: a member taking the message over knows it may be a duplicate.</summary>
    Task MarkInDoubtAsync(long mid, IReadOnlyList<int> rids) => Task.CompletedTask;
    /// <summary>A store shared by cluster members (claims, in-doubt marks and wake-ups mean something).</summary>
    bool IsShared => false;
    /// <summary>Called when another process queued or released work (a shared store); a single machine's scheduler is woken directly.</summary>
    void OnWorkArrived(Action wake) { }
    Task<DateTimeOffset?> NextDueAsync();
    Task<byte[]?> ReadBodyAsync(long mid);
    /// <summary>The body for a delivery round, in memory the caller gives back (Dispose) once the round is recorded.</summary>
    async Task<MessageBody?> LeaseBodyAsync(long mid) => await ReadBodyAsync(mid).ConfigureAwait(false) is { } body ? new MessageBody(body) : null;
    /// <summary>Records recipient outcomes; when none is pending afterwards, the message is removed in the same transaction.</summary>
    Task UpdateRecipientsAsync(long mid, IReadOnlyList<RecipientUpdate> updates);
    /// <summary>Removes a message whose recipients are all final.</summary>
    Task RemoveAsync(long mid);
    Task<IReadOnlyList<QueuedMessage>> ListAsync();
    Task<QueuedMessage?> GetAsync(long mid);
    /// <summary>Makes pending recipients due now (one message, or all when mid is null). Returns how many.</summary>
    Task<int> RetryNowAsync(long? mid);
    /// <summary>Makes the pending recipients of one destination domain due now. Returns how many.</summary>
    Task<int> RetryDomainNowAsync(string domain);
    /// <summary>How many messages are queued and when the oldest arrived.</summary>
    Task<(int Messages, int Recipients, DateTimeOffset? Oldest)> StatsAsync();
}

public enum IdKind { Message, InboundConnection, DeliveryConnection }

/// <summary>
/// A message body read for delivery. Large bodies come from the shared array pool, so a
/// 100 KB message does not leave a large-object-heap array (and a full GC) behind each round.
/// </summary>
public sealed class MessageBody : IDisposable
{
    private byte[]? _pooled;

    public MessageBody(byte[] body) => Memory = body;

    private MessageBody(byte[] pooled, int length)
    {
        _pooled = pooled;
        Memory = pooled.AsMemory(0, length);
    }

    /// <summary>Rents room for length bytes; the caller fills <see cref="Writable"/>.</summary>
    public static MessageBody Rent(int length) => new(System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(length, 1)), length);

    public ReadOnlyMemory<byte> Memory { get; private set; }
    public Span<byte> Writable => _pooled is { } p ? p.AsSpan(0, Memory.Length) : throw new InvalidOperationException("not a rented body");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _pooled, null) is { } p)
        {
            Memory = ReadOnlyMemory<byte>.Empty;
            System.Buffers.ArrayPool<byte>.Shared.Return(p);
        }
    }
}
