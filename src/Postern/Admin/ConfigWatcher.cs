using Postern.Inbound;
using Postern.Observability;

namespace Postern.Admin;

/// <summary>The configuration in force in a running gateway: one immutable snapshot, swapped whole.</summary>
public sealed class ConfigHolder(PosternConfig initial)
{
    private volatile PosternConfig _current = initial;
    private int _version;
    public PosternConfig Current => _current;
    /// <summary>The committed version in force (0 before the watcher has looked, or when none is committed).</summary>
    public int Version => Volatile.Read(ref _version);
    public void Swap(PosternConfig next, int version)
    {
        _current = next;
        Volatile.Write(ref _version, version);
    }
    public void Applied(int version) => Volatile.Write(ref _version, version);
}

/// <summary>
/// The running listeners, replaced whole when a commit adds, moves or removes one (readers
/// never see a list being changed). Moved and removed listeners are retired: they stop
/// accepting at once and their open sessions run to their end.
/// </summary>
public sealed class ListenerSet(Func<ListenerSettings, PosternConfig, Listener> open)
{
    /// <summary>How long a retired listener's sessions may run on before they are cut.</summary>
    public static readonly TimeSpan Drain = TimeSpan.FromMinutes(10);
    private volatile Listener[] _current = [];
    private readonly List<Task> _retiring = new();

    public IReadOnlyList<Listener> Current => _current;

    /// <summary>Binds and starts a listener (throws ConfigException when it cannot bind) and adds it.</summary>
    public Listener Open(ListenerSettings settings, PosternConfig config)
    {
        var listener = open(settings, config);
        _current = [.. _current, listener];
        return listener;
    }

    /// <summary>Binds the listener at its new address first; only then is the old one retired (a failed bind changes nothing).</summary>
    public Listener Move(Listener old, ListenerSettings settings, PosternConfig config)
    {
        var next = open(settings, config);
        _current = _current.Select(l => l == old ? next : l).ToArray();
        Retire(old);
        return next;
    }

    public void Remove(Listener old)
    {
        _current = _current.Where(l => l != old).ToArray();
        Retire(old);
    }

    private void Retire(Listener old)
    {
        lock (_retiring)
        {
            _retiring.RemoveAll(t => t.IsCompleted);
            _retiring.Add(old.RetireAsync(Drain));
        }
    }

    /// <summary>Stops everything: running listeners and the sessions of retired ones.</summary>
    public async ValueTask DisposeAsync(Func<Listener, ValueTask> dispose)
    {
        foreach (var l in _current) await dispose(l).ConfigureAwait(false);
        Task[] retiring;
        lock (_retiring) retiring = _retiring.ToArray();
        await Task.WhenAll(retiring).WaitAsync(TimeSpan.FromSeconds(15)).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
    }
}

