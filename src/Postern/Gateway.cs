using Postern.Admin;
using Postern.Dns;
using Postern.Inbound;
using Postern.Observability;
using Postern.Outbound;
using Postern.Queue;
using Postern.Security;

namespace Postern;

/// <summary>
/// The running gateway: inbound listeners → durable queue → outbound delivery, with the
/// event stream feeding the mail log. Used by `postern serve` and by in-process tests.
/// </summary>
public sealed class Gateway : IAsyncDisposable
{
    public PosternConfig Config { get; }
    public MailEventStream Events { get; }
    public IQueueStore Store { get; }
    public MailLog MailLog { get; }
    public IReadOnlyList<Listener> Listeners => _listeners?.Current ?? [];
    public DeliveryAgent Delivery { get; }
    public QueueManager Queue { get; }
    public AlertService Alerts { get; }
    public CertificateProvider Certificates { get; private init; } = null!;
    public string DataDirectory { get; }
    public MailCounters Counters { get; } = new();
    public TlsOutcomeTracker TlsOutcomes { get; } = new();
    /// <summary>The last day's traffic per hour (the web overview's charts).</summary>
    public TrafficHistory Traffic { get; } = new(() => DateTimeOffset.UtcNow);
    /// <summary>The HTTPS administration interface, when enabled.</summary>
    public Web.WebServer? Web { get; private set; }
    public MailMetrics Metrics { get; } = new();
    /// <summary>The Prometheus endpoint; null when metrics are off.</summary>
    public MetricsEndpoint? MetricsEndpoint { get; private set; }
    /// <summary>Message tracking (search and stories through its Store), or null when it is off.</summary>
    public MessageTracker? Tracking { get; private set; }
    /// <summary>TLS reporting (RFC 8460): session counts from the event stream, and the daily reports made from them.</summary>
    public TlsRptCollector TlsSessions { get; private init; } = null!;
    public TlsRptReporter TlsReports { get; private init; } = null!;
    /// <summary>TLS reports received from other organisations (the report mailbox and POST /tlsrpt store them here).</summary>
    public TlsRptIntake ReceivedTlsReports { get; private init; } = null!;

    private ListenerSet? _listeners;
    private CertificateExpiryWatch? _expiryWatch;
    private DnssecProbe? _dnssecProbe;
    private StsRefresher? _stsRefresher;
    private ConfigWatcher? _configWatcher;
    private Cluster.ClusterMembership? _membership;

    private Gateway(PosternConfig config, string dataDirectory, MailEventStream events, IQueueStore store, MailLog mailLog, DeliveryAgent delivery, QueueManager queue, AlertService alerts)
    {
        Alerts = alerts;
        Config = config;
        Events = events;
        DataDirectory = dataDirectory;
        Store = store;
        MailLog = mailLog;
        Delivery = delivery;
        Queue = queue;
    }

    public static string StorePath(string dataDirectory) => Path.Combine(dataDirectory, "queue", "queue.db");

