using System.Collections.Concurrent;
using System.Threading.Channels;
using Postern.Admin;
using Postern.Dns;
using Postern.Policy;
using Postern.Observability;
using Postern.Queue;

namespace Postern.Outbound;

/// <summary>One SMTP transaction to do: a message and its recipients at one destination domain.</summary>
public sealed class DeliveryJob(QueuedMessage message, IReadOnlyList<QueuedRecipient> recipients, string domain, byte[] body)
{
    public QueuedMessage Message { get; } = message;
    public IReadOnlyList<QueuedRecipient> Recipients { get; } = recipients;
    public string Domain { get; } = domain;
    public byte[] Body { get; } = body;
    public TaskCompletionSource<IReadOnlyList<RecipientResult>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Complete(RecipientOutcome outcome, string status, string detail, long dcid = 0, string? host = null, TimeSpan? retryAfter = null) =>
        Done.TrySetResult(Recipients.Select(r => new RecipientResult(r.Rid, outcome, status, detail, dcid, host, RetryAfter: retryAfter)).ToList());
}

/// <summary>
/// Per-destination delivery queues: at most the destination's connection limit open at
/// once, each connection carrying up to max-messages-per-connection transactions, and a
/// domain whose hosts all failed is held back briefly so queued jobs fail fast.
/// </summary>
public sealed class DeliveryAgent : IAsyncDisposable
{
    /// <summary>The configuration in force: read at each decision, so a committed version applies to the next delivery.</summary>
    private PosternConfig _config => _context.Current;
    private readonly OutboundContext _context;
    private readonly RouteResolver _routes;
    private readonly MailEventStream _events;
    private readonly IQueueStore _store;
    private readonly ConcurrentDictionary<string, DestinationQueue> _destinations = new(StringComparer.OrdinalIgnoreCase);
    private readonly SemaphoreSlim _totalConnections;
    private readonly OwnEndpoints _own;
    /// <summary>Transactions waiting per destination; the scheduler's active-message limit keeps it far below this.</summary>
    private const int MaxQueuedJobs = 100_000;
    private readonly CancellationTokenSource _stop = new();
    private int _running;

    /// <summary>MTA-STS policies (discovery, fetch, cache); null when no destination uses MTA-STS.</summary>
    public StsPolicyProvider? Sts { get; init; }
    /// <summary>Routed domains whose "MTA-STS not applied" line was already logged (bounded by the configured routes).</summary>
    private readonly ConcurrentDictionary<string, bool> _stsRouteLogged = new(StringComparer.OrdinalIgnoreCase);

    public DeliveryAgent(OutboundContext context, RouteResolver routes, IQueueStore store, OwnEndpoints? own = null)
    {
        _own = own ?? new OwnEndpoints();
        var config = context.Config;
        var events = context.Events;
        _context = context;
        _routes = routes;
        _store = store;
        _events = events;
        _totalConnections = new SemaphoreSlim(config.Delivery.TotalConcurrentConnections);
    }

    /// <summary>Observed peak of simultaneous connections per domain (for tests and metrics).</summary>
    public int PeakConnections(string domain) => _destinations.TryGetValue(domain, out var d) ? d.Peak : 0;

    /// <summary>Destinations with connections open now (for status and hoststatus).</summary>
    public IReadOnlyDictionary<string, int> ActiveConnections() =>
        _destinations.Where(d => d.Value.Active > 0).ToDictionary(d => d.Key, d => d.Value.Active);

    /// <summary>Domains whose delivery an operator suspended ("*" = all): held, not attempted.</summary>
    private volatile IReadOnlySet<string> _suspended = new HashSet<string>();
    public static readonly TimeSpan SuspendedRecheck = TimeSpan.FromSeconds(10);

    public void SetSuspended(IReadOnlySet<string> domains) => _suspended = domains;
    /// <summary>Cluster-wide recipient-rate windows (a shared store); null on one machine.</summary>
    public IRecipientRate? Rate { get; init; }
    /// <summary>Cluster-wide connection slots (a shared store); null on one machine.</summary>
    public IConnectionSlots? Slots { get; init; }
    /// <summary>How soon a job turned away by a full cluster-wide limit is looked at again (not an attempt).</summary>
    public static readonly TimeSpan ClusterLimitRecheck = TimeSpan.FromSeconds(3);
    public bool AllSuspended => _suspended.Contains("*");
    public bool IsSuspended(string domain) => _suspended.Contains("*") || _suspended.Contains(domain.ToLowerInvariant());