/// <summary>
/// Applies committed versions to a running gateway within about a second: it looks at the
/// versions store, validates the new document (and the files it names), and swaps it in.
/// Deliveries already under way finish under the version they started with; sessions already
/// open keep their policy. What cannot change live (a listener's address, port, or the set
/// of listeners; the data directory; DNS, log and metrics settings) is said in a warning, never dropped silently.
/// </summary>
public sealed class ConfigWatcher : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <param name="local">This machine's configuration as started: where the store is, and (in a cluster) its machine-level settings.</param>
    public ConfigWatcher(PosternConfig local, ConfigHolder holder, ListenerSet listeners, MailEventStream events,
        Action<IReadOnlyList<OperatorHold>>? applyHolds = null, Action? everySecond = null)
    {
        var member = Cluster.Stores.MemberName(local);
        _loop = Task.Run(async () =>
        {
            using var store = Cluster.Stores.Config(local);
            var applied = store.LatestNumber();
            holder.Applied(applied);
            var holds = "";
            var first = true;
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    if (!first) await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
                    first = false;
                    // Operator holds (suspenddel, suspendlistener): state, applied as it changes.
                    var now = store.Holds().Where(h => h.AppliesTo(member)).ToList();
                    var key = string.Join(";", now.Select(h => $"{h.Kind}:{h.Target}"));
                    if (key != holds)
                    {
                        var before = holds.Split(';', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
                        var after = now.Select(h => $"{h.Kind}:{h.Target}").ToHashSet();
                        foreach (var h in now.Where(h => !before.Contains($"{h.Kind}:{h.Target}")))
                            events.Publish(new OperatorAction($"{(h.Kind == "delivery" ? "delivery" : "listener")} {(h.Target == "*" ? "to all domains" : h.Target)} suspended", h.Who));
                        foreach (var gone in before.Where(b => !after.Contains(b)))
                            events.Publish(new OperatorAction($"{gone.Replace(":", " ").Replace(" *", " to all domains")} resumed", "operator"));
                        holds = key;
                        applyHolds?.Invoke(now);
                    }
                    everySecond?.Invoke();
                    if (store.LatestNumber() <= applied || store.Latest() is not { } latest) continue;
                    applied = latest.Number;
                    Apply(latest, local, holder, listeners, events);
                }
                catch (OperationCanceledException) { break; }
                catch (Exception e)
                {
                    events.Publish(new SystemWarning($"configuration watcher: {e.Message}"));
                }
            }
        });
    }

    private static void Apply(ConfigVersion version, PosternConfig local, ConfigHolder holder, ListenerSet listeners, MailEventStream events)
    {
        PosternConfig next;
        try
        {
            next = Cluster.MachineSettings.Apply(PosternConfig.Parse(version.Document, $"configuration version {version.Number}"), local);
            var problems = ConfigPreflight.Problems(next, checkBind: false);
            if (problems.Count > 0) throw new ConfigException(string.Join("; ", problems));
        }
        catch (ConfigException e)
        {
            events.Publish(new SystemWarning($"configuration version {version.Number} NOT applied: {e.Message}"));
            return;
        }
        var current = holder.Current;
        var needsRestart = new List<string>();
        foreach (var listener in listeners.Current)
        {
            var settings = next.Listeners.FirstOrDefault(l => l.Name.Equals(listener.Settings.Name, StringComparison.OrdinalIgnoreCase));
            if (settings is null)
            {
                listeners.Remove(listener);
                events.Publish(new SystemNotice($"listener {listener.Settings.Name} removed by configuration version {version.Number}: no new connections on {listener.LocalEndPoint}; open sessions finish"));
                continue;
            }
            var moved = settings.Address != listener.Settings.Address || settings.Port != listener.Settings.Port && !(settings.Port == 0 && listener.Settings.Port == 0);
            if (!moved) { listener.Apply(settings, next); continue; }
            try
            {
                var was = listener.LocalEndPoint;
                var now = listeners.Move(listener, settings, next);
                events.Publish(new SystemNotice($"listener {settings.Name} moved from {was} to {now.LocalEndPoint} by configuration version {version.Number}; open sessions on the old address finish"));
            }
            catch (ConfigException e)
            {
                // The old address keeps serving with the new policies: never a listener lost to a typo.
                listener.Apply(listener.Settings, next);
                events.Publish(new SystemWarning($"configuration version {version.Number}: listener {settings.Name} NOT moved, it stays on {listener.LocalEndPoint}: {e.Message}"));
            }
        }
        foreach (var added in next.Listeners.Where(l => listeners.Current.All(x => !x.Settings.Name.Equals(l.Name, StringComparison.OrdinalIgnoreCase))))
        {
            try
            {
                var started = listeners.Open(added, next);
                events.Publish(new SystemNotice($"listener {added.Name} ({added.Type.ToString().ToLowerInvariant()}) on {started.LocalEndPoint}, added by configuration version {version.Number}"));
            }
            catch (ConfigException e)
            {
                events.Publish(new SystemWarning($"configuration version {version.Number}: listener {added.Name} NOT started: {e.Message}"));
            }
        }
        if (next.DataDirectory != current.DataDirectory) needsRestart.Add("dataDirectory changed");
        if (next.Dns.TimeoutSeconds != current.Dns.TimeoutSeconds || !next.Dns.Servers.SequenceEqual(current.Dns.Servers)
            || !(next.Dns.TrustedResolvers ?? []).SequenceEqual(current.Dns.TrustedResolvers ?? [])) needsRestart.Add("dns settings changed");
        if (next.LogLevel != current.LogLevel || next.MailLog.MaxFileBytes != current.MailLog.MaxFileBytes) needsRestart.Add("mail log settings changed");
        // Read once at start by the expiry watch, the verifier options, the tagger and the policy fetcher.
        // (Certificate assignments and CA lists apply live: the certificate provider follows the holder.)
        string Json(object o) => System.Text.Json.JsonSerializer.Serialize(o, PosternConfig.JsonOptions);
        if (Json(next.Certificates) != Json(current.Certificates)) needsRestart.Add("certificates settings (expiry warning) changed");
        var (n, c) = (next.DestinationControls, current.DestinationControls);
        if (n.RequireFqdnIdentities != c.RequireFqdnIdentities || n.CheckSignatureAlgorithms != c.CheckSignatureAlgorithms)
            needsRestart.Add("destinationControls verification checks (requireFqdnIdentities, checkSignatureAlgorithms) changed");
        // The web interface's certificate applies live (the next handshake); where and how it listens does not.
        if (next.Web.Enabled != current.Web.Enabled || next.Web.Address != current.Web.Address || next.Web.Port != current.Web.Port
            || next.Web.IdleTimeoutMinutes != current.Web.IdleTimeoutMinutes || next.Web.MaxFailedLogins != current.Web.MaxFailedLogins
            || next.Web.LockoutMinutes != current.Web.LockoutMinutes)
            needsRestart.Add("web interface settings (address, port, sessions, lock-out) changed");
        if (Json(next.MtaSts) != Json(current.MtaSts)) needsRestart.Add("mtaSts fetch settings changed");
        if (Json(next.Metrics) != Json(current.Metrics)) needsRestart.Add("metrics settings changed");
        if (next.BounceVerification.MaxAgeDays != current.BounceVerification.MaxAgeDays) needsRestart.Add("bounceVerification.maxAgeDays changed");
        holder.Swap(next, version.Number);
        events.Publish(new ConfigurationApplied(version.Number, version.Who, version.Comment));
        if (needsRestart.Count > 0)
            events.Publish(new SystemWarning($"configuration version {version.Number}: these changes take effect only after a restart: {string.Join("; ", needsRestart)}"));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
