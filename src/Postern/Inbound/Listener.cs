using System.Net;
using System.Net.Sockets;
using Postern.Admin;
using Postern.Dns;
using Postern.Observability;
using Postern.Queue;
using Postern.Security;

namespace Postern.Inbound;

/// <summary>The HAT's verdict for one connecting host.</summary>
public sealed record HatDecision(string Group, string PolicyName, MailFlowPolicy Policy, string? MatchedBy);

public enum RatVerdict { Accept, NotOurDomain, UnknownRecipient }

/// <summary>
/// Recipient Access Table: which domains public listeners accept mail for and, where an
/// entry lists them, which recipients exist.
/// </summary>
public sealed class RecipientAccessTable
{
    private readonly IReadOnlyList<(RatEntry Entry, HashSet<string>? Valid)> _entries;

    public RecipientAccessTable(IReadOnlyList<RatEntry> entries)
    {
        _entries = entries.Select(e => (e, e.ValidRecipientsFile is { } f ? LoadRecipients(f) : null)).ToList();
        PostmasterDomain = entries.FirstOrDefault(e => e.Action == RatAction.Accept && !e.Domain.StartsWith('.'))?.Domain;
    }

    /// <summary>The first exact domain the table accepts: where "&lt;postmaster&gt;" goes.</summary>
    public string? PostmasterDomain { get; }

    public bool Accepts(string domain) => Check(domain, null) != RatVerdict.NotOurDomain;

    /// <summary>The verdict for a recipient (address null: the domain alone). Postmaster always exists (RFC 5321 §4.5.1).</summary>
    public RatVerdict Check(string domain, string? address)
    {
        foreach (var (e, valid) in _entries)
        {
            if (!DomainNames.MatchesPattern(domain, e.Domain)) continue;
            if (e.Action != RatAction.Accept) return RatVerdict.NotOurDomain;
            if (address is null || valid is null || valid.Contains(address)) return RatVerdict.Accept;
            var local = address[..address.LastIndexOf('@')];
            return local.Equals("postmaster", StringComparison.OrdinalIgnoreCase) ? RatVerdict.Accept : RatVerdict.UnknownRecipient;
        }
        return RatVerdict.NotOurDomain;
    }

    private static HashSet<string> LoadRecipients(string file)
    {
        string[] lines;
        try { lines = File.ReadAllLines(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"valid recipients file {file} cannot be read: {e.Message}");
        }
        var set = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (!SmtpSyntax.IsValidMailbox(line)) throw new ConfigException($"valid recipients file {file}: '{line}' is not a mail address");
            set.Add(line);
        }
        return set;
    }
}

