using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text;
using Postern.Admin;

namespace Postern.Observability;

/// <summary>
/// The Prometheus metrics: counters kept from the one event stream, gauges read at scrape time
/// (queue, sessions, connections). Every label set is bounded: label values are enum names and
/// fixed words, never text a peer sent, except destination domains, which appear only for the
/// top N destinations by active connections (N = metrics.topDestinations), chosen per scrape.
/// </summary>
public sealed class MailMetrics
{
    /// <summary>Delivery connections followed at once (for the TLS level of their outcome); more are counted with level "unknown".</summary>
    public const int MaxOpenConnections = 10_000;
    /// <summary>Messages between "ready" and "queued" followed at once (to tell SMTP-received messages from DSNs and alerts).</summary>
    public const int MaxPendingMessages = 10_000;

    private static readonly string[] Directions = ["inbound", "outbound"];
    private static readonly string[] DaneResults = LabelsOf<DaneResult>();
    private static readonly string[] StsResults = LabelsOf<StsResult>();
    private static readonly string[] StsModes = ["enforce", "testing"];
    /// <summary>The results each MTA-STS series always shows (others appear only once counted): per host, and per policy fetch.</summary>
    private static readonly StsResult[] StsHostResults =
        [StsResult.Ok, StsResult.NotInPolicy, StsResult.StartTlsNotSupported, StsResult.CertificateHostMismatch, StsResult.ValidationFailure];
    private static readonly StsResult[] StsFetchResults = [StsResult.Ok, StsResult.PolicyFetchError, StsResult.PolicyInvalid, StsResult.WebPkiInvalid];
    private static readonly string[] InboundTlsOutcomes = ["success", "failed"];
    private static readonly string[] RptPolicyTypes = LabelsOf<Policy.TlsRptPolicyType>();
    /// <summary>TLS report session results: the RFC 8460 result types, then "success".</summary>
    private static readonly string[] RptResults = [.. LabelsOf<Policy.TlsRptResultType>(), "success"];
    private static readonly string[] RptStates = LabelsOf<TlsRptReportState>();
    private static readonly string[] HatActions = LabelsOf<PolicyAction>();
    private static readonly string[] FinishedOutcomes = ["delivered", "bounced", "partly_bounced"];