    public Task<IReadOnlyList<RecipientResult>> DeliverAsync(DeliveryJob job)
    {
        if (_stop.IsCancellationRequested)
        {
            job.Complete(RecipientOutcome.Deferred, "4.3.2", "delivery stopped: Postern is shutting down");
            return job.Done.Task;
        }
        var queue = _destinations.GetOrAdd(job.Domain, d => new DestinationQueue(this, d));
        queue.Submit(job);
        return job.Done.Task;
    }

    private sealed class DestinationQueue(DeliveryAgent agent, string domain)
    {
        private readonly Channel<DeliveryJob> _jobs = Channel.CreateBounded<DeliveryJob>(MaxQueuedJobs);
        private readonly Lock _gate = new();
        private int _pending;
        private int _workers;
        private DateTimeOffset _downUntil;
        private ConnectFailure? _downReason;
        public int Peak;
        public int Active => Volatile.Read(ref _workers);

        private readonly Queue<(DateTimeOffset At, int Count)> _sent = new();
        private EffectiveDestination Destination => agent._config.DestinationControls.Resolve(domain);
        private int Limit => Destination.ConcurrentConnections;

        /// <summary>
        /// Recipient rate limit (recipients per N minutes): reserves room for a job, or says
        /// how long until there is room.
        /// </summary>
        private TimeSpan? ReserveRecipients(RecipientLimit? limit, int count, DateTimeOffset now)
        {
            if (limit is null) return null;
            var window = TimeSpan.FromMinutes(limit.Minutes);
            lock (_sent)
            {
                while (_sent.Count > 0 && _sent.Peek().At + window <= now) _sent.Dequeue();
                var used = _sent.Sum(e => e.Count);
                // An oversized job may go alone into an empty window, or it would wait forever.
                if (limit.Recipients > 0 && (used + count <= limit.Recipients || used == 0))
                {
                    _sent.Enqueue((now, count));
                    return null;
                }
                return _sent.Count > 0 ? _sent.Peek().At + window - now : window;
            }
        }

        public void Submit(DeliveryJob job)
        {
            if (!_jobs.Writer.TryWrite(job))
            {
                job.Complete(RecipientOutcome.Deferred, "4.3.1", $"delivery queue for {domain} is full ({MaxQueuedJobs} transactions)");
                return;
            }
            lock (_gate)
            {
                _pending++;
                if (_workers < Limit && _workers < _pending)
                {
                    _workers++;
                    Peak = Math.Max(Peak, _workers);
                    Interlocked.Increment(ref agent._running);
                    _ = Task.Run(WorkerAsync);
                }
            }
        }

        public void AbandonQueued()
        {
            while (TryTake(out var job)) job.Complete(RecipientOutcome.Deferred, "4.3.2", "delivery stopped: Postern is shutting down");
        }

        private bool TryTake(out DeliveryJob job)
        {
            lock (_gate)
            {
                if (_jobs.Reader.TryRead(out job!)) { _pending--; return true; }
                return false;
            }
        }