    public static Gateway Start(PosternConfig config, TextWriter? console = null)
    {
        var data = Path.GetFullPath(config.DataDirectory);
        Directory.CreateDirectory(data);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var store = Cluster.Stores.Queue(config);
        var mailLog = new MailLog(Path.Combine(data, "logs"), config.MailLog, config.LogLevel);
        var events = new MailEventStream();
        mailLog.Attach(events);
        events.Publish(new SystemNotice($"Postern starting: hostname {config.Hostname}, data {data}"));
        foreach (var warning in ConfigPreflight.Warnings(config)) events.Publish(new SystemWarning(warning));
        var dns = new DnsResolver(config.Dns, events);
        // The configuration in force: committed versions are swapped in here while running.
        var holder = new ConfigHolder(config);
        var certificates = new CertificateProvider(() => holder.Current, CertificateStore.Open(config), data, events);
        var dc = config.DestinationControls;
        // Made whether or not the first version uses them, so a later version can switch them on.
        var tagger = BounceTagger.LoadOrCreate(data, config.BounceVerification.MaxAgeDays);
        var context = new OutboundContext(config, events, certificates.TrustedRoots, certificates.OutboundClientCertificate,
            new Policy.VerificationOptions(dc.RequireFqdnIdentities, dc.CheckSignatureAlgorithms), () => DateTimeOffset.UtcNow)
        {
            BounceTagger = tagger,
            Live = () => holder.Current,
        };
        var own = new OwnEndpoints();
        var stsCache = Cluster.Stores.StsCache(config);
        // A cluster member: its limits, throttle and membership live in the shared database too.
        var shared = store as Cluster.PostgresQueueStore;
        var slots = shared is null ? null : new Cluster.PostgresConnectionSlots(shared.Database, shared.Member, TimeSpan.FromSeconds(config.Cluster!.LeaseSeconds));
        var delivery = new DeliveryAgent(context, new RouteResolver(dns, config.SmtpRoutes, config.Delivery.Port) { Live = () => holder.Current }, store, own)
        {
            Slots = slots,
            Rate = shared is null ? null : new Cluster.PostgresRecipientRate(shared.Database, shared.Member),
            Sts = new StsPolicyProvider(dns, stsCache,
                new StsPolicyFetcher(dns, certificates.TrustedRoots, context.VerificationOptions, config.MtaSts), events, () => DateTimeOffset.UtcNow),
        };
        // ---- TLS reports received (RFC 8460): one inbox store; the report mailbox (QueueManager)
        // and POST /tlsrpt (WebServer) hand it what arrives. Settings that cannot work are said now.
        var tlsReports = new TlsRptIntake(Cluster.Stores.TlsRptInbox(config), events, () => DateTimeOffset.UtcNow);
        // ---- end of TLS reports received
        var queue = new QueueManager(config, store, delivery, events)
        {
            Live = () => holder.Current, Member = Cluster.Stores.MemberName(config), Paused = () => delivery.AllSuspended, TlsReports = tlsReports,
        };
        var alerts = new AlertService(config, store, events, queue.Wake)
        {
            Live = () => holder.Current,
            Throttle = shared is null ? new MemoryAlertThrottle() : new Cluster.PostgresAlertThrottle(shared.Database),
        };
        var tlsRptStore = Cluster.Stores.TlsRpt(config);
        var gateway = new Gateway(config, data, events, store, mailLog, delivery, queue, alerts)
        {
            Certificates = certificates,
            TlsSessions = new TlsRptCollector(tlsRptStore, events),
            TlsReports = new TlsRptReporter(() => holder.Current, tlsRptStore, store, dns, events, queue.Wake, certificates.TrustedRoots,
                context.VerificationOptions, () => DateTimeOffset.UtcNow, Cluster.Stores.MemberName(config)),
            ReceivedTlsReports = tlsReports,
        };
        gateway.Counters.Attach(events);
        gateway.TlsOutcomes.Attach(events);
        gateway.Traffic.Attach(events);
        gateway.Metrics.Attach(events, config);
        if (config.Tracking.Enabled) gateway.Tracking = MessageTracker.TryStart(config, data, events, () => holder.Current.Tracking);

        try
        {
            // Opens one listener; used at start and when a commit adds or moves one.
            Listener Open(ListenerSettings settings, PosternConfig current)
            {
                var name = settings.Name;
                var listener = new Listener(settings, current, store, events, dns, () => certificates.ForListener(name), queue.Wake)
                {
                    BounceVerification = tagger,
                };
                own.Add(listener.LocalEndPoint);
                listener.Start();
                return listener;
            }
            gateway._listeners = new ListenerSet(Open);
            foreach (var settings in config.Listeners)
            {
                if (certificates.ForListener(settings.Name)?.IsDemo == true)
                    console?.WriteLine($"WARNING: listener {settings.Name} uses the demo certificate; assign a real certificate before production use");
                var listener = gateway._listeners.Open(settings, config);
                events.Publish(new SystemNotice($"listener {settings.Name} ({settings.Type.ToString().ToLowerInvariant()}) on {listener.LocalEndPoint}"));
                console?.WriteLine($"listener {settings.Name} ({settings.Type.ToString().ToLowerInvariant()}) on {listener.LocalEndPoint}");
            }
            if (config.Metrics.Enabled)
            {
                var metrics = gateway.MetricsEndpoint = MetricsEndpoint.Start(config.Metrics, ct => gateway.Metrics.ScrapeAsync(gateway, ct));
                events.Publish(new SystemNotice($"metrics on http://{metrics.LocalEndPoint}/metrics"));
                console?.WriteLine($"metrics on http://{metrics.LocalEndPoint}/metrics");
            }
        }
        catch
        {
            gateway.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
        if (shared is not null)
        {
            try
            {
                gateway._membership = Cluster.ClusterMembership.Start(shared, slots!, queue.InFlight, config.Hostname, gateway.Counters,
                    () => gateway.Listeners.Select(l => $"{l.Settings.Name} {l.LocalEndPoint}").ToList(),
                    () => holder.Version, events, TimeSpan.FromSeconds(config.Cluster!.LeaseSeconds));
            }
            catch
            {
                gateway.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw;
            }
        }
        queue.Start();
        var started = DateTimeOffset.UtcNow;
        var statusFile = Path.Combine(data, "status.json");
        var tick = 0;
        gateway._configWatcher = new ConfigWatcher(config, holder, gateway._listeners!, events,
            applyHolds: holds =>
            {
                delivery.SetSuspended(holds.Where(h => h.Kind == "delivery").Select(h => h.Target).ToHashSet());
                foreach (var l in gateway.Listeners)
                    l.Suspended = holds.Any(h => h.Kind == "listener" && h.Target.Equals(l.Settings.Name, StringComparison.OrdinalIgnoreCase));
                queue.Wake();
            },
            everySecond: () =>
            {
                // What `postern status` shows of a running gateway, written every 2 s.
                if (tick++ % 2 != 0) return;
                var snapshot = new
                {
                    pid = Environment.ProcessId, started, written = DateTimeOffset.UtcNow, version = config.Version,
                    listeners = gateway.Listeners.Select(l => new { name = l.Settings.Name, endpoint = l.LocalEndPoint.ToString(), sessions = l.ActiveSessions, suspended = l.Suspended }),
                    counters = gateway.Counters.Snapshot(),
                    activeConnections = delivery.ActiveConnections(),
                    lastTls = gateway.TlsOutcomes.Snapshot(),
                };
                var tmp = statusFile + ".tmp";
                File.WriteAllText(tmp, System.Text.Json.JsonSerializer.Serialize(snapshot));
                File.Move(tmp, statusFile, overwrite: true);
            });
        if (config.Web.Enabled)
        {
            try
            {
                gateway.Web = Postern.Web.WebServer.StartAsync(data, config, () => holder.Current, events, gateway.Counters, gateway.Traffic, store, certificates, console, tlsReports, gateway.TlsReports.Store)
                    .GetAwaiter().GetResult();
                console?.WriteLine($"web interface on https://{gateway.Web.Endpoint}/");
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                gateway.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw new ConfigException($"web interface on {config.Web.Address}:{config.Web.Port}: {e.Message}");
            }
        }
        gateway._expiryWatch = new CertificateExpiryWatch(config, certificates, events, alerts);
        if (DnssecProbe.Wanted(config)) gateway._dnssecProbe = new DnssecProbe(config, dns, events);
        if (delivery.Sts is { } sts) gateway._stsRefresher = new StsRefresher(sts, events, () => DateTimeOffset.UtcNow);
        return gateway;
    }

    public async ValueTask DisposeAsync()
    {
        if (Web is not null) await Web.DisposeAsync().ConfigureAwait(false);
        if (MetricsEndpoint is not null) await MetricsEndpoint.DisposeAsync().ConfigureAwait(false);
        if (_expiryWatch is not null) await _expiryWatch.DisposeAsync().ConfigureAwait(false);
        if (_dnssecProbe is not null) await _dnssecProbe.DisposeAsync().ConfigureAwait(false);
        if (_stsRefresher is not null) await _stsRefresher.DisposeAsync().ConfigureAwait(false);
        if (_configWatcher is not null) await _configWatcher.DisposeAsync().ConfigureAwait(false);
        // Stopped cleanly: nothing is running here any more (status and store migrate rely on it).
        try { File.Delete(Path.Combine(DataDirectory, "status.json")); } catch (IOException) { }
        if (_listeners is not null) await _listeners.DisposeAsync(l => l.DisposeAsync()).ConfigureAwait(false);
        // The scheduler first: nothing new is submitted while delivery winds down.
        await Queue.DisposeAsync().ConfigureAwait(false);
        await Delivery.DisposeAsync().ConfigureAwait(false);
        await Alerts.DisposeAsync().ConfigureAwait(false);
        await TlsReports.DisposeAsync().ConfigureAwait(false);
        await TlsSessions.DisposeAsync().ConfigureAwait(false);   // after delivery: its last sessions are counted
        TlsReports.Store.Dispose();
        // After delivery: the last outcomes are recorded while the member still renews its claims.
        if (_membership is not null) await _membership.DisposeAsync().ConfigureAwait(false);
        Certificates.Dispose();
        Delivery.Sts?.Cache.Dispose();
        ReceivedTlsReports.Inbox.Dispose();   // after the scheduler and the web server: nothing stores into it any more
        await Store.DisposeAsync().ConfigureAwait(false);
        if (Tracking is not null) await Tracking.DisposeAsync().ConfigureAwait(false);   // after delivery: the last outcomes are tracked
        Events.Publish(new SystemNotice("Postern stopped"));
        await MailLog.DisposeAsync().ConfigureAwait(false);
    }
}