/// <summary>One SMTP listener: a bound socket, its Host Access Table and its sessions.</summary>
public sealed class Listener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly IDnsResolver _dns;
    private readonly CancellationTokenSource _stop = new();
    /// <summary>Stops accepting only (retirement); <see cref="_stop"/> also ends the sessions.</summary>
    private readonly CancellationTokenSource _stopAccepting = new();
    private Task? _acceptLoop;
    private int _active;
    private int _stressed;
    private readonly HashSet<Task> _sessions = new();
    /// <summary>Each session's stress hook, so that stress can shorten the command waits already running.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, Action<TimeSpan>> _deadlines = new();

    /// <summary>
    /// At four fifths of maxConcurrency the listener is under stress: idle or slow clients
    /// (and clients that do not read) get the short stress timeout instead of the policy's,
    /// so they cannot hold every slot for minutes while others get 421.
    /// </summary>
    public bool UnderStress => Volatile.Read(ref _stressed) == 1;

    internal void Track(long icid, Action<TimeSpan> onStress) => _deadlines[icid] = onStress;

    internal void Untrack(long icid) => _deadlines.TryRemove(icid, out _);

    private void ShortenDeadline(Action<TimeSpan> onStress)
    {
        try { onStress(TimeSpan.FromSeconds(Settings.StressCommandTimeoutSeconds)); }
        catch (ObjectDisposedException) { /* that session has just ended */ }
    }

    private readonly Lock _stressGate = new();

    private void UpdateStress()
    {
        int active, stressed;
        lock (_stressGate)
        {
            // Decided from the count as it is now, so racing arrivals and departures settle right.
            active = Volatile.Read(ref _active);
            stressed = active * 5 >= Settings.MaxConcurrency * 4 ? 1 : 0;
            if (Interlocked.Exchange(ref _stressed, stressed) == stressed) return;
        }
        if (stressed == 1)
        {
            Events.Publish(new SystemWarning($"listener {Settings.Name} under stress: {active} of {Settings.MaxConcurrency} sessions; command timeout cut to {Settings.StressCommandTimeoutSeconds} s"));
            foreach (var deadline in _deadlines.Values) ShortenDeadline(deadline);
        }
        else Events.Publish(new SystemNotice($"listener {Settings.Name} no longer under stress: {active} of {Settings.MaxConcurrency} sessions"));
    }

    /// <summary>What a new session sees; swapped whole when a committed version is applied (sessions keep theirs).</summary>
    private sealed record State(ListenerSettings Settings, PosternConfig Config, RecipientAccessTable Rat,
        List<(SenderGroup Group, List<SenderPattern> Patterns)> Groups, bool NeedsHostNames);
    private volatile State _state;

    public ListenerSettings Settings => _state.Settings;
    public PosternConfig Config => _state.Config;
    public IQueueStore Store { get; }
    public MailEventStream Events { get; }
    public RecipientAccessTable Rat => _state.Rat;
    private readonly Func<ServerCertificate?> _certificate;
    /// <summary>The certificate for the next STARTTLS (assignments change without a restart).</summary>
    public ServerCertificate? Certificate => _certificate();
    public Action QueueWakeup { get; }
    /// <summary>Set when some destination tags senders: bounces (null sender) must come back to a valid tag.</summary>
    public Security.BounceTagger? BounceVerification { get; init; }
    /// <summary>Where it was bound (kept after retirement, for the log lines that say where it was).</summary>
    public IPEndPoint LocalEndPoint { get; }
    /// <summary>Suspended by an operator: every new connection gets 421 and is closed; sessions already open go on.</summary>
    public bool Suspended { get; set; }
    public int ActiveSessions => Volatile.Read(ref _active);

    public Listener(ListenerSettings settings, PosternConfig config, IQueueStore store, MailEventStream events,
        IDnsResolver dns, Func<ServerCertificate?> certificate, Action queueWakeup)
    {
        Store = store;
        Events = events;
        _dns = dns;
        _certificate = certificate;
        QueueWakeup = queueWakeup;
        _state = Build(settings, config);
        _socket = Bind(settings);
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    private static State Build(ListenerSettings settings, PosternConfig config)
    {
        var groups = settings.SenderGroups
            .Select(g => (g, g.Senders.Select(s => { SenderPattern.TryParse(s, out var p); return p; }).ToList()))
            .ToList();
        return new State(settings, config, new RecipientAccessTable(config.RecipientAccessTable), groups!, groups.Any(g => g.Item2.Any(p => p!.NeedsHostName)));
    }

    /// <summary>
    /// A committed version for this listener (same address and port): HAT, policies, RAT and
    /// limits apply to the next session; sessions already open keep what they started with.
    /// </summary>
    public void Apply(ListenerSettings settings, PosternConfig config) => _state = Build(settings, config);

    /// <summary>
    /// Binds and listens. Only SO_REUSEADDR (restart while old connections sit in TIME_WAIT):
    /// .NET's ReuseAddress also sets SO_REUSEPORT on Linux, which would let a second gateway
    /// bind the same port and silently split the connections with the first.
    /// </summary>
    public static Socket Bind(ListenerSettings settings)
    {
        var address = IPAddress.Parse(settings.Address);
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(address, settings.Port));
            socket.Listen(512);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var hint = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? " (is another gateway or MTA running on it?)" : "";
            throw new ConfigException($"listener '{settings.Name}' cannot bind {settings.Address}:{settings.Port}: {e.Message}{hint}");
        }
    }

    private const int SolSocket = 1;      // Linux <sys/socket.h>
    private const int SoReuseAddr = 2;

    public void Start() => _acceptLoop = Task.Run(AcceptLoop);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            if (_stopAccepting.IsCancellationRequested) break;
            try { client = await _socket.AcceptAsync(_stopAccepting.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
            catch (SocketException) { continue; }
            catch (ObjectDisposedException) { break; }
            var task = Task.Run(() => HandleAsync(client));
            lock (_sessions) _sessions.Add(task);
            _ = task.ContinueWith(t => { lock (_sessions) _sessions.Remove(t); }, TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        client.NoDelay = true;
        var remote = (IPEndPoint)client.RemoteEndPoint!;
        var local = (IPEndPoint)client.LocalEndPoint!;
        var remoteAddress = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
        var icid = await Store.NextIdAsync(IdKind.InboundConnection).ConfigureAwait(false);
        var active = Interlocked.Increment(ref _active);
        UpdateStress();
        try
        {
            await using var stream = new NetworkStream(client, ownsSocket: true);
            if (Suspended)
            {
                Events.Publish(new ConnectionRefused(icid, remoteAddress, $"listener {Settings.Name} suspended by the administrator"));
                await stream.WriteAsync("421 4.3.2 Service not available, closing transmission channel\r\n"u8.ToArray()).ConfigureAwait(false);
                return;
            }
            if (active > Settings.MaxConcurrency)
            {
                Events.Publish(new ConnectionRefused(icid, remoteAddress, $"listener {Settings.Name} at its limit of {Settings.MaxConcurrency} connections"));
                await stream.WriteAsync("421 4.3.2 Too many concurrent connections, try again later\r\n"u8.ToArray()).ConfigureAwait(false);
                return;
            }
            var (hostName, verified) = _state.NeedsHostNames ? await ReverseLookupAsync(remoteAddress).ConfigureAwait(false) : (null, false);
            Events.Publish(new ConnectionOpened(icid, Settings.Name, local, remoteAddress, hostName, verified));
            var decision = Evaluate(remoteAddress, verified ? hostName : null);
            Events.Publish(new SenderGroupMatched(icid, decision.Policy.Action.ToString(), decision.Group, decision.PolicyName, decision.MatchedBy));
            if (decision.Policy.Action == PolicyAction.TcpRefuse)
            {
                Events.Publish(new ConnectionClosed(icid, "TCP refused by HAT"));
                return;
            }
            var session = new SmtpSession(this, stream, local, remoteAddress is null ? remote : new IPEndPoint(remoteAddress, remote.Port), icid, decision, _stop.Token);
            await session.RunAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Events.Publish(new ConnectionClosed(icid, "connection lost: " + e.Message));
        }
        finally
        {
            Interlocked.Decrement(ref _active);
            UpdateStress();
        }
    }

    /// <summary>HAT: first sender group with a matching entry wins; else the default policy.</summary>
    public HatDecision Evaluate(IPAddress client, string? verifiedHostName)
    {
        var state = _state;
        foreach (var (group, patterns) in state.Groups)
            for (var i = 0; i < patterns.Count; i++)
                if (patterns[i].Matches(client, verifiedHostName))
                    return new HatDecision(group.Name, group.Policy, state.Config.Policy(group.Policy), group.Senders[i]);
        return new HatDecision("ALL", state.Settings.DefaultPolicy, state.Config.Policy(state.Settings.DefaultPolicy), null);
    }

    /// <summary>Forward-confirmed reverse DNS: the PTR name counts only if it resolves back to the client.</summary>
    private async Task<(string? Name, bool Verified)> ReverseLookupAsync(IPAddress address)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(Config.Dns.TimeoutSeconds * 2));
        try
        {
            var ptr = await _dns.QueryPtrAsync(address, cts.Token).ConfigureAwait(false);
            if (ptr.Records.Count == 0) return (null, false);
            var name = ptr.Records[0];
            var forward = await _dns.QueryAddressesAsync(name, address.AddressFamily == AddressFamily.InterNetworkV6, cts.Token).ConfigureAwait(false);
            return (name, forward.Records.Contains(address));
        }
        catch (OperationCanceledException) { return (null, false); }
    }

    /// <summary>
    /// Retires the listener (a commit moved or removed it): no new connections, while the
    /// sessions already open run to their end, bounded by <paramref name="drain"/>; then it is disposed.
    /// </summary>
    public async Task RetireAsync(TimeSpan drain)
    {
        _stopAccepting.Cancel();
        _socket.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        Task[] sessions;
        lock (_sessions) sessions = _sessions.ToArray();
        await Task.WhenAll(sessions).WaitAsync(drain).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _stopAccepting.Cancel();
        _stop.Cancel();
        _socket.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        Task[] sessions;
        lock (_sessions) sessions = _sessions.ToArray();
        await Task.WhenAll(sessions).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
    }
}
