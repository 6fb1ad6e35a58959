using Postern.Admin;
using Postern.Dns;
using Postern.Inbound;
using Postern.Observability;
using Postern.Outbound;

namespace Postern.Queue;

/// <summary>
/// Schedules delivery from the durable queue: picks due messages, hands each destination
/// domain's recipients to the delivery agent, records the outcome, retries with backoff,
/// expires messages past the bounce profile's time in queue, and generates DSNs.
/// The store is the truth; this keeps only the set of messages in flight.
/// </summary>
public sealed class QueueManager : IAsyncDisposable
{
    private const int BatchSize = 256;
    private static readonly TimeSpan Rescan = TimeSpan.FromSeconds(5);   // picks up CLI changes
    private readonly PosternConfig _initial;
    /// <summary>The configuration in force (bounce profiles, limits follow committed versions).</summary>
    public Func<PosternConfig>? Live { get; init; }
    private PosternConfig _config => Live?.Invoke() ?? _initial;
    private readonly IQueueStore _store;
    private readonly DeliveryAgent _delivery;
    private readonly MailEventStream _events;
    private readonly HashSet<long> _inFlight = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    /// <summary>1 while a wake-up is signalled and the loop has not yet begun its next scan.</summary>
    private int _wakePending;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _active;
    private int _peakActive;
    /// <summary>How long a message whose round could not even be recorded stays out of the schedule.</summary>
    private static readonly TimeSpan UnrecordedRoundPenalty = TimeSpan.FromSeconds(60);

    /// <summary>The most messages in flight at once since start (bounded by delivery.activeMessageLimit).</summary>
    public int PeakActive => Volatile.Read(ref _peakActive);

    private long _scans;
    /// <summary>How many times the scheduler has looked for due messages (each wake-up or rescan is one).</summary>
    public long Scans => Interlocked.Read(ref _scans);

    public QueueManager(PosternConfig config, IQueueStore store, DeliveryAgent delivery, MailEventStream events)
    {
        _initial = config;
        _store = store;
        _delivery = delivery;
        _events = events;
    }

    /// <summary>This member's name in a cluster ("" on one machine): a message claimed from another member is a takeover.</summary>
    public string Member { get; init; } = "";
    /// <summary>True while this member must not take work from a shared store (all its deliveries suspended): the others deliver it.</summary>
    public Func<bool>? Paused { get; init; }
    /// <summary>Stores mail to the TLS report mailbox (tlsReporting.mailbox) instead of delivering it; null = no such mailbox here.</summary>
    public TlsRptIntake? TlsReports { get; init; }

    /// <summary>The messages this process is delivering now (a shared store's claims to renew).</summary>
    public IReadOnlyCollection<long> InFlight()
    {
        lock (_inFlight) return _inFlight.ToArray();
    }