    /// <summary>TLS levels as DeliveryPolicyApplied names them (display names) → label values; "unknown" last.</summary>
    private static readonly string[] TlsLevels = [.. Enum.GetValues<TlsLevel>().Select(l => SnakeCase(l.ToString())), "unknown"];
    private static readonly Dictionary<string, int> TlsLevelIndex =
        Enum.GetValues<TlsLevel>().Select((l, i) => (Name: EffectiveDestination.LevelName(l), i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
    private static readonly int UnknownLevel = TlsLevels.Length - 1;

    /// <summary>
    /// Outbound TLS outcomes: the TlsOutcomeKind values, then what a connection without one
    /// ended with: DANE's verdict after the handshake, plain "encrypted" (the level asked for no
    /// verification and the certificate did not verify), or "none" (no TLS step was reached or the level is No).
    /// </summary>
    private static readonly string[] TlsOutcomes = [.. LabelsOf<TlsOutcomeKind>(), "dane_authenticated", "dane_encrypt_only", "dane_failed", "encrypted", "none"];
    private static readonly int TlsOutcomeKinds = Enum.GetValues<TlsOutcomeKind>().Length;
    private static readonly int DaneAuthenticated = TlsOutcomeKinds, DaneEncryptOnly = TlsOutcomeKinds + 1, DaneFailed = TlsOutcomeKinds + 2,
        Encrypted = TlsOutcomeKinds + 3, NoTls = TlsOutcomeKinds + 4;

    private long _messagesReceived, _bytesReceived, _messagesQueued, _messagesRefused;
    private long _recipientsAccepted, _recipientsRefused, _recipientsDelivered, _recipientsDeferred, _recipientsBounced;
    private long _bouncesGenerated, _connectionsRefused, _outboundConnectionFailures, _tlsRequiredFailures, _daneDomainFailures, _alertsSent;
    private readonly long[] _connections = new long[Directions.Length];
    private readonly long[] _inboundTls = new long[InboundTlsOutcomes.Length];
    private readonly long[] _hatActions = new long[HatActions.Length];
    private readonly long[] _finished = new long[FinishedOutcomes.Length];
    private readonly long[] _outboundTls = new long[TlsLevels.Length * TlsOutcomes.Length];
    private readonly long[] _dane = new long[DaneResults.Length];
    private readonly long[] _stsHosts = new long[StsResults.Length * StsModes.Length];
    private readonly long[] _stsFetches = new long[StsResults.Length];
    private readonly long[] _rptSessions = new long[RptPolicyTypes.Length * RptResults.Length];
    private readonly long[] _rptReports = new long[RptStates.Length];
    private int _configVersion;
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;

    private sealed class OutboundConnection
    {
        public int Level = UnknownLevel;
        public bool Negotiated;
        public bool Counted;
        public int StsMode;
    }

    private readonly ConcurrentDictionary<long, OutboundConnection> _open = new();
    private readonly ConcurrentDictionary<long, long> _ready = new();

    /// <summary>Subscribes; the configuration version in force at start is the newest committed one (0 when none).</summary>
    public void Attach(MailEventStream stream, PosternConfig config)
    {
        try
        {
            using var versions = Cluster.Stores.Config(config);
            _configVersion = versions.LatestNumber();
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or Npgsql.NpgsqlException or IOException or UnauthorizedAccessException or ConfigException)
        {
            _configVersion = 0;   // the watcher reports a broken versions store; metrics just say 0
        }
        stream.Subscribe(On);
    }

    /// <summary>Subscribes without reading a versions store (tests).</summary>
    public void Attach(MailEventStream stream) => stream.Subscribe(On);

    private static void Add(ref long counter) => Interlocked.Increment(ref counter);
    /// <summary>Subscribers must never throw: an index outside the fixed label set (a value added to an enum later) is not counted.</summary>
    private static void Add(long[] counters, int index)
    {
        if ((uint)index < (uint)counters.Length) Interlocked.Increment(ref counters[index]);
    }

    private void On(MailEvent e)
    {
        switch (e)
        {
            // ---- inbound ----
            case ConnectionOpened: Add(_connections, 0); break;
            case ConnectionRefused: Add(ref _connectionsRefused); break;
            case SenderGroupMatched m when Enum.TryParse<PolicyAction>(m.Action, ignoreCase: true, out var action):
                Add(_hatActions, (int)action);
                break;
            case InboundTlsNegotiated: Add(_inboundTls, 0); break;
            case InboundTlsFailed: Add(_inboundTls, 1); break;
            case RecipientAccepted: Add(ref _recipientsAccepted); break;
            case RecipientRefused or BounceVerificationFailed: Add(ref _recipientsRefused); break;
            case MessageReady r:
                // Each is followed by MessageQueued or MessageRefused; should some never be, forgetting
                // them all costs a few messages counted as queued only, rather than a map that fills up for good.
                if (_ready.Count >= MaxPendingMessages) _ready.Clear();
                _ready[r.Mid] = r.Size;
                break;
            case MessageRefused r:
                _ready.TryRemove(r.Mid, out _);
                Add(ref _messagesRefused);
                break;
            case MessageQueued q:
                Add(ref _messagesQueued);
                if (_ready.TryRemove(q.Mid, out var size))
                {
                    Add(ref _messagesReceived);
                    Interlocked.Add(ref _bytesReceived, size);
                }
                break;

            // ---- outbound ----
            case DeliveryConnectionOpened o:
                Add(_connections, 1);
                if (_open.Count < MaxOpenConnections) _open[o.Dcid] = new OutboundConnection();
                break;
            case DeliveryConnectionFailed: Add(ref _outboundConnectionFailures); break;
            case DeliveryPolicyApplied p when _open.TryGetValue(p.Dcid, out var c):
                c.Level = TlsLevelIndex.GetValueOrDefault(p.TlsLevel, UnknownLevel);
                break;
            case DeliveryTlsNegotiated n when _open.TryGetValue(n.Dcid, out var c):
                c.Negotiated = true;
                break;
            case DeliveryTlsOutcome t:
                CountTls(t.Dcid, (int)t.Kind);
                break;
            case DaneOutcome d:
                Add(_dane, (int)d.Result);
                // After a handshake, DANE's verdict is the connection's TLS outcome (no DeliveryTlsOutcome follows).
                if (d.Dcid != 0 && _open.TryGetValue(d.Dcid, out var dc) && dc.Negotiated)
                {
                    var outcome = d.Result switch { DaneResult.Authenticated => DaneAuthenticated, DaneResult.EncryptOnly => DaneEncryptOnly, DaneResult.Failed => DaneFailed, _ => -1 };
                    if (outcome >= 0) CountTls(d.Dcid, outcome);
                }
                break;
            case DaneFailedForDomain: Add(ref _daneDomainFailures); break;
            case TlsRequiredFailed: Add(ref _tlsRequiredFailures); break;
            case DeliveryConnectionClosed x when _open.TryRemove(x.Dcid, out var c):
                if (!c.Counted) Add(_outboundTls, c.Level * TlsOutcomes.Length + (c.Negotiated ? Encrypted : NoTls));
                break;
            case RecipientResponse: Add(ref _recipientsDelivered); break;
            case RecipientDelayed: Add(ref _recipientsDeferred); break;
            case RecipientBounced: Add(ref _recipientsBounced); break;
            case BounceGenerated: Add(ref _bouncesGenerated); break;
            case AlertSent: Add(ref _alertsSent); break;
            case MessageFinished f:
                Add(_finished, f.Outcome == "done" ? 0 : f.Outcome == "bounced" ? 1 : 2);
                break;

            // ---- MTA-STS ----
            case StsApplying a when _open.TryGetValue(a.Dcid, out var c):
                c.StsMode = a.Mode == "testing" ? 1 : 0;
                break;
            case StsSuccessful s:
                Add(_stsHosts, (int)StsResult.Ok * StsModes.Length + (_open.TryGetValue(s.Dcid, out var sc) ? sc.StsMode : 0));
                break;
            case StsHostFailed h:
                Add(_stsHosts, (int)h.Result * StsModes.Length + (h.Testing ? 1 : 0));
                break;
            case StsPolicyFetched: Add(_stsFetches, (int)StsResult.Ok); break;
            case StsFetchFailed f: Add(_stsFetches, (int)f.Result); break;
            case TlsSessionReported r:
                Add(_rptSessions, (int)r.Policy.Type * RptResults.Length + (r.Failure is { } failure ? (int)failure : RptResults.Length - 1));
                break;
            case TlsReportSent: Add(_rptReports, (int)TlsRptReportState.Sent); break;
            case TlsReportNotSent n: Add(_rptReports, (int)n.State); break;

            // ---- system ----
            case ConfigurationApplied v: Volatile.Write(ref _configVersion, v.Version); break;
        }
    }

    /// <summary>Counts a connection's TLS outcome once (the first decisive event); connections not followed count as level "unknown".</summary>
    private void CountTls(long dcid, int outcome)
    {
        var level = UnknownLevel;
        if (_open.TryGetValue(dcid, out var c))
        {
            if (c.Counted) return;
            c.Counted = true;
            level = c.Level;
        }
        Add(_outboundTls, level * TlsOutcomes.Length + outcome);
    }

    /// <summary>What is read at scrape time rather than counted from events.</summary>
    public sealed record Gauges(
        (int Messages, int Recipients, DateTimeOffset? Oldest)? Queue,
        IReadOnlyDictionary<string, int> ActiveConnections,
        IReadOnlyList<(string Listener, int Sessions)> InboundSessions,
        int TopDestinations,
        DateTimeOffset Now);

    /// <summary>Reads the gauges of a running gateway and renders everything.</summary>
    public async Task<string> ScrapeAsync(Gateway gateway, CancellationToken ct)
    {
        (int, int, DateTimeOffset?)? queue = null;
        try { queue = await gateway.Store.StatsAsync().WaitAsync(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false); }
        catch (Exception) when (!ct.IsCancellationRequested) { }   // the queue series say so (postern_queue_stats_up 0)
        return Render(new Gauges(queue, gateway.Delivery.ActiveConnections(),
            gateway.Listeners.Select(l => (l.Settings.Name, l.ActiveSessions)).ToList(),
            gateway.Config.Metrics.TopDestinations, DateTimeOffset.UtcNow));
    }

    private static readonly string Version =
        typeof(MailMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    public string Render(Gauges gauges)
    {
        var w = new PrometheusTextWriter();
        w.Gauge("postern_build_info", "Postern build; the value is always 1.");
        w.Sample(1, ("version", Version));
        w.Gauge("postern_uptime_seconds", "Seconds since the gateway started.");
        w.Sample(Math.Round((gauges.Now - _started).TotalSeconds, 3));
        w.Gauge("postern_config_version", "The committed configuration version in force (0: none committed, the file or embedded default).");
        w.Sample(Volatile.Read(ref _configVersion));

        // inbound
        Counter(w, "postern_connections_total", "SMTP connections opened, by direction (inbound: accepted by a listener; outbound: delivery connections).", "direction", Directions, _connections);
        Counter(w, "postern_connections_refused_total", "Inbound connections turned away with 421 before the HAT (listener suspended or at its connection limit); not in postern_connections_total.", ref _connectionsRefused);
        Counter(w, "postern_hat_decisions_total", "Inbound connections by the action of the mail flow policy the Host Access Table chose.", "action", HatActions, _hatActions);
        Counter(w, "postern_inbound_tls_total", "Inbound STARTTLS handshakes, by outcome.", "outcome", InboundTlsOutcomes, _inboundTls);
        Counter(w, "postern_messages_received_total", "Messages received over SMTP and committed to the queue (250 sent).", ref _messagesReceived);
        Counter(w, "postern_received_bytes_total", "Bytes of the messages counted in postern_messages_received_total (with Postern's Received: header).", ref _bytesReceived);
        Counter(w, "postern_messages_queued_total", "Messages committed to the queue: received ones, DSNs and alerts.", ref _messagesQueued);
        Counter(w, "postern_messages_refused_total", "Messages refused after DATA (size, loops, queue write errors, ...).", ref _messagesRefused);
        Counter(w, "postern_recipients_accepted_total", "Recipients accepted at RCPT.", ref _recipientsAccepted);
        Counter(w, "postern_recipients_refused_total", "Recipients refused at RCPT (RAT, valid-recipient lists, bounce verification).", ref _recipientsRefused);
        w.Gauge("postern_inbound_sessions", "Inbound SMTP sessions open now, per listener.");
        foreach (var (listener, sessions) in gauges.InboundSessions) w.Sample(sessions, ("listener", listener));

        // outbound
        Counter(w, "postern_recipients_delivered_total", "Recipients accepted by the next hop.", ref _recipientsDelivered);
        Counter(w, "postern_recipients_deferred_total", "Delivery attempts that left a recipient deferred (to be retried).", ref _recipientsDeferred);
        Counter(w, "postern_recipients_bounced_total", "Recipients failed permanently (refused by the next hop, or expired in the queue).", ref _recipientsBounced);
        Counter(w, "postern_messages_finished_total", "Messages whose every recipient is final, by outcome.", "outcome", FinishedOutcomes, _finished);
        Counter(w, "postern_bounces_generated_total", "DSNs (bounce messages) generated.", ref _bouncesGenerated);
        Counter(w, "postern_alerts_sent_total", "Alert messages queued to the alert recipients.", ref _alertsSent);
        Counter(w, "postern_outbound_connection_failures_total", "Delivery connections that could not be opened (refused, timed out, unreachable).", ref _outboundConnectionFailures);
        w.Counter("postern_outbound_tls_total", "Delivery connections by destination TLS level and TLS outcome (one per connection; only combinations seen).");
        for (var level = 0; level < TlsLevels.Length; level++)
            for (var outcome = 0; outcome < TlsOutcomes.Length; outcome++)
                if (Volatile.Read(ref _outboundTls[level * TlsOutcomes.Length + outcome]) is var n and > 0)
                    w.Sample(n, ("level", TlsLevels[level]), ("outcome", TlsOutcomes[outcome]));
        Counter(w, "postern_tls_required_failures_total", "Delivery connections where the level (or DANE) required TLS and it could not be had.", ref _tlsRequiredFailures);
        Counter(w, "postern_dane_outcomes_total", "DANE decisions per MX host, by result.", "result", DaneResults, _dane);
        Counter(w, "postern_dane_domain_failures_total", "Destinations whose every MX host failed DANE.", ref _daneDomainFailures);
        w.Counter("postern_mta_sts_outcomes_total", "MTA-STS checks per MX host, by result (RFC 8460 result types) and policy mode.");
        for (var result = 0; result < StsResults.Length; result++)
            for (var mode = 0; mode < StsModes.Length; mode++)
                if (Volatile.Read(ref _stsHosts[result * StsModes.Length + mode]) is var n && (n > 0 || StsHostResults.Contains((StsResult)result)))
                    w.Sample(n, ("result", StsResults[result]), ("mode", StsModes[mode]));
        w.Counter("postern_mta_sts_policy_fetches_total", "MTA-STS policy fetches (HTTPS), by result.");
        for (var result = 0; result < StsResults.Length; result++)
            if (Volatile.Read(ref _stsFetches[result]) is var n && (n > 0 || StsFetchResults.Contains((StsResult)result)))
                w.Sample(n, ("result", StsResults[result]));

        w.Counter("postern_tls_report_sessions_total", "Outbound TLS sessions counted for TLS reports (RFC 8460), by policy type and result type (only combinations seen).");
        for (var type = 0; type < RptPolicyTypes.Length; type++)
            for (var result = 0; result < RptResults.Length; result++)
                if (Volatile.Read(ref _rptSessions[type * RptResults.Length + result]) is var n and > 0)
                    w.Sample(n, ("policy_type", RptPolicyTypes[type]), ("result", RptResults[result]));
        Counter(w, "postern_tls_reports_total", "Daily TLS reports handled, by state (sent, not_requested, retry, failed, too_large).", "state", RptStates, _rptReports);

        var active = gauges.ActiveConnections;
        w.Gauge("postern_outbound_active_connections", "Delivery connections open now, all destinations.");
        w.Sample(active.Values.Sum());
        w.Gauge("postern_destination_active_connections", "Delivery connections open now, for the destinations with the most (metrics.topDestinations).");
        foreach (var (domain, count) in active.OrderByDescending(d => d.Value).ThenBy(d => d.Key, StringComparer.Ordinal).Take(gauges.TopDestinations))
            w.Sample(count, ("domain", domain));

        // queue
        w.Gauge("postern_queue_stats_up", "1 when the queue gauges below were read from the store at this scrape, 0 when the store did not answer.");
        w.Sample(gauges.Queue is null ? 0 : 1);
        if (gauges.Queue is var (messages, recipients, oldest))
        {
            w.Gauge("postern_queue_messages", "Messages in the queue.");
            w.Sample(messages);
            w.Gauge("postern_queue_recipients", "Recipients in the queue still to be delivered (pending).");
            w.Sample(recipients);
            w.Gauge("postern_queue_oldest_message_age_seconds", "Age of the oldest message in the queue (0 when empty).");
            w.Sample(oldest is { } o ? Math.Max(0, Math.Round((gauges.Now - o).TotalSeconds, 3)) : 0);
        }
        return w.ToString();
    }

    private static void Counter(PrometheusTextWriter w, string name, string help, ref long value)
    {
        w.Counter(name, help);
        w.Sample(Volatile.Read(ref value));
    }

    private static void Counter(PrometheusTextWriter w, string name, string help, string label, string[] values, long[] counts)
    {
        w.Counter(name, help);
        for (var i = 0; i < values.Length; i++) w.Sample(Volatile.Read(ref counts[i]), (label, values[i]));
    }

    private static string[] LabelsOf<T>() where T : struct, Enum => [.. Enum.GetValues<T>().Select(v => SnakeCase(v.ToString()))];

    /// <summary>"WebPkiInvalid" → "web_pki_invalid".</summary>
    internal static string SnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var ch = name[i];
            if (char.IsUpper(ch) && i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]))) sb.Append('_');
            sb.Append(char.ToLowerInvariant(ch));
        }
        return sb.ToString();
    }
}

