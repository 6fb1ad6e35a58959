using System.Globalization;
using System.Threading.Channels;
using Postern.Admin;

namespace Postern.Observability;

/// <summary>
/// Message tracking's subscriber. The publisher's only cost is a type test and a TryWrite into
/// a bounded channel: when the channel is full the event is dropped and counted (a warning
/// says how many, at most once a minute), so tracking never slows mail down. One task reads
/// the channel, follows each message through the events (ICID → MID, DCID → MID and RIDs by
/// DeliveryStarted, the facts of a delivery connection gathered before DeliveryStarted and
/// attached to every delivery on it) and writes what it learnt in batches, one transaction per
/// batch. The maps it follows with are bounded and emptied as connections close and messages
/// are queued. The same task deletes messages older than the retention, at start and daily.
/// </summary>
public sealed class MessageTracker : IAsyncDisposable
{
    /// <summary>Events waiting for the tracking task; beyond this they are dropped and counted.</summary>
    public const int Backlog = 100_000;
    /// <summary>Events applied per transaction at most.</summary>
    public const int MaxBatch = 5_000;
    /// <summary>How long events are gathered before a commit (a search sees a message this much later).</summary>
    public static readonly TimeSpan CommitInterval = TimeSpan.FromMilliseconds(250);
    public const int MaxInboundConnections = 20_000;
    public const int MaxOpenMessages = 20_000;
    public const int MaxDeliveryConnections = 10_000;
    /// <summary>Recipients handed to a delivery and not yet answered.</summary>
    public const int MaxInFlight = 100_000;
    /// <summary>Destination domains with MTA-STS facts or unclaimed host attempts.</summary>
    public const int MaxDomains = 2_000;
    /// <summary>Host attempts kept per domain until a deferral claims them.</summary>
    public const int MaxHostAttemptsPerDomain = 8;
    /// <summary>Steps kept for one message before it is queued (a few per recipient).</summary>
    public const int MaxStepsBeforeQueue = 1_000;
    /// <summary>Messages deleted per retention transaction (the batches interleave with tracking).</summary>
    public const int RetentionBatch = 5_000;
    /// <summary>Entries older than this are purged when a map is full (a close event that was dropped).</summary>
    private static readonly TimeSpan StaleAfter = TimeSpan.FromHours(1);
    /// <summary>Domain facts (MTA-STS lookups, failed hosts) apply to connections made this soon after.</summary>
    private static readonly TimeSpan DomainFactsFor = TimeSpan.FromMinutes(10);

