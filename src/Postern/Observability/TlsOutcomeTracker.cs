using System.Collections.Concurrent;

namespace Postern.Observability;

/// <summary>The last outbound TLS outcome seen for a destination domain (for `hoststatus`).</summary>
public sealed record HostTlsOutcome(string Domain, string MxHost, string Address, DateTimeOffset Time, string Level, string Outcome, string Detail, string? Protocol);

/// <summary>
/// Follows delivery connections on the event stream and keeps, per destination domain, how
/// the last TLS negotiation went: policy level, outcome, protocol, host. Bounded both ways:
/// open connections (forgotten when closed, at most <see cref="MaxOpen"/>) and domains (the
/// least recently seen are dropped beyond <see cref="MaxDomains"/>).
/// </summary>
public sealed class TlsOutcomeTracker
{
    public const int MaxOpen = 10_000;
    public const int MaxDomains = 1_000;

    private sealed class Open(string domain, string mxHost, string address)
    {
        public string Domain { get; } = domain;
        public string MxHost { get; } = mxHost;
        public string Address { get; } = address;
        public string Level { get; set; } = "";
        public string? Protocol { get; set; }
        public bool Recorded { get; set; }
    }

    private readonly ConcurrentDictionary<long, Open> _open = new();
    private readonly ConcurrentDictionary<string, HostTlsOutcome> _last = new(StringComparer.OrdinalIgnoreCase);

    public void Attach(MailEventStream stream) => stream.Subscribe(On);

    private void On(MailEvent e)
    {
        switch (e)
        {
            case DeliveryConnectionOpened o when _open.Count < MaxOpen:
                _open[o.Dcid] = new Open(o.Domain, o.MxHost, o.Remote.ToString());
                break;
            case DeliveryPolicyApplied p when _open.TryGetValue(p.Dcid, out var c):
                c.Level = p.TlsLevel;
                break;
            case DeliveryTlsNegotiated n when _open.TryGetValue(n.Dcid, out var c):
                c.Protocol = n.Protocol;
                Record(c, n.Time, "Encrypted", $"cipher {n.Cipher}");   // a verification outcome, if any, follows and replaces it
                break;
            case DeliveryTlsOutcome t when _open.TryGetValue(t.Dcid, out var c):
                Record(c, t.Time, t.Kind.ToString(), t.Detail);
                break;
            case DeliveryConnectionClosed x when _open.TryRemove(x.Dcid, out var c):
                if (!c.Recorded) Record(c, x.Time, "NotAttempted", "no TLS on this connection");
                break;
        }
    }

    private void Record(Open c, DateTimeOffset time, string outcome, string detail)
    {
        c.Recorded = true;
        _last[c.Domain] = new HostTlsOutcome(c.Domain, c.MxHost, c.Address, time, c.Level, outcome, detail, c.Protocol);
        if (_last.Count > MaxDomains)
            foreach (var old in _last.Values.OrderBy(v => v.Time).Take(_last.Count - MaxDomains).ToList())
                _last.TryRemove(old.Domain, out _);
    }

    public HostTlsOutcome? For(string domain) => _last.GetValueOrDefault(domain);

    public IReadOnlyDictionary<string, HostTlsOutcome> Snapshot() => new Dictionary<string, HostTlsOutcome>(_last, StringComparer.OrdinalIgnoreCase);
}
