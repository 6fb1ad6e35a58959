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
    public IReadOnlyList<Listener> Listeners => _listeners;
    public DeliveryAgent Delivery { get; }
    public QueueManager Queue { get; }
    public AlertService Alerts { get; }
    public CertificateProvider Certificates { get; private init; } = null!;
    public string DataDirectory { get; }
    public MailCounters Counters { get; } = new();
    public TlsOutcomeTracker TlsOutcomes { get; } = new();
    /// <summary>Message tracking (search and stories through its Store), or null when it is off.</summary>
    public MessageTracker? Tracking { get; private set; }

    private readonly List<Listener> _listeners = new();
    private CertificateExpiryWatch? _expiryWatch;
    private DnssecProbe? _dnssecProbe;
    private StsRefresher? _stsRefresher;
    private ConfigWatcher? _configWatcher;

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
        var store = new SqliteQueueStore(StorePath(data));
        var mailLog = new MailLog(Path.Combine(data, "logs"), config.MailLog, config.LogLevel);
        var events = new MailEventStream();
        mailLog.Attach(events);
        events.Publish(new SystemNotice($"Postern starting: hostname {config.Hostname}, data {data}"));
        foreach (var warning in ConfigPreflight.Warnings(config)) events.Publish(new SystemWarning(warning));
        var dns = new DnsResolver(config.Dns, events);
        // The configuration in force: committed versions are swapped in here while running.
        var holder = new ConfigHolder(config);
        var certificates = new CertificateProvider(() => holder.Current, new CertificateStore(data), data, events);
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
        var stsCache = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(data));
        var delivery = new DeliveryAgent(context, new RouteResolver(dns, config.SmtpRoutes, config.Delivery.Port) { Live = () => holder.Current }, store, own)
        {
            Sts = new StsPolicyProvider(dns, stsCache,
                new StsPolicyFetcher(dns, certificates.TrustedRoots, context.VerificationOptions, config.MtaSts), events, () => DateTimeOffset.UtcNow),
        };
        var queue = new QueueManager(config, store, delivery, events) { Live = () => holder.Current };
        var alerts = new AlertService(config, store, events, queue.Wake) { Live = () => holder.Current };
        var gateway = new Gateway(config, data, events, store, mailLog, delivery, queue, alerts) { Certificates = certificates };
        gateway.Counters.Attach(events);
        gateway.TlsOutcomes.Attach(events);
        if (config.Tracking.Enabled) gateway.Tracking = MessageTracker.TryStart(data, events, () => holder.Current.Tracking);

        try
        {
            foreach (var settings in config.Listeners)
            {
                var name = settings.Name;
                if (certificates.ForListener(name)?.IsDemo == true)
                    console?.WriteLine($"WARNING: listener {name} uses the demo certificate; assign a real certificate before production use");
                var listener = new Listener(settings, config, store, events, dns, () => certificates.ForListener(name), queue.Wake)
                {
                    BounceVerification = tagger,
                };
                gateway._listeners.Add(listener);
                own.Add(listener.LocalEndPoint);
                listener.Start();
                events.Publish(new SystemNotice($"listener {settings.Name} ({settings.Type.ToString().ToLowerInvariant()}) on {listener.LocalEndPoint}"));
                console?.WriteLine($"listener {settings.Name} ({settings.Type.ToString().ToLowerInvariant()}) on {listener.LocalEndPoint}");
            }
        }
        catch
        {
            gateway.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
        queue.Start();
        var started = DateTimeOffset.UtcNow;
        var statusFile = Path.Combine(data, "status.json");
        var tick = 0;
        gateway._configWatcher = new ConfigWatcher(data, holder, gateway._listeners, events,
            applyHolds: holds =>
            {
                delivery.SetSuspended(holds.Where(h => h.Kind == "delivery").Select(h => h.Target).ToHashSet());
                foreach (var l in gateway._listeners)
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
                    listeners = gateway._listeners.Select(l => new { name = l.Settings.Name, endpoint = l.LocalEndPoint.ToString(), sessions = l.ActiveSessions, suspended = l.Suspended }),
                    counters = gateway.Counters.Snapshot(),
                    activeConnections = delivery.ActiveConnections(),
                    lastTls = gateway.TlsOutcomes.Snapshot(),
                };
                var tmp = statusFile + ".tmp";
                File.WriteAllText(tmp, System.Text.Json.JsonSerializer.Serialize(snapshot));
                File.Move(tmp, statusFile, overwrite: true);
            });
        gateway._expiryWatch = new CertificateExpiryWatch(config, certificates, events, alerts);
        if (DnssecProbe.Wanted(config)) gateway._dnssecProbe = new DnssecProbe(config, dns, events);
        if (delivery.Sts is { } sts) gateway._stsRefresher = new StsRefresher(sts, events, () => DateTimeOffset.UtcNow);
        return gateway;
    }

    public async ValueTask DisposeAsync()
    {
        if (_expiryWatch is not null) await _expiryWatch.DisposeAsync().ConfigureAwait(false);
        if (_dnssecProbe is not null) await _dnssecProbe.DisposeAsync().ConfigureAwait(false);
        if (_stsRefresher is not null) await _stsRefresher.DisposeAsync().ConfigureAwait(false);
        if (_configWatcher is not null) await _configWatcher.DisposeAsync().ConfigureAwait(false);
        foreach (var l in _listeners) await l.DisposeAsync().ConfigureAwait(false);
        // The scheduler first: nothing new is submitted while delivery winds down.
        await Queue.DisposeAsync().ConfigureAwait(false);
        await Delivery.DisposeAsync().ConfigureAwait(false);
        await Alerts.DisposeAsync().ConfigureAwait(false);
        Certificates.Dispose();
        Delivery.Sts?.Cache.Dispose();
        await Store.DisposeAsync().ConfigureAwait(false);
        if (Tracking is not null) await Tracking.DisposeAsync().ConfigureAwait(false);   // after delivery: the last outcomes are tracked
        Events.Publish(new SystemNotice("Postern stopped"));
        await MailLog.DisposeAsync().ConfigureAwait(false);
    }
}