/// <summary>
/// Writes the Prometheus text exposition format 0.0.4: one "# HELP" and "# TYPE" line per
/// family, then its samples, "\n" line ends. Names are checked (they are ours; a bad one is a
/// bug), label values and help text are escaped as the format says.
/// </summary>
public sealed class PrometheusTextWriter
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly StringBuilder _text = new();
    private readonly HashSet<string> _families = new(StringComparer.Ordinal);
    private string? _family;

    public void Counter(string name, string help)
    {
        // The convention the format's consumers rely on: a counter's name says it.
        if (!name.EndsWith("_total", StringComparison.Ordinal)) throw new ArgumentException($"counter {name} must end in _total", nameof(name));
        Family(name, "counter", help);
    }

    public void Gauge(string name, string help) => Family(name, "gauge", help);

    private void Family(string name, string type, string help)
    {
        if (!IsMetricName(name)) throw new ArgumentException($"'{name}' is not a metric name", nameof(name));
        if (!_families.Add(name)) throw new InvalidOperationException($"metric {name} written twice (a family's samples must be together)");
        _family = name;
        _text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(help)).Append('\n');
        _text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    public void Sample(long value, params ReadOnlySpan<(string Name, string Value)> labels) =>
        Sample(value.ToString(CultureInfo.InvariantCulture), labels);

    public void Sample(double value, params ReadOnlySpan<(string Name, string Value)> labels) => Sample(FormatValue(value), labels);

    private void Sample(string value, ReadOnlySpan<(string Name, string Value)> labels)
    {
        var family = _family ?? throw new InvalidOperationException("a sample needs its family (Counter or Gauge) first");
        _text.Append(family);
        if (labels.Length > 0)
        {
            _text.Append('{');
            for (var i = 0; i < labels.Length; i++)
            {
                var (name, labelValue) = labels[i];
                if (!IsLabelName(name)) throw new ArgumentException($"'{name}' is not a label name", nameof(labels));
                if (i > 0) _text.Append(',');
                _text.Append(name).Append("=\"").Append(EscapeLabelValue(labelValue)).Append('"');
            }
            _text.Append('}');
        }
        _text.Append(' ').Append(value).Append('\n');
    }

    public override string ToString() => _text.ToString();

    /// <summary>Label values: backslash, double quote and line feed escaped (\\, \", \n); everything else as is (UTF-8).</summary>
    public static string EscapeLabelValue(string value)
    {
        if (value.AsSpan().IndexOfAny('\\', '"', '\n') < 0) return value;
        return value.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);
    }

    /// <summary>HELP text: backslash and line feed escaped (a double quote stays).</summary>
    public static string EscapeHelp(string text) =>
        text.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);

    /// <summary>Go's ParseFloat spellings: NaN, +Inf, -Inf, else the shortest round-trip form.</summary>
    public static string FormatValue(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf"
        : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>[a-zA-Z_:][a-zA-Z0-9_:]*</summary>
    public static bool IsMetricName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':');

    /// <summary>[a-zA-Z_][a-zA-Z0-9_]*, and not the reserved "__" prefix.</summary>
    public static bool IsLabelName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && !name.StartsWith("__", StringComparison.Ordinal) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