    private readonly ITrackingStore _store;
    private readonly MailEventStream _events;
    private readonly Func<TrackingSettings> _settings;
    private readonly Func<DateTimeOffset> _now;
    private readonly Channel<MailEvent> _channel = Channel.CreateBounded<MailEvent>(new BoundedChannelOptions(Backlog)
    {
        SingleReader = true, FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly Task _loop;
    private readonly Timer? _daily;
    private long _dropped;
    private long _unfollowed;
    private long _lastWarning = Environment.TickCount64 - WarningIntervalMs;
    private const long WarningIntervalMs = 60_000;

    /// <summary>Asks the tracking task to run the retention (and, when done, completes Done).</summary>
    private sealed record RetentionDue(TaskCompletionSource? Done, int DeletedSoFar) : MailEvent
    {
        public override string LogText => "";
    }

    /// <summary>Completes when everything before it is committed (tests, shutdown).</summary>
    private sealed record FlushRequest(TaskCompletionSource Done) : MailEvent
    {
        public override string LogText => "";
    }

    public MessageTracker(ITrackingStore store, MailEventStream events, Func<TrackingSettings> settings, Func<DateTimeOffset>? now = null, bool scheduleRetention = true)
    {
        _store = store;
        _events = events;
        _settings = settings;
        _now = now ?? (() => DateTimeOffset.UtcNow);
        _loop = Task.Run(RunAsync);
        events.Subscribe(OnEvent);
        if (scheduleRetention)
            _daily = new Timer(_ => _channel.Writer.TryWrite(new RetentionDue(null, 0)), null, TimeSpan.Zero, TimeSpan.FromDays(1));
    }

    public ITrackingStore Store => _store;

    /// <summary>
    /// Opens &lt;data&gt;/tracking/tracking.db and starts tracking; when the database cannot be
    /// opened the gateway runs without tracking and says why (tracking must never stop mail).
    /// </summary>
    public static MessageTracker? TryStart(string dataDirectory, MailEventStream events, Func<TrackingSettings> settings)
    {
        var path = SqliteTrackingStore.PathFor(dataDirectory);
        return TryStart(path, () => SqliteTrackingStore.OpenForWriting(path), events, settings);
    }

    /// <summary>
    /// Starts tracking in the store the configuration names (<see cref="Cluster.TrackingStores"/>):
    /// the cluster's database for a member of a cluster, else &lt;data&gt;/tracking/tracking.db.
    /// When it cannot be opened the gateway runs without tracking and says why.
    /// </summary>
    public static MessageTracker? TryStart(PosternConfig config, string dataDirectory, MailEventStream events, Func<TrackingSettings> settings) =>
        TryStart(Cluster.TrackingStores.Location(config, dataDirectory), () => Cluster.TrackingStores.OpenForWriting(config, dataDirectory), events, settings);

    private static MessageTracker? TryStart(string location, Func<ITrackingStore> open, MailEventStream events, Func<TrackingSettings> settings)
    {
        try
        {
            var store = open();
            events.Publish(new SystemNotice($"message tracking in {location}, kept {settings().RetentionDays} days"));
            return new MessageTracker(store, events, settings);
        }
        catch (Exception e) when (Cluster.TrackingStores.IsUnavailable(e))
        {
            events.Publish(new SystemWarning($"message tracking is off: {location} cannot be opened: {e.Message}"));
            return null;
        }
    }

    private volatile bool _closing;

    private void OnEvent(MailEvent e)
    {
        if (_closing || !IsTracked(e)) return;
        if (!_channel.Writer.TryWrite(e))
        {
            Interlocked.Increment(ref _dropped);
            WarnIfDue();
        }
    }

    private static bool IsTracked(MailEvent e) => e is ConnectionOpened or SenderGroupMatched or InboundTlsNegotiated or InboundTlsFailed
        or ConnectionClosed or MessageStarted or MessageFrom or RecipientAccepted or RecipientRefused or BounceVerificationFailed
        or BounceVerificationPassed or MessageHeadersSeen or MessageReady or MessageQueued or MessageRefused
        or DeliveryConnectionOpened or DeliveryPolicyApplied or DaneOutcome or StsApplying or StsSuccessful or StsHostFailed
        or StsNoPolicy or StsTxtFetched or StsCacheValid or StsPolicyFetched or StsFetchFailed or StsCachedPolicyKept or StsSkipped
        or DeliveryConnectionFailed or DeliveryTlsNegotiated or DeliveryTlsOutcome or TlsRequiredFailed or SenderTagged or MessageConverted
        or DeliveryStarted or RecipientResponse or RecipientDelayed or RecipientBounced or BounceGenerated or BounceSuppressed
        or AlertSent or MessageFinished or DeliveryConnectionClosed;

    /// <summary>One warning a minute at most, with the counts since the last one.</summary>
    private void WarnIfDue()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastWarning);
        if (now - last < WarningIntervalMs || Interlocked.CompareExchange(ref _lastWarning, now, last) != last) return;
        var dropped = Interlocked.Exchange(ref _dropped, 0);
        var unfollowed = Interlocked.Exchange(ref _unfollowed, 0);
        if (dropped > 0)
            _events.Publish(new SystemWarning($"message tracking is behind: {dropped} events were not tracked (backlog of {Backlog} full); " +
                "the tracking of some messages is incomplete, mail is not affected"));
        if (unfollowed > 0)
            _events.Publish(new SystemWarning($"message tracking could not follow {unfollowed} events (too many open connections or messages to follow); " +
                "the tracking of some messages is incomplete, mail is not affected"));
    }