        private async Task WorkerAsync()
        {
            var ct = agent._stop.Token;
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    DeliveryJob job;
                    lock (_gate)
                    {
                        if (!_jobs.Reader.TryRead(out job!)) { _workers--; return; }
                        _pending--;
                    }
                    await RunConnectionAsync(job, ct).ConfigureAwait(false);
                }
                lock (_gate) _workers--;
            }
            catch (Exception e)
            {
                lock (_gate) _workers--;
                agent._events.Publish(new SystemWarning($"delivery worker for {domain} failed: {e}"));
            }
            finally
            {
                Interlocked.Decrement(ref agent._running);
                // Jobs may have arrived while this worker was leaving.
                lock (_gate)
                    if (_pending > 0 && _workers == 0)
                    {
                        _workers++;
                        Interlocked.Increment(ref agent._running);
                        _ = Task.Run(WorkerAsync);
                    }
            }
        }

        /// <summary>Runs one connection; whatever happens, the first job gets an answer.</summary>
        private async Task RunConnectionAsync(DeliveryJob first, CancellationToken ct)
        {
            try
            {
                await RunConnectionCoreAsync(first, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // A fault of ours: the job is answered (deferred, so it is an attempt with backoff), never left hanging.
                agent._events.Publish(new SystemWarning($"delivery to {domain} failed: {e.GetType().Name}: {e.Message}"));
                first.Complete(RecipientOutcome.Deferred, "4.3.0", $"internal error delivering to {domain}: {e.GetType().Name}: {e.Message}");
            }
            catch (Exception) { /* shutting down */ }
            finally
            {
                first.Complete(RecipientOutcome.Deferred, "4.3.2", "delivery stopped before a result");
            }
        }

        /// <summary>Delivers the first job and then as many queued ones as one connection may carry.</summary>
        private async Task RunConnectionCoreAsync(DeliveryJob first, CancellationToken ct)
        {
            if (agent.IsSuspended(domain))
            {
                // Held by the operator: no connection, no attempt counted; looked at again shortly.
                first.Complete(RecipientOutcome.Deferred, "4.3.2", $"delivery to {domain} suspended by the administrator", retryAfter: SuspendedRecheck);
                return;
            }
            if (DateTimeOffset.UtcNow < _downUntil && _downReason is { } down)
            {
                first.Complete(RecipientOutcome.Deferred, down.Status, down.Reason + " (destination held back after failed attempts)");
                return;
            }
            var destination = Destination;
            if (await ReserveAsync(destination, first.Recipients.Count, ct).ConfigureAwait(false) is { } wait)
            {
                first.Complete(RecipientOutcome.Deferred, "4.7.0", $"recipient limit for {domain} reached ({destination.RecipientLimit!.Recipients} per {destination.RecipientLimit.Minutes} min)", retryAfter: wait);
                return;
            }
            var config = agent._config;
            var route = await agent._routes.ResolveAsync(domain, destination.IpPreference, ct).ConfigureAwait(false);
            if (route.Outcome != RouteOutcome.Ok)
            {
                first.Complete(route.Outcome == RouteOutcome.Permanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred, route.Status, route.Reason);
                return;
            }
            var hops = WithoutLoops(route.Hops);
            if (hops.Count == 0)
            {
                first.Complete(RecipientOutcome.Bounced, "5.4.6", $"mail for {domain} loops back to myself");
                return;
            }
            await agent._totalConnections.WaitAsync(ct).ConfigureAwait(false);
            SmtpClientConnection? connection = null;
            IAsyncDisposable? slot = null;
            try
            {
                if (agent.Slots is { } slots && destination.LimitsApplyTo != LimitScope.Hostname)
                {
                    // System-wide limits in a cluster: the connection needs one of the destination's shared slots.
                    slot = await slots.TryTakeAsync(domain, Limit, ct).ConfigureAwait(false);
                    if (slot is null)
                    {
                        first.Complete(RecipientOutcome.Deferred, "4.4.5", $"cluster-wide connection limit for {domain} reached ({Limit} open across members)", retryAfter: ClusterLimitRecheck);
                        return;
                    }
                }
                StsPolicy? sts = null;
                if (destination.MtaSts == MtaStsSupport.On && agent.Sts is { } provider)
                {
                    if (!route.ViaSmtpRoute) sts = await provider.GetAsync(domain, ct).ConfigureAwait(false);
                    else if (agent._stsRouteLogged.TryAdd(domain, true))
                        agent._events.Publish(new StsSkipped(domain, "an SMTP route is configured for it (MTA-STS applies to MX delivery only)"));
                }
                ConnectFailure? lastFailure = null;
                var daneByHost = new Dictionary<string, DaneHostPolicy>(StringComparer.OrdinalIgnoreCase);
                var allDane = true;
                foreach (var hop in hops)
                {
                    if (!daneByHost.TryGetValue(hop.Host, out var dane))
                        daneByHost[hop.Host] = dane = (await DaneLookup.ForHostAsync(agent._routes.Resolver, destination.Dane, route, hop, ct).ConfigureAwait(false)).Policy;
                    if (dane.Kind == DaneHostKind.Unusable)
                    {
                        // Never plaintext, never this host now: the next MX, else a deferral.
                        agent._events.Publish(new DaneOutcome(0, domain, hop.Host, DaneResult.HostUnusable, null, -1, dane.Reason));
                        lastFailure = new ConnectFailure("4.7.5", $"DANE: MX host {hop.Host} not used: {dane.Reason}", Dane: true);
                        continue;
                    }
                    var stsKind = StsHostPolicy.ForHost(sts, hop.Host);
                    if (dane.Kind == DaneHostKind.NotApplicable && sts is not null && !sts.Allows(hop.Host) && sts.Mode != StsMode.None)
                    {
                        var why = $"{hop.Host} is not in the policy's mx list ({string.Join(", ", sts.Mx)})";
                        agent._events.Publish(new StsHostFailed(0, domain, hop.Host, StsResult.NotInPolicy, why, Testing: stsKind == StsHostKind.Testing));
                        if (stsKind == StsHostKind.NotInPolicy)
                        {
                            lastFailure = new ConnectFailure("4.7.5", $"MTA-STS policy enforced: {why}");
                            allDane = false;
                            continue;
                        }
                    }
                    var dcid = await agent._store.NextIdAsync(IdKind.DeliveryConnection).ConfigureAwait(false);
                    var (c, failure) = await SmtpClientConnection.OpenAsync(hop, destination, dcid, agent._context, ct, dane,
                        dane.Kind == DaneHostKind.NotApplicable ? stsKind : StsHostKind.NotApplicable).ConfigureAwait(false);
                    if (c is not null) { connection = c; break; }
                    lastFailure = failure;
                    allDane &= failure!.Dane;
                }
                if (connection is null)
                {
                    var f = lastFailure!;
                    if (allDane && f.Dane) agent._events.Publish(new DaneFailedForDomain(domain, f.Reason));
                    _downUntil = DateTimeOffset.UtcNow.AddSeconds(Math.Min(30, config.BounceProfileFor(destination.BounceProfile).InitialRetrySeconds));
                    _downReason = f;
                    first.Complete(RecipientOutcome.Deferred, f.Status, $"all mail hosts of {domain} failed; last: {f.Reason}");
                    return;
                }
                _downUntil = default;
                var job = first;
                var count = 0;
                var max = destination.MaxMessagesPerConnection;
                while (true)
                {
                    agent._events.Publish(new DeliveryStarted(connection.Dcid, job.Message.Mid, job.Recipients.Select(r => r.Rid).ToList()));
                    try
                    {
                        var mid = job.Message.Mid;
                        var results = await connection.SendAsync(job.Message, job.Recipients, job.Body, ct, !agent._store.IsShared ? null
                            : accepted => agent._store.MarkInDoubtAsync(mid, accepted.Select(r => r.Rid).ToList())).ConfigureAwait(false);
                        job.Done.TrySetResult(results);
                    }
                    catch (Exception e)
                    {
                        var why = e switch
                        {
                            OperationCanceledException when ct.IsCancellationRequested => "shutting down",
                            SmtpClientException => e.Message,
                            _ => $"internal error: {e.GetType().Name}: {e.Message}",
                        };
                        job.Complete(RecipientOutcome.Deferred, e is SmtpClientException ? "4.4.2" : "4.3.0",
                            $"lost connection with {connection.Hop.Host}[{connection.Hop.Address}] while sending: {why}", connection.Dcid, connection.Hop.Host);
                        await connection.CloseAsync("lost connection: " + why, sendQuit: false).ConfigureAwait(false);
                        connection = null;
                        return;
                    }
                    count++;
                    if (count >= max || !connection.Reusable || await TakeWithinLimitAsync(ct).ConfigureAwait(false) is not { } next) break;
                    job = next;
                }
                await connection.CloseAsync(count >= max ? "max messages per connection" : "").ConfigureAwait(false);
                connection = null;
            }
            finally
            {
                if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
                if (slot is not null) await slot.DisposeAsync().ConfigureAwait(false);
                agent._totalConnections.Release();
            }
        }

        /// <summary>
        /// RFC 5321 §5.1: when Postern itself is one of the next hops, only hops preferred
        /// over it may be used; none left means the mail would loop back to us.
        /// </summary>
        private IReadOnlyList<NextHop> WithoutLoops(IReadOnlyList<NextHop> hops)
        {
            var self = hops.FirstOrDefault(h => agent._own.Contains(h.Address, h.Port));
            if (self is null) return hops;
            return hops.Where(h => h.Preference < self.Preference && !agent._own.Contains(h.Address, h.Port)).ToList();
        }

        /// <summary>Takes the next queued job for this connection, deferring the ones the rate limit holds back.</summary>
        private async Task<DeliveryJob?> TakeWithinLimitAsync(CancellationToken ct)
        {
            while (TryTake(out var job))
            {
                var limit = Destination.RecipientLimit;
                if (await ReserveAsync(Destination, job.Recipients.Count, ct).ConfigureAwait(false) is not { } wait) return job;
                job.Complete(RecipientOutcome.Deferred, "4.7.0", $"recipient limit for {domain} reached ({limit!.Recipients} per {limit.Minutes} min)", retryAfter: wait);
            }
            return null;
        }

        /// <summary>The recipient-rate limit: this machine's window, or the cluster's when the limit applies system-wide there.</summary>
        private async Task<TimeSpan?> ReserveAsync(EffectiveDestination destination, int count, CancellationToken ct)
        {
            var limit = destination.RecipientLimit;
            if (limit is null) return null;
            if (agent.Rate is { } shared && destination.LimitsApplyTo != LimitScope.Hostname)
                return await shared.TryReserveAsync(domain, limit.Recipients, TimeSpan.FromMinutes(limit.Minutes), count, ct).ConfigureAwait(false);
            return ReserveRecipients(limit, count, DateTimeOffset.UtcNow);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var d in _destinations.Values) d.AbandonQueued();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref _running) > 0 && DateTime.UtcNow < deadline) await Task.Delay(50).ConfigureAwait(false);
    }
}