    public void Start()
    {
        _store.OnWorkArrived(Wake);   // a shared store: other members' new work wakes this scheduler too
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Something new is due (a message was queued, a delivery finished).</summary>
    public void Wake()
    {
        // One signal per scan: the flag (reset as a scan begins) keeps Release from ever overfilling the semaphore.
        if (Interlocked.Exchange(ref _wakePending, 1) == 0) _wake.Release();
    }

    private async Task LoopAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            // Wake-ups from here on signal again: this scan may already miss what they announce.
            Volatile.Write(ref _wakePending, 0);
            while (_wake.Wait(0)) { }   // a signal left from the last scan: this scan covers it (so at most one is ever pending)
            IReadOnlyList<QueuedMessage> due = [];
            HashSet<long> exclude;
            lock (_inFlight) exclude = new HashSet<long>(_inFlight);
            // The active set is bounded: messages beyond it wait in the store, not in memory.
            var room = Math.Min(BatchSize, _config.Delivery.ActiveMessageLimit - Volatile.Read(ref _active));
            if (_store.IsShared && Paused?.Invoke() == true) room = 0;
            if (room > 0)
            {
                try
                {
                    due = await _store.LoadDueAsync(DateTimeOffset.UtcNow, room, exclude).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    _events.Publish(new SystemWarning("queue scan failed: " + e.Message));
                }
            }
            Interlocked.Increment(ref _scans);
            foreach (var message in due)
            {
                lock (_inFlight) _inFlight.Add(message.Mid);
                var active = Interlocked.Increment(ref _active);
                if (active > Volatile.Read(ref _peakActive)) Volatile.Write(ref _peakActive, active);
                _ = Task.Run(() => ProcessAsync(message, ct));
            }
            if (room > 0 && due.Count == room) continue;

            var wait = Rescan;
            try
            {
                // At the active limit a finishing message wakes the loop; otherwise sleep until the next is due.
                var next = room > 0 ? await _store.NextDueAsync().ConfigureAwait(false) : null;
                if (next is { } n)
                {
                    var until = n - DateTimeOffset.UtcNow;
                    // Everything due and not in flight was just loaded: a "due" time in the past belongs to
                    // a message in flight, whose end wakes the loop. No tight polling meanwhile.
                    if (until < wait) wait = until < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromSeconds(1) : until;
                }
            }
            catch (Exception) { /* rescan later */ }
            try { await _wake.WaitAsync(wait, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
    }

    private async Task ProcessAsync(QueuedMessage message, CancellationToken ct)
    {
        List<QueuedRecipient> due = [];
        var holdBack = false;
        try
        {
            var now = DateTimeOffset.UtcNow;
            due = message.Recipients.Where(r => r.State == RecipientState.Pending && r.NextAttempt <= now).ToList();
            if (message.TakenOverFrom is { } from && from != Member)
            {
                _events.Publish(new MessageTakenOver(message.Mid, from, Member));
            }
            if (_store.IsShared)   // only a shared store marks recipients in doubt
                foreach (var r in due.Where(r => r.InDoubtSince is not null))
                    _events.Publish(new RecipientInDoubt(message.Mid, r.Rid, r.Address, r.InDoubtBy ?? "?", r.InDoubtSince!.Value));
            if (due.Count == 0)
            {
                await _store.ReleaseAsync(message.Mid).ConfigureAwait(false);   // nothing due after all (a shared store's claim ends)
                return;
            }
            // Given back to the pool when the round is recorded: every job has finished with it by then.
            using var lease = await _store.LeaseBodyAsync(message.Mid).ConfigureAwait(false);
            if (lease is null) return;   // deleted meanwhile
            var body = lease.Memory;
            // TLS reports (RFC 8460) to our report mailbox are stored here and never sent on or
            // bounced. Safe: the message is durably queued, and its outcome is recorded below like any other.
            var config = _config;
            var toReportMailbox = TlsReports is null ? [] : due.Where(r => TlsRptIntake.IsMailbox(config, r.Address)).ToList();
            var stored = toReportMailbox.Count == 0 ? [] : TlsReports!.DeliverToMailbox(message, body, toReportMailbox);
            // One transaction per destination domain, at most 100 recipients each (the
            // minimum every server must take, RFC 5321 §4.5.3.1.8).
            var jobs = due.Except(toReportMailbox).GroupBy(r => r.Domain)
                .SelectMany(g => g.Chunk(100).Select(chunk => _delivery.DeliverAsync(new DeliveryJob(message, chunk, g.Key, body))))
                .ToList();
            var results = (await Task.WhenAll(jobs).ConfigureAwait(false)).SelectMany(r => r).Concat(stored).ToList();
            await RecordAsync(message, body, results).ConfigureAwait(false);
        }
        catch (Cluster.LeaseLostException e)
        {
            // Another member holds the message now and records its own outcome.
            _events.Publish(new SystemWarning(e.Message));
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // Never "due again at once": the round counts as an attempt and backs off like any deferral.
            _events.Publish(new SystemWarning($"MID {message.Mid} delivery round failed: {e.GetType().Name}: {e.Message}"));
            holdBack = !await RecordFailedRoundAsync(message, due, e).ConfigureAwait(false);
        }
        catch (Exception) { /* shutting down: the store still holds the message */ }
        finally
        {
            if (holdBack)
            {
                // Not even the failure could be recorded (the store is failing): keep the
                // message out of the schedule for a while instead of retrying it at once.
                try { await Task.Delay(UnrecordedRoundPenalty, ct).ConfigureAwait(false); } catch (OperationCanceledException) { }
            }
            lock (_inFlight) _inFlight.Remove(message.Mid);
            Interlocked.Decrement(ref _active);
            Wake();
        }
    }

    /// <summary>
    /// Records a round that failed before its outcome was stored: recipients already decided
    /// keep that decision, the rest get an attempt with a 4.3.0 reason and the usual backoff
    /// (or expire). Returns false when even this could not be stored.
    /// </summary>
    private async Task<bool> RecordFailedRoundAsync(QueuedMessage message, IReadOnlyList<QueuedRecipient> due, Exception error)
    {
        try
        {
            var now = DateTimeOffset.UtcNow;
            var reason = $"delivery round failed: {error.GetType().Name}: {error.Message}";
            var updates = new List<RecipientUpdate>();
            var events = new List<MailEvent>();
            foreach (var r in due)
            {
                if (!r.IsFinal && r.NextAttempt <= now)
                {
                    r.Attempts++;
                    r.LastResponse = "4.3.0 " + reason;
                    var profile = ProfileFor(r);
                    var age = now - message.ReceivedAt;
                    if (age.TotalSeconds >= profile.MaxTimeInQueueSeconds || r.Attempts > profile.MaxRetries)
                    {
                        r.State = RecipientState.Bounced;
                        events.Add(new RecipientBounced(0, message.Mid, r.Rid, message.Sender, r.Address, "4.3.0",
                            $"delivery time expired after {r.Attempts} attempts; last error: {reason} (no DSN: the round that would send it failed)"));
                    }
                    else
                    {
                        r.NextAttempt = now + Backoff(r.Attempts, profile);
                        events.Add(new RecipientDelayed(0, message.Mid, r.Rid, message.Sender, r.Address, "4.3.0", reason, r.NextAttempt));
                    }
                }
                updates.Add(new RecipientUpdate(r.Rid, r.State, r.Attempts, r.NextAttempt, r.LastResponse));
            }
            await _store.UpdateRecipientsAsync(message.Mid, updates).ConfigureAwait(false);
            foreach (var e in events) _events.Publish(e);
            if (message.Recipients.All(r => r.IsFinal))   // the store removed it with the update
                _events.Publish(new MessageFinished(message.Mid, "done (delivery rounds failed; some recipients expired)"));
            return true;
        }
        catch (Exception e)
        {
            _events.Publish(new SystemWarning($"MID {message.Mid}: could not record the failed round: {e.Message}"));
            return false;
        }
    }

    private async Task RecordAsync(QueuedMessage message, ReadOnlyMemory<byte> body, IReadOnlyList<RecipientResult> results)
    {
        var now = DateTimeOffset.UtcNow;
        var updates = new List<RecipientUpdate>();
        // Published only once the store holds the new state, so the log and tracking never
        // report a decision that a crash could undo.
        var outcome = new List<MailEvent>();
        var dsn = new List<DsnRecipient>();
        foreach (var result in results)
        {
            var r = message.Recipients.First(x => x.Rid == result.Rid);
            var profile = ProfileFor(r);
            if (result.RetryAfter is { } wait && result.Outcome == RecipientOutcome.Deferred)
            {
                // Held back by Postern's own limits: not an attempt, and no penalty.
                r.NextAttempt = now + wait;
                r.LastResponse = $"{result.Status} {result.Detail}";
                outcome.Add(new RecipientDelayed(result.Dcid, message.Mid, r.Rid, message.Sender, r.Address, result.Status, result.Detail, r.NextAttempt));
                updates.Add(new RecipientUpdate(r.Rid, r.State, r.Attempts, r.NextAttempt, r.LastResponse));
                continue;
            }
            r.Attempts++;
            r.LastResponse = $"{result.Status} {result.Detail}";
            switch (result.Outcome)
            {
                case RecipientOutcome.Delivered:
                    r.State = RecipientState.Delivered;
                    outcome.Add(new RecipientResponse(message.Mid, r.Rid, result.Detail));
                    if (r.Notify.HasFlag(DsnNotify.Success) && !result.PeerSupportsDsn)
                        dsn.Add(new DsnRecipient(r, "relayed", "2.0.0", Diagnostic(result), result.RemoteHost));
                    break;
                case RecipientOutcome.Bounced:
                    r.State = RecipientState.Bounced;
                    outcome.Add(new RecipientBounced(result.Dcid, message.Mid, r.Rid, message.Sender, r.Address, result.Status, result.Detail));
                    if (WantsFailureDsn(r, profile)) dsn.Add(new DsnRecipient(r, "failed", result.Status, Diagnostic(result), result.RemoteHost));
                    else outcome.Add(new BounceSuppressed(message.Mid, NoDsnReason(r, profile)));
                    break;
                case RecipientOutcome.Deferred:
                    var age = now - message.ReceivedAt;
                    if (age.TotalSeconds >= profile.MaxTimeInQueueSeconds || r.Attempts > profile.MaxRetries)
                    {
                        r.State = RecipientState.Bounced;
                        var why = $"delivery time expired after {r.Attempts} attempts in {(int)age.TotalSeconds} s; last error: {result.Detail}";
                        outcome.Add(new RecipientBounced(result.Dcid, message.Mid, r.Rid, message.Sender, r.Address, result.Status, why));
                        if (WantsFailureDsn(r, profile)) dsn.Add(new DsnRecipient(r, "failed", result.Status, "x-postern; " + why, result.RemoteHost));
                        else outcome.Add(new BounceSuppressed(message.Mid, NoDsnReason(r, profile)));
                    }
                    else
                    {
                        r.NextAttempt = now + Backoff(r.Attempts, profile);
                        outcome.Add(new RecipientDelayed(result.Dcid, message.Mid, r.Rid, message.Sender, r.Address, result.Status, result.Detail, r.NextAttempt));
                    }
                    break;
            }
            updates.Add(new RecipientUpdate(r.Rid, r.State, r.Attempts, r.NextAttempt, r.LastResponse));
        }
        foreach (var group in results.Where(r => r.Outcome == RecipientOutcome.Delivered && r.Dcid != 0).GroupBy(r => r.Dcid))
            outcome.Add(new MessageDone(group.Key, message.Mid, group.Select(r => r.Rid).ToList()));

        // The DSN is queued durably before the recipients are marked final, so a crash in
        // between can at worst send it twice, never lose it.
        var dsnEvents = dsn.Count > 0 ? await GenerateDsnAsync(message, body, dsn).ConfigureAwait(false) : [];
        await _store.UpdateRecipientsAsync(message.Mid, updates).ConfigureAwait(false);
        foreach (var e in outcome.Concat(dsnEvents)) _events.Publish(e);
        if (message.Recipients.All(r => r.IsFinal))
        {
            // The store removed the message in the same transaction as the final update.
            var finished = message.Recipients.All(r => r.State == RecipientState.Delivered) ? "done"
                : message.Recipients.All(r => r.State == RecipientState.Bounced) ? "bounced" : "done (some recipients bounced)";
            _events.Publish(new MessageFinished(message.Mid, finished));
        }
    }

    private static string Diagnostic(RecipientResult r) => r.Diagnostic ?? "x-postern; " + r.Detail;

    /// <summary>The bounce profile of the recipient's destination (Destination Controls).</summary>
    private BounceProfile ProfileFor(QueuedRecipient r) =>
        _config.BounceProfileFor(_config.DestinationControls.Resolve(r.Domain).BounceProfile);

    /// <summary>Why a failed recipient gets no DSN: the log says so rather than staying silent.</summary>
    private string NoDsnReason(QueuedRecipient r, BounceProfile profile) => !profile.SendBounces
        ? $"<{r.Address}>: bounce profile {_config.DestinationControls.Resolve(r.Domain).BounceProfile} sends no bounces"
        : $"<{r.Address}>: the sender's NOTIFY does not ask for failures";

    private static bool WantsFailureDsn(QueuedRecipient r, BounceProfile profile) =>
        profile.SendBounces && (r.Notify == DsnNotify.Default || r.Notify.HasFlag(DsnNotify.Failure));

    private static TimeSpan Backoff(int attempts, BounceProfile p)
    {
        var seconds = p.InitialRetrySeconds * Math.Pow(2, Math.Max(0, attempts - 1));
        return TimeSpan.FromSeconds(Math.Min(seconds, p.MaxRetrySeconds));
    }

    /// <summary>Queues the DSN durably; returns the events to publish with the recipients' outcome.</summary>
    private async Task<IReadOnlyList<MailEvent>> GenerateDsnAsync(QueuedMessage original, ReadOnlyMemory<byte> body, IReadOnlyList<DsnRecipient> recipients)
    {
        if (original.IsNullSender)
        {
            return [new BounceSuppressed(original.Mid, "null reverse-path (a bounce is never bounced)")];
        }
        var domain = DomainNames.Normalize(SmtpSyntax.DomainOf(original.Sender));
        if (domain is null)
        {
            return [new BounceSuppressed(original.Mid, $"sender <{original.Sender}> has no routable domain")];
        }
        var dsnBody = DsnBuilder.Build(_config.Hostname, original, body.Span, recipients, DateTimeOffset.UtcNow);
        var mid = await _store.NextIdAsync(IdKind.Message).ConfigureAwait(false);
        var bounce = new QueuedMessage
        {
            Mid = mid, Icid = 0, ReceivedAt = DateTimeOffset.UtcNow, Sender = "", SmtpUtf8 = !SmtpSyntax.IsAscii(original.Sender),
            BodyType = "8BITMIME", Size = dsnBody.Length, ClientAddress = "", Helo = "", Listener = "", BounceOf = original.Mid,
            Recipients = [new QueuedRecipient { Rid = 0, Address = original.Sender, Domain = domain, Notify = DsnNotify.Never, NextAttempt = DateTimeOffset.UtcNow }],
        };
        await _store.EnqueueAsync(bounce, dsnBody).ConfigureAwait(false);
        return [new BounceGenerated(mid, original.Mid), new MessageQueued(mid)];
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_loop is not null) await _loop.ConfigureAwait(false);
    }
}