    /// <summary>Waits until every event published before this call is committed to the store.</summary>
    public async Task FlushAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _channel.Writer.WriteAsync(new FlushRequest(done)).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
    }

    /// <summary>Runs the retention now and waits for it (the daily run does the same).</summary>
    public async Task<int> RunRetentionAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _channel.Writer.WriteAsync(new RetentionDue(done, 0)).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        return _lastRetentionDeleted;
    }

    private int _lastRetentionDeleted;

    private async Task RunAsync()
    {
        var reader = _channel.Reader;
        var batch = new List<TrackingWrite>();
        var flushes = new List<TaskCompletionSource>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            RetentionDue? retention = null;
            var taken = 0;
            void Take()
            {
                while (taken < MaxBatch && retention is null && reader.TryRead(out var e))
                {
                    taken++;
                    switch (e)
                    {
                        case RetentionDue r: retention = r; break;   // it runs between batches
                        case FlushRequest f: flushes.Add(f.Done); break;
                        default:
                            try { Follow(e, batch); }
                            catch (Exception ex) { Problem($"message tracking could not follow {e.GetType().Name}: {ex.Message}"); }
                            break;
                    }
                }
            }
            Take();
            if (taken < MaxBatch && retention is null && flushes.Count == 0)
            {
                // Group commit: a message's events come over a second or so; gathering them for a
                // moment turns many small transactions (each rewriting the same index pages) into one.
                await Task.Delay(CommitInterval).ConfigureAwait(false);
                Take();
            }
            Commit(batch);
            if (retention is not null) Retain(retention);
            foreach (var f in flushes) f.TrySetResult();
            flushes.Clear();
            if (Interlocked.Read(ref _dropped) > 0 || Interlocked.Read(ref _unfollowed) > 0) WarnIfDue();
        }
    }

    private void Commit(List<TrackingWrite> batch)
    {
        if (batch.Count == 0) return;
        try { _store.Write(batch); }
        catch (Exception e) { Problem($"message tracking could not record {batch.Count} changes: {e.Message}"); }
        batch.Clear();
    }

    private long _lastProblem = Environment.TickCount64 - WarningIntervalMs;

    /// <summary>A failure of tracking itself (the store, a bug): logged at most once a minute, never thrown at the mail flow.</summary>
    private void Problem(string text)
    {
        var now = Environment.TickCount64;
        if (now - _lastProblem < WarningIntervalMs) return;
        _lastProblem = now;
        _events.Publish(new SystemWarning(text));
    }

    private void Retain(RetentionDue due)
    {
        var days = _settings().RetentionDays;
        var cutoff = _now() - TimeSpan.FromDays(days);
        int deleted;
        try { deleted = _store.DeleteReceivedBefore(cutoff, RetentionBatch); }
        catch (Exception e)
        {
            Problem($"message tracking retention failed: {e.Message}");
            due.Done?.TrySetResult();
            return;
        }
        var total = due.DeletedSoFar + deleted;
        // More to delete: the next batch goes behind the events waiting now, so tracking keeps up.
        if (deleted == RetentionBatch && _channel.Writer.TryWrite(due with { DeletedSoFar = total })) return;
        if (total > 0)
        {
            _events.Publish(new SystemNotice($"message tracking: {total} messages received before {cutoff.UtcDateTime:u} deleted (retention {days} days)"));
            try { _store.Optimize(); } catch (Exception e) { Problem($"message tracking could not refresh its statistics: {e.Message}"); }
        }
        _lastRetentionDeleted = total;
        due.Done?.TrySetResult();
    }

    // ================= following the events =================

    private sealed class InboundConnection(ConnectionOpened o)
    {
        public ConnectionOpened Opened { get; } = o;
        public SenderGroupMatched? Group { get; set; }
        public InboundTlsNegotiated? Tls { get; set; }
        public string? TlsFailed { get; set; }
        public long? OpenMid { get; set; }

        public Dictionary<string, string> Facts()
        {
            var f = new Dictionary<string, string>
            {
                [InboundField.Icid] = Opened.Icid.ToString(CultureInfo.InvariantCulture),
                [InboundField.Client] = Opened.Remote.ToString(),
                [InboundField.Listener] = Opened.Listener,
                [InboundField.ReverseVerified] = Opened.ReverseVerified ? "yes" : "no",
            };
            if (Opened.ReverseDns is { } rdns) f[InboundField.ReverseDns] = rdns;
            if (Group is { } g)
            {
                f[InboundField.SenderGroup] = g.Group;
                f[InboundField.Policy] = g.Policy;
                f[InboundField.Action] = g.Action;
                if (g.Match is { } m) f[InboundField.Match] = m;
            }
            if (Tls is { } t) { f[InboundField.Tls] = t.Protocol; f[InboundField.TlsCipher] = t.Cipher; }
            else if (TlsFailed is { } why) f["tlsFailed"] = why;
            return f;
        }
    }

    private sealed class OpenMessage(long mid, long icid, DateTimeOffset started, InboundConnection? connection)
    {
        public long Mid { get; } = mid;
        public long Icid { get; } = icid;
        public DateTimeOffset Started { get; } = started;
        public InboundConnection? Connection { get; } = connection;
        public string Sender { get; set; } = "";
        public List<(int Rid, string Address)> Recipients { get; } = [];
        public List<TrackingStep> Steps { get; } = [];
        public string? MessageId { get; set; }
        public string? Subject { get; set; }
        public long? Size { get; set; }

        public void Add(TrackingStep step)
        {
            if (Steps.Count < MaxStepsBeforeQueue) Steps.Add(step);
        }
    }

    /// <summary>A delivery connection (or a host that was never connected to) and what is known of it: the facts of an attempt step.</summary>
    private sealed class HostAttempt(long? dcid, string domain, DateTimeOffset time)
    {
        public long? Dcid { get; } = dcid;
        public string Domain { get; } = domain;
        public DateTimeOffset Time { get; } = time;
        public Dictionary<string, string> Fields { get; } = [];
        public bool Bound { get; set; }
    }

    private sealed record InFlight(long Dcid, string Tls, DateTimeOffset Since);
    private sealed record DomainFact(string Kind, string Detail, DateTimeOffset Time);
    private sealed record GeneratedMessage(string Origin, string Text, long? BounceOf, string? Subject, DateTimeOffset Time);

    private readonly Dictionary<long, InboundConnection> _inbound = [];
    private readonly Dictionary<long, OpenMessage> _open = [];
    private readonly Dictionary<long, HostAttempt> _outbound = [];
    private readonly Dictionary<(long Mid, int Rid), InFlight> _inFlight = [];
    private readonly Dictionary<string, DomainFact> _stsFacts = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, string> _stsPolicies = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, List<HostAttempt>> _unclaimed = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<long, GeneratedMessage> _generated = [];
    /// <summary>The last claim of host attempts: the other recipients of the same message and domain share its outcome.</summary>
    private (long Mid, string Domain, string Tls)? _lastClaim;

    private static TrackingStep Step(DateTimeOffset time, string kind, long? dcid = null, int? rid = null, Dictionary<string, string>? fields = null) =>
        new(time, kind, dcid is 0 ? null : dcid, rid, fields ?? []);

    /// <summary>Adds to a bounded map: when it is full, stale entries go first; when it is still full, the entry is not followed (and counted).</summary>
    private bool Admit<TKey, TValue>(Dictionary<TKey, TValue> map, int cap, Func<TValue, DateTimeOffset> since) where TKey : notnull
    {
        if (map.Count < cap) return true;
        var stale = _now() - StaleAfter;
        foreach (var key in map.Where(kv => since(kv.Value) < stale).Select(kv => kv.Key).ToList()) map.Remove(key);
        if (map.Count < cap) return true;
        Interlocked.Increment(ref _unfollowed);
        return false;
    }

    private void Follow(MailEvent e, List<TrackingWrite> batch)
    {
        switch (e)
        {
            // ---- inbound ----
            case ConnectionOpened o:
                if (Admit(_inbound, MaxInboundConnections, c => c.Opened.Time)) _inbound[o.Icid] = new InboundConnection(o);
                break;
            case SenderGroupMatched g when _inbound.TryGetValue(g.Icid, out var c):
                c.Group = g;
                break;
            case InboundTlsNegotiated t when _inbound.TryGetValue(t.Icid, out var c):
                c.Tls = t;
                break;
            case InboundTlsFailed f when _inbound.TryGetValue(f.Icid, out var c):
                c.TlsFailed = f.Reason;
                break;
            case ConnectionClosed x:
                // A transaction still open when the connection closes was never completed: not a message.
                if (_inbound.Remove(x.Icid, out var closed) && closed.OpenMid is { } unfinished) _open.Remove(unfinished);
                break;
            case MessageStarted s:
            {
                var connection = _inbound.GetValueOrDefault(s.Icid);
                if (connection?.OpenMid is { } abandoned) _open.Remove(abandoned);   // RSET or a new MAIL: the last one was abandoned
                if (!Admit(_open, MaxOpenMessages, m => m.Started)) break;
                _open[s.Mid] = new OpenMessage(s.Mid, s.Icid, s.Time, connection);
                if (connection is not null) connection.OpenMid = s.Mid;
                break;
            }
            case MessageFrom f when _open.TryGetValue(f.Mid, out var m):
                m.Sender = f.Sender;
                m.Add(Step(f.Time, StepKind.MailFrom, fields: new() { ["sender"] = f.Sender }));
                break;
            case RecipientAccepted a when _open.TryGetValue(a.Mid, out var m):
                if (m.Recipients.Count < MaxStepsBeforeQueue) m.Recipients.Add((a.Rid, a.Recipient));
                m.Add(Step(a.Time, StepKind.RecipientAccepted, rid: a.Rid, fields: new() { ["recipient"] = a.Recipient }));
                break;
            case RecipientRefused r when _open.TryGetValue(r.Mid, out var m):
                m.Add(Step(r.Time, StepKind.RecipientRefused, fields: new() { ["recipient"] = r.Recipient, ["reason"] = r.Reason }));
                break;
            case BounceVerificationFailed b when _open.TryGetValue(b.Mid, out var m):
                m.Add(Step(b.Time, StepKind.BounceVerification, fields: new() { ["recipient"] = b.Recipient, ["result"] = "failed", ["reason"] = b.Reason }));
                break;
            case BounceVerificationPassed b when _open.TryGetValue(b.Mid, out var m):
                m.Add(Step(b.Time, StepKind.BounceVerification, fields: new() { ["recipient"] = b.Recipient, ["result"] = "passed", ["original"] = b.Original }));
                break;
            case MessageHeadersSeen h when _open.TryGetValue(h.Mid, out var m):
                m.MessageId = h.MessageId;
                m.Subject = h.Subject;
                break;
            case MessageReady r when _open.TryGetValue(r.Mid, out var m):
                m.Size = r.Size;
                m.Sender = r.Sender;
                var content = new Dictionary<string, string> { ["size"] = r.Size.ToString(CultureInfo.InvariantCulture) };
                if (m.MessageId is { } id) content["messageId"] = id;
                if (m.Subject is { } subject) content["subject"] = subject;
                m.Add(Step(r.Time, StepKind.Content, fields: content));
                break;
            case MessageRefused x when _open.Remove(x.Mid, out var m):
                m.Add(Step(x.Time, StepKind.Rejected, fields: new() { ["reason"] = x.Reason }));
                batch.Add(Entered(m, x.Time, TrackingStatus.Rejected));
                if (m.Connection is { } rc && rc.OpenMid == m.Mid) rc.OpenMid = null;
                break;
            case MessageQueued q:
                Queued(q, batch);
                break;
            case BounceGenerated b:
                if (Admit(_generated, MaxOpenMessages, g => g.Time))
                    _generated[b.BounceMid] = new GeneratedMessage(MessageEntered.FromDsn, $"delivery status notification (DSN) for MID {b.OriginalMid}", b.OriginalMid, null, b.Time);
                batch.Add(new StepAdded(b.OriginalMid, Step(b.Time, StepKind.BounceSent, fields: new() { ["bounceMid"] = b.BounceMid.ToString(CultureInfo.InvariantCulture) })));
                break;
            case AlertSent a:
                if (Admit(_generated, MaxOpenMessages, g => g.Time))
                    _generated[a.Mid] = new GeneratedMessage(MessageEntered.FromAlert, $"alert ({a.Severity}/{a.Type}) to {a.Recipients} recipient(s): {a.Summary}", null,
                        $"{a.Severity} <{a.Type}>: {a.Summary}", a.Time);
                break;
            case BounceSuppressed s:
                batch.Add(new StepAdded(s.Mid, Step(s.Time, StepKind.BounceSuppressed, fields: new() { ["reason"] = s.Reason })));
                break;

            // ---- the destination's MTA-STS policy, looked up before connections are made ----
            case StsNoPolicy n: DomainSts(n.Domain, "none", n.Reason, n.Time); break;
            case StsTxtFetched t: DomainSts(t.Domain, "looking", $"TXT id {t.Id}", t.Time); break;
            case StsCacheValid v:
                DomainSts(v.Domain, "policy", _stsPolicies.TryGetValue(v.Domain, out var known) ? known : "cached policy", v.Time);
                break;
            case StsPolicyFetched p:
                if (_stsPolicies.Count < MaxDomains || _stsPolicies.ContainsKey(p.Domain)) _stsPolicies[p.Domain] = $"id {p.Id}: {p.Policy}";
                DomainSts(p.Domain, "policy", $"id {p.Id}: {p.Policy}", p.Time);
                break;
            case StsFetchFailed f: DomainSts(f.Domain, "fetch-failed", f.Reason, f.Time); break;
            case StsCachedPolicyKept k:
                DomainSts(k.Domain, "policy", $"cached policy kept until it expires {k.Expires.UtcDateTime:u}" +
                    (_stsPolicies.TryGetValue(k.Domain, out var kept) ? $" ({kept})" : ""), k.Time);
                break;
            case StsSkipped s: DomainSts(s.Domain, "skipped", s.Reason, s.Time); break;

            // ---- outbound connections ----
            case DeliveryConnectionOpened o:
            {
                if (!Admit(_outbound, MaxDeliveryConnections, a => a.Time)) break;
                var attempt = new HostAttempt(o.Dcid, o.Domain, o.Time);
                attempt.Fields[AttemptField.Mx] = o.MxHost;
                attempt.Fields[AttemptField.Address] = o.Remote.ToString();
                attempt.Fields[AttemptField.Port] = o.Port.ToString(CultureInfo.InvariantCulture);
                attempt.Fields[AttemptField.Domain] = o.Domain;
                attempt.Fields[AttemptField.Local] = o.Local.Address.ToString();
                if (_stsFacts.TryGetValue(o.Domain, out var sts) && o.Time - sts.Time < DomainFactsFor)
                {
                    attempt.Fields[AttemptField.StsPolicy] = sts.Kind;
                    attempt.Fields[AttemptField.StsPolicyDetail] = sts.Detail;
                }
                if (_unclaimed.TryGetValue(o.Domain, out var earlier))
                {
                    // Testing mode: the policy would refuse this host, and it is used anyway (noted before the connection).
                    var note = earlier.LastOrDefault(a => a.Dcid is null && a.Fields.GetValueOrDefault(AttemptField.Sts) == "would-fail"
                        && string.Equals(a.Fields.GetValueOrDefault(AttemptField.Mx), o.MxHost, StringComparison.OrdinalIgnoreCase));
                    if (note is not null)
                    {
                        earlier.Remove(note);
                        attempt.Fields[AttemptField.Sts] = "would-fail";
                        attempt.Fields[AttemptField.StsReason] = note.Fields[AttemptField.StsReason];
                    }
                }
                _outbound[o.Dcid] = attempt;
                break;
            }
            case DeliveryPolicyApplied p when _outbound.TryGetValue(p.Dcid, out var a):
                a.Fields[AttemptField.Level] = p.TlsLevel;
                a.Fields[AttemptField.LevelSource] = p.Source;
                if (p.Dane is { } mode) a.Fields[AttemptField.DaneMode] = mode;
                break;
            case DaneOutcome d when d.Dcid != 0:
                if (_outbound.TryGetValue(d.Dcid, out var da))
                {
                    da.Fields[AttemptField.Dane] = d.Result.ToString();
                    da.Fields[AttemptField.DaneReason] = d.Reason;
                    if (d.Record is { } record) da.Fields[AttemptField.DaneRecord] = record;
                }
                break;
            case DaneOutcome d:
            {
                var unused = new HostAttempt(null, d.Domain, d.Time);
                unused.Fields[AttemptField.Mx] = d.Host;
                unused.Fields[AttemptField.Domain] = d.Domain;
                unused.Fields[AttemptField.Dane] = d.Result.ToString();
                unused.Fields[AttemptField.DaneReason] = d.Reason;
                Unclaimed(unused);
                break;
            }
            case StsApplying s when _outbound.TryGetValue(s.Dcid, out var a):
                a.Fields[AttemptField.StsMode] = s.Mode;
                break;
            case StsSuccessful s when _outbound.TryGetValue(s.Dcid, out var a):
                a.Fields[AttemptField.Sts] = "ok";
                break;
            case StsHostFailed f when f.Dcid != 0:
                if (_outbound.TryGetValue(f.Dcid, out var fa))
                {
                    fa.Fields[AttemptField.Sts] = f.Testing ? "would-fail" : "failed";
                    fa.Fields[AttemptField.StsReason] = f.Reason;
                }
                break;
            case StsHostFailed f:
            {
                var refused = new HostAttempt(null, f.Domain, f.Time);
                refused.Fields[AttemptField.Mx] = f.Host;
                refused.Fields[AttemptField.Domain] = f.Domain;
                refused.Fields[AttemptField.Sts] = f.Testing ? "would-fail" : "failed";
                refused.Fields[AttemptField.StsReason] = f.Reason;
                if (_stsFacts.TryGetValue(f.Domain, out var fact))
                {
                    refused.Fields[AttemptField.StsPolicy] = fact.Kind;
                    refused.Fields[AttemptField.StsPolicyDetail] = fact.Detail;
                }
                Unclaimed(refused);
                break;
            }
            case DeliveryConnectionFailed f:
            {
                var failed = new HostAttempt(null, f.Domain, f.Time);
                failed.Fields[AttemptField.Mx] = f.MxHost;
                failed.Fields[AttemptField.Address] = f.Address.ToString();
                failed.Fields[AttemptField.Port] = f.Port.ToString(CultureInfo.InvariantCulture);
                failed.Fields[AttemptField.Domain] = f.Domain;
                failed.Fields[AttemptField.ConnectError] = f.Reason;
                Unclaimed(failed);
                break;
            }
            case DeliveryTlsNegotiated n when _outbound.TryGetValue(n.Dcid, out var a):
                a.Fields[AttemptField.Protocol] = n.Protocol;
                a.Fields[AttemptField.Cipher] = n.Cipher;
                a.Fields[AttemptField.Peer] = n.PeerIdentity;
                break;
            case DeliveryTlsOutcome t when _outbound.TryGetValue(t.Dcid, out var a):
                a.Fields[AttemptField.TlsOutcome] = t.Kind.ToString();
                a.Fields[AttemptField.TlsDetail] = t.Detail;
                break;
            case TlsRequiredFailed r when _outbound.TryGetValue(r.Dcid, out var a):
                a.Fields[AttemptField.TlsRequiredFailed] = r.Reason;
                break;
            case DeliveryConnectionClosed x:
                if (_outbound.Remove(x.Dcid, out var gone) && !gone.Bound)
                {
                    // Never carried a message: kept for the deferral that follows (its reason is in the close).
                    if (x.Reason.Length > 0) gone.Fields[AttemptField.Closed] = x.Reason;
                    Unclaimed(gone);
                }
                break;
            case DeliveryStarted s:
            {
                var attempt = _outbound.GetValueOrDefault(s.Dcid);
                if (attempt is not null) attempt.Bound = true;
                var fields = attempt is null ? new Dictionary<string, string> { [AttemptField.Note] = "the connection's details were not recorded" }
                    : new Dictionary<string, string>(attempt.Fields);
                var tls = attempt is null ? TlsOutcome.None : Classify(attempt.Fields);
                fields[AttemptField.Outcome] = tls;
                fields[AttemptField.Rids] = string.Join(",", s.Rids);
                batch.Add(new StepAdded(s.Mid, Step(s.Time, StepKind.DeliveryAttempt, s.Dcid, fields: fields)));
                foreach (var rid in s.Rids)
                    if (Admit(_inFlight, MaxInFlight, f => f.Since)) _inFlight[(s.Mid, rid)] = new InFlight(s.Dcid, tls, s.Time);
                break;
            }
            case SenderTagged t:
                batch.Add(new StepAdded(t.Mid, Step(t.Time, StepKind.SenderTagged, t.Dcid, fields: new() { ["tagged"] = t.Tagged })));
                break;
            case MessageConverted c:
                batch.Add(new StepAdded(c.Mid, Step(c.Time, StepKind.Converted, c.Dcid, fields: new() { ["reason"] = c.Reason })));
                break;

            // ---- outcomes ----
            case RecipientResponse r:
            {
                var flight = _inFlight.Remove((r.Mid, r.Rid), out var f) ? f : null;
                batch.Add(new StepAdded(r.Mid, Step(r.Time, StepKind.Delivered, flight?.Dcid, r.Rid, new() { ["reply"] = r.Response })));
                batch.Add(new RecipientChanged(r.Mid, r.Time, r.Rid, null, TrackingStatus.Delivered, flight?.Tls ?? TlsOutcome.None, r.Response, flight?.Dcid, null));
                break;
            }
            case RecipientDelayed d:
                Outcome(batch, d.Time, d.Mid, d.Rid, d.Dcid, d.Sender, d.Recipient, TrackingStatus.Deferred, StepKind.Deferred, d.Status, d.Reason, d.NextAttempt);
                break;
            case RecipientBounced b:
                Outcome(batch, b.Time, b.Mid, b.Rid, b.Dcid, b.Sender, b.Recipient, TrackingStatus.Bounced, StepKind.Bounced, b.Status, b.Reason, null);
                break;
            case MessageFinished f:
                batch.Add(new StepAdded(f.Mid, Step(f.Time, StepKind.Finished, fields: new() { ["outcome"] = f.Outcome })));
                break;
        }
    }

    private void Queued(MessageQueued q, List<TrackingWrite> batch)
    {
        if (_open.Remove(q.Mid, out var m))
        {
            if (m.Connection is { } c && c.OpenMid == m.Mid) c.OpenMid = null;
            m.Add(Step(q.Time, StepKind.Queued));
            batch.Add(Entered(m, q.Time, TrackingStatus.Queued));
            return;
        }
        if (_generated.Remove(q.Mid, out var g))
        {
            batch.Add(new MessageEntered(q.Mid, q.Time, g.Origin, TrackingStatus.Queued, "", new Dictionary<string, string>(), g.Subject, null, null, g.BounceOf, [],
                [Step(q.Time, StepKind.Generated, fields: new() { ["what"] = g.Text }), Step(q.Time, StepKind.Queued)], RecipientIsSenderOf: g.BounceOf));
            return;
        }
        // Its acceptance was not followed (events dropped): what there is.
        batch.Add(new MessageEntered(q.Mid, q.Time, MessageEntered.Unknown, TrackingStatus.Queued, "", new Dictionary<string, string>(), null, null, null, null, [],
            [Step(q.Time, StepKind.Queued)]));
    }

    private static MessageEntered Entered(OpenMessage m, DateTimeOffset time, string status)
    {
        var inbound = m.Connection?.Facts() ?? new Dictionary<string, string> { [InboundField.Icid] = m.Icid.ToString(CultureInfo.InvariantCulture) };
        var steps = new List<TrackingStep>(m.Steps.Count + 1);
        // Its facts are the message's inbound facts (stored once, with the message).
        steps.Add(Step(m.Connection?.Opened.Time ?? m.Started, StepKind.Connection));
        steps.AddRange(m.Steps);
        return new MessageEntered(m.Mid, time, MessageEntered.FromSmtp, status, m.Sender, inbound, m.Subject, m.Size, m.MessageId, null, m.Recipients, steps);
    }

    private void DomainSts(string domain, string kind, string detail, DateTimeOffset time)
    {
        if (_stsFacts.Count >= MaxDomains && !_stsFacts.ContainsKey(domain))
        {
            var stale = time - DomainFactsFor;
            foreach (var key in _stsFacts.Where(kv => kv.Value.Time < stale).Select(kv => kv.Key).ToList()) _stsFacts.Remove(key);
            if (_stsFacts.Count >= MaxDomains) { Interlocked.Increment(ref _unfollowed); return; }
        }
        _stsFacts[domain] = new DomainFact(kind, detail, time);
    }

    /// <summary>A host attempt that carried no message, kept (a few per domain, for minutes) for the deferral that follows.</summary>
    private void Unclaimed(HostAttempt attempt)
    {
        if (!_unclaimed.TryGetValue(attempt.Domain, out var list))
        {
            if (_unclaimed.Count >= MaxDomains)
            {
                var stale = attempt.Time - DomainFactsFor;
                foreach (var key in _unclaimed.Where(kv => kv.Value.Count == 0 || kv.Value[^1].Time < stale).Select(kv => kv.Key).ToList()) _unclaimed.Remove(key);
                if (_unclaimed.Count >= MaxDomains) { Interlocked.Increment(ref _unfollowed); return; }
            }
            _unclaimed[attempt.Domain] = list = [];
        }
        list.RemoveAll(a => attempt.Time - a.Time > DomainFactsFor);
        if (list.Count >= MaxHostAttemptsPerDomain) list.RemoveAt(0);
        list.Add(attempt);
    }

    private void Outcome(List<TrackingWrite> batch, DateTimeOffset time, long mid, int rid, long dcid, string sender, string recipient, string status, string kind,
        string code, string reason, DateTimeOffset? next)
    {
        var flight = _inFlight.Remove((mid, rid), out var f) ? f : null;
        var tls = flight?.Tls ?? TlsOutcome.None;
        if (dcid == 0 && flight is null)
        {
            // No connection carried it: the hosts tried for its domain just before are why (claimed by the first recipient that reports).
            var domain = SqliteTrackingStore.DomainKey(recipient);
            if (_lastClaim is { } last && last.Mid == mid && last.Domain == domain) tls = last.Tls;
            else if (_unclaimed.Remove(domain, out var attempts) && attempts.Count > 0)
            {
                var outcomes = new List<string>();
                foreach (var a in attempts.Where(a => time - a.Time <= DomainFactsFor))
                {
                    var outcome = Classify(a.Fields);
                    outcomes.Add(outcome);
                    var fields = new Dictionary<string, string>(a.Fields) { [AttemptField.Outcome] = outcome };
                    batch.Add(new StepAdded(mid, Step(a.Time, StepKind.HostAttempt, a.Dcid, fields: fields)));
                }
                tls = outcomes.Contains(TlsOutcome.Failed) ? TlsOutcome.Failed : outcomes.LastOrDefault(o => o != TlsOutcome.None) ?? TlsOutcome.None;
                _lastClaim = (mid, domain, tls);
            }
        }
        var stepFields = new Dictionary<string, string> { ["status"] = code, ["reason"] = reason, ["recipient"] = recipient };
        if (next is { } n) stepFields["next"] = TrackingTime.Iso(n);
        var effectiveDcid = flight?.Dcid ?? (dcid == 0 ? null : dcid);
        batch.Add(new StepAdded(mid, Step(time, kind, effectiveDcid, rid, stepFields)));
        batch.Add(new RecipientChanged(mid, time, rid, recipient, status, tls, $"{code} {reason}", effectiveDcid, sender));
    }

    /// <summary>What a host attempt's facts add up to, in the search's words.</summary>
    internal static string Classify(IReadOnlyDictionary<string, string> f)
    {
        string? Get(string k) => f.TryGetValue(k, out var v) ? v : null;
        if (Get(AttemptField.ConnectError) is not null) return TlsOutcome.None;
        var dane = Get(AttemptField.Dane);
        var tls = Get(AttemptField.TlsOutcome);
        if (dane is nameof(DaneResult.Failed) or nameof(DaneResult.HostUnusable) || Get(AttemptField.Sts) == "failed"
            || tls is nameof(TlsOutcomeKind.HandshakeFailed) or nameof(TlsOutcomeKind.ResponseInjection) or nameof(TlsOutcomeKind.VerifyFailed) or nameof(TlsOutcomeKind.NotPossible))
            return TlsOutcome.Failed;
        if (dane == nameof(DaneResult.Authenticated)) return TlsOutcome.Dane;
        if (Get(AttemptField.Sts) == "ok") return TlsOutcome.MtaSts;
        if (tls == nameof(TlsOutcomeKind.CertificateVerified)) return TlsOutcome.Verified;
        if (Get(AttemptField.Protocol) is not null) return TlsOutcome.Encrypted;
        return Get(AttemptField.Address) is not null && Get(AttemptField.Level) is not null ? TlsOutcome.Clear : TlsOutcome.None;
    }

    public async ValueTask DisposeAsync()
    {
        if (_daily is not null) await _daily.DisposeAsync().ConfigureAwait(false);
        _closing = true;   // events after this are not tracking's (and not drops to warn about)
        _channel.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        _store.Dispose();
    }
}

/// <summary>Names of the facts of a delivery or host attempt (the fields of those steps).</summary>
public static class AttemptField
{
    public const string Mx = "mx", Address = "address", Port = "port", Domain = "domain", Local = "local",
        Level = "tlsLevel", LevelSource = "destinationControls", DaneMode = "daneMode",
        Protocol = "tlsProtocol", Cipher = "tlsCipher", Peer = "peer", TlsOutcome = "tlsOutcome", TlsDetail = "tlsDetail", TlsRequiredFailed = "tlsRequiredFailed",
        Dane = "dane", DaneRecord = "daneRecord", DaneReason = "daneReason",
        StsMode = "stsMode", Sts = "sts", StsReason = "stsReason", StsPolicy = "stsPolicy", StsPolicyDetail = "stsPolicyDetail",
        ConnectError = "connectError", Closed = "closed", Outcome = "outcome", Rids = "rids", Note = "note";
}
