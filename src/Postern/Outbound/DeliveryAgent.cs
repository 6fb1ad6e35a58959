using System.Collections.Concurrent;
using System.Threading.Channels;
using Postern.Admin;
using Postern.Dns;
using Postern.Policy;
using Postern.Observability;
using Postern.Queue;

namespace Postern.Outbound;

/// <summary>One SMTP transaction to do: a message and its recipients at one destination domain.</summary>
public sealed class DeliveryJob(QueuedMessage message, IReadOnlyList<QueuedRecipient> recipients, string domain, ReadOnlyMemory<byte> body)
{
    public QueuedMessage Message { get; } = message;
    public IReadOnlyList<QueuedRecipient> Recipients { get; } = recipients;
    public string Domain { get; } = domain;
    public ReadOnlyMemory<byte> Body { get; } = body;
    public TaskCompletionSource<IReadOnlyList<RecipientResult>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Complete(RecipientOutcome outcome, string status, string detail, long dcid = 0, string? host = null, TimeSpan? retryAfter = null) =>
        Done.TrySetResult(Recipients.Select(r => new RecipientResult(r.Rid, outcome, status, detail, dcid, host, RetryAfter: retryAfter)).ToList());
}

/// <summary>
/// Per-destination delivery queues: at most the destination's connection limit open at
/// once, each connection carrying up to max-messages-per-connection transactions, and a
/// domain whose hosts all failed is held back briefly so queued jobs fail fast.
/// Like Postfix's connection cache and slow start: a connection with nothing to send waits
/// a moment for the next job before it says QUIT, and a new connection is opened only when
/// jobs wait and no idle one can take them, up to a concurrency window that grows with
/// each delivered message and shrinks when connecting fails.
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
    /// <summary>Connections a destination starts with before the window grows (Postfix: initial_destination_concurrency).</summary>
    public const int InitialConcurrency = 5;
    /// <summary>Cancelled when a delivery waits for one of the total connections: idle ones then close and free theirs.</summary>
    private CancellationTokenSource _idleRelease = new();

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
        // Report mail's own queues count under their domain: the key's prefix is internal.
        _destinations.Values.Where(d => d.Active > 0).GroupBy(d => d.Domain, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => g.Sum(d => d.Active), StringComparer.OrdinalIgnoreCase);

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
        // TLS reports travel apart from other mail: under their own, relaxed TLS rules (below), on their own connections.
        var reportTraffic = job.Message.Listener == TlsRptReporter.QueueListener;
        var queue = _destinations.GetOrAdd(reportTraffic ? ReportQueuePrefix + job.Domain : job.Domain, _ => new DestinationQueue(this, job.Domain, reportTraffic));
        queue.Submit(job);
        return job.Done.Task;
    }

    /// <summary>The destination-queue key prefix of TLS report mail (a character no domain holds).</summary>
    private const string ReportQueuePrefix = "\u0001tlsrpt ";

    private sealed class DestinationQueue(DeliveryAgent agent, string domain, bool reportTraffic)
    {
        private readonly Channel<DeliveryJob> _jobs = Channel.CreateBounded<DeliveryJob>(MaxQueuedJobs);
        private readonly Lock _gate = new();
        private int _pending;
        private int _workers;
        /// <summary>Workers holding an open connection with nothing to send.</summary>
        private int _idle;
        /// <summary>The slow-start window: connections this destination may have now (at most its limit).</summary>
        private double _window = InitialConcurrency;
        private DateTimeOffset _downUntil;
        private ConnectFailure? _downReason;
        public int Peak;
        public int Active => Volatile.Read(ref _workers);
        public string Domain => domain;

        private readonly Queue<(DateTimeOffset At, int Count)> _sent = new();
        private EffectiveDestination Destination => reportTraffic
            ? ForReports(agent._config.DestinationControls.Resolve(domain))
            : agent._config.DestinationControls.Resolve(domain);

        /// <summary>
        /// RFC 8460 §5.3: reports are delivered despite TLS failures (they are how the receiver
        /// learns of them), so report mail goes with TLS preferred, no DANE, no MTA-STS, and its
        /// own sessions are not counted in the next report.
        /// </summary>
        private static EffectiveDestination ForReports(EffectiveDestination d) => d with
        {
            Tls = TlsLevel.Preferred, TlsSource = "TLS report delivery (RFC 8460 §5.3)", Dane = DaneSupport.None, MtaSts = MtaStsSupport.Off,
        };
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
                // A new connection only when jobs wait that no idle connection will take.
                if (_workers < Math.Min(Limit, (int)_window) && _pending > Volatile.Read(ref _idle))
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
                    // A job the previous connection could not take after all opens the next one.
                    for (DeliveryJob? next = job; next is not null;)
                        next = await RunConnectionAsync(next, ct).ConfigureAwait(false);
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

        /// <summary>
        /// Runs one connection; whatever happens, the first job gets an answer. Returns a job
        /// taken for this connection that it could not carry (it closed meanwhile): the
        /// caller runs it on a new one.
        /// </summary>
        private async Task<DeliveryJob?> RunConnectionAsync(DeliveryJob first, CancellationToken ct)
        {
            try
            {
                return await RunConnectionCoreAsync(first, ct).ConfigureAwait(false);
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
            return null;
        }

        /// <summary>Delivers the first job and then as many queued ones as one connection may carry.</summary>
        private async Task<DeliveryJob?> RunConnectionCoreAsync(DeliveryJob first, CancellationToken ct)
        {
            if (agent.IsSuspended(domain))
            {
                // Held by the operator: no connection, no attempt counted; looked at again shortly.
                first.Complete(RecipientOutcome.Deferred, "4.3.2", $"delivery to {domain} suspended by the administrator", retryAfter: SuspendedRecheck);
                return null;
            }
            if (DateTimeOffset.UtcNow < _downUntil && _downReason is { } down)
            {
                first.Complete(RecipientOutcome.Deferred, down.Status, down.Reason + " (destination held back after failed attempts)");
                return null;
            }
            var destination = Destination;
            if (await ReserveAsync(destination, first.Recipients.Count, ct).ConfigureAwait(false) is { } wait)
            {
                first.Complete(RecipientOutcome.Deferred, "4.7.0", $"recipient limit for {domain} reached ({destination.RecipientLimit!.Recipients} per {destination.RecipientLimit.Minutes} min)", retryAfter: wait);
                return null;
            }
            var config = agent._config;
            // What a cached connection must still match before it carries another message.
            var trustedAtOpen = agent._context.TrustedRoots();
            var clientCertificateAtOpen = agent._context.ClientCertificate();
            var route = await agent._routes.ResolveAsync(domain, destination.IpPreference, ct).ConfigureAwait(false);
            if (route.Outcome != RouteOutcome.Ok)
            {
                first.Complete(route.Outcome == RouteOutcome.Permanent ? RecipientOutcome.Bounced : RecipientOutcome.Deferred, route.Status, route.Reason);
                return null;
            }
            var hops = WithoutLoops(route.Hops);
            if (hops.Count == 0)
            {
                first.Complete(RecipientOutcome.Bounced, "5.4.6", $"mail for {domain} loops back to myself");
                return null;
            }
            if (!agent._totalConnections.Wait(0))
            {
                agent.ReleaseIdleConnections();   // idle connections to other destinations give way
                await agent._totalConnections.WaitAsync(ct).ConfigureAwait(false);
            }
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
                        return null;
                    }
                }
                StsPolicy? sts = null;
                if (destination.MtaSts == MtaStsSupport.On && agent.Sts is { } provider)
                {
                    if (!route.ViaSmtpRoute) sts = await provider.GetAsync(domain, ct).ConfigureAwait(false);
                    else if (agent._stsRouteLogged.TryAdd(domain, true))
                        agent._events.Publish(new StsSkipped(domain, "an SMTP route is configured for it (MTA-STS applies to MX delivery only)"));
                }
                // TLS reporting (RFC 8460): every session to an MX host is counted under the policy it was made under.
                // Not through an SMTP route: a smarthost is not the domain's MX, and its names and addresses are ours to keep.
                var reporting = !reportTraffic && config.TlsReporting.Enabled && !route.ViaSmtpRoute;
                var stsUnavailable = reporting && sts is null && !route.ViaSmtpRoute && destination.MtaSts == MtaStsSupport.On
                    && agent.Sts?.Unavailable(domain) is { } unavailable
                    ? TlsRptPolicy.StsUnavailable(domain, unavailable.Result, unavailable.Reason) : null;
                ConnectFailure? lastFailure = null;
                var daneByHost = new Dictionary<string, DaneHostPolicy>(StringComparer.OrdinalIgnoreCase);
                var allDane = true;
                foreach (var hop in hops)
                {
                    if (!daneByHost.TryGetValue(hop.Host, out var dane))
                        daneByHost[hop.Host] = dane = (await DaneLookup.ForHostAsync(agent._routes.Resolver, destination.Dane, route, hop, ct).ConfigureAwait(false)).Policy;
                    var report = !reporting ? null
                        : stsUnavailable is not null && dane.Kind == DaneHostKind.NotApplicable ? stsUnavailable
                        : TlsRptPolicy.For(domain, dane, sts);
                    if (dane.Kind == DaneHostKind.Unusable)
                    {
                        if (report is not null)
                            agent._events.Publish(new TlsSessionReported(0, report, hop.Host, null, hop.Address.ToString(), TlsRptPolicy.ForUnusable(dane), dane.Reason));
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
                        // In testing mode the host is used anyway, and its session reports what enforce would have refused.
                        report = report is null ? null : report with { Failure = TlsRptResultType.ValidationFailure, FailureDetail = why };
                        if (stsKind == StsHostKind.NotInPolicy)
                        {
                            if (report is not null)
                                agent._events.Publish(new TlsSessionReported(0, report, hop.Host, null, hop.Address.ToString(), report.Failure, why));
                            lastFailure = new ConnectFailure("4.7.5", $"MTA-STS policy enforced: {why}");
                            allDane = false;
                            continue;
                        }
                    }
                    var dcid = await agent._store.NextIdAsync(IdKind.DeliveryConnection).ConfigureAwait(false);
                    var (c, failure) = await SmtpClientConnection.OpenAsync(hop, destination, dcid, agent._context, ct, dane,
                        dane.Kind == DaneHostKind.NotApplicable ? stsKind : StsHostKind.NotApplicable, report).ConfigureAwait(false);
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
                    lock (_gate) _window = Math.Max(1, _window - 1);   // slow start backs off on failure
                    first.Complete(RecipientOutcome.Deferred, f.Status, $"all mail hosts of {domain} failed; last: {f.Reason}");
                    return null;
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
                        lock (_gate) _window = Math.Min(Limit, _window + 1 / _window);   // +1 per window's worth of messages
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
                        return null;
                    }
                    count++;
                    if (count >= max || !connection.Reusable) break;
                    var (next, waited) = await NextJobAsync(ct).ConfigureAwait(false);
                    if (next is null) break;
                    if (waited && NotReusable(connection, config, trustedAtOpen, clientCertificateAtOpen) is { } notReused)
                    {
                        // This job opens a new connection instead: no attempt lost on a dead session.
                        await connection.CloseAsync($"idle connection not reused: {notReused}", sendQuit: connection.IsIdleAndOpen()).ConfigureAwait(false);
                        connection = null;
                        return next;
                    }
                    job = next;
                }
                await connection.CloseAsync(count >= max ? "max messages per connection"
                    : connection.Reusable && agent._config.Delivery.ConnectionCacheSeconds is > 0 and var idle ? $"idle for {idle} s" : "").ConfigureAwait(false);
                connection = null;
            }
            finally
            {
                if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
                if (slot is not null) await slot.DisposeAsync().ConfigureAwait(false);
                agent._totalConnections.Release();
            }
            return null;
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

        /// <summary>
        /// The next job for an open connection: one queued now, else one that arrives within
        /// the idle time (the connection cache). Waited is true when the connection sat idle.
        /// </summary>
        private async Task<(DeliveryJob? Job, bool Waited)> NextJobAsync(CancellationToken ct)
        {
            if (await TakeWithinLimitAsync(ct).ConfigureAwait(false) is { } now) return (now, false);
            var cacheTime = agent._config.Delivery.ConnectionCacheSeconds;
            if (cacheTime == 0) return (null, false);
            Interlocked.Increment(ref _idle);
            try
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct, agent._idleRelease.Token);
                idle.CancelAfter(TimeSpan.FromSeconds(cacheTime));
                while (true)
                {
                    try
                    {
                        if (!await _jobs.Reader.WaitToReadAsync(idle.Token).ConfigureAwait(false)) return (null, true);
                    }
                    catch (OperationCanceledException) { return (null, true); }
                    // Another idle connection may have taken it first.
                    if (await TakeWithinLimitAsync(ct).ConfigureAwait(false) is { } job) return (job, true);
                }
            }
            finally { Interlocked.Decrement(ref _idle); }
        }

        /// <summary>
        /// Why an idle connection may not carry the next job (null: it may): it must still be
        /// open, and made under the configuration, trusted CA lists and client certificate in
        /// force (a commit while it waited may have changed what its TLS was checked against).
        /// </summary>
        private string? NotReusable(SmtpClientConnection connection, PosternConfig openedUnder,
            System.Security.Cryptography.X509Certificates.X509Certificate2Collection trustedAtOpen,
            System.Security.Cryptography.X509Certificates.X509Certificate2? clientCertificateAtOpen)
        {
            if (!connection.IsIdleAndOpen()) return "closed by the peer";
            if (agent.IsSuspended(domain)) return "delivery suspended";
            if (!ReferenceEquals(agent._config, openedUnder)) return "configuration changed";
            if (!ReferenceEquals(agent._context.TrustedRoots(), trustedAtOpen)) return "trusted CA lists changed";
            if (!ReferenceEquals(agent._context.ClientCertificate(), clientCertificateAtOpen)) return "client certificate changed";
            return null;
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

    /// <summary>Ends the idle wait of every cached connection (a delivery needs one of the total connections).</summary>
    private void ReleaseIdleConnections()
    {
        // Not disposed: an idle wait may be linking to its token right now.
        Interlocked.Exchange(ref _idleRelease, new CancellationTokenSource()).Cancel();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var d in _destinations.Values) d.AbandonQueued();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref _running) > 0 && DateTime.UtcNow < deadline) await Task.Delay(50).ConfigureAwait(false);
    }
}
