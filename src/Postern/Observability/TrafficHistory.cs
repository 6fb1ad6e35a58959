using System.Collections.Concurrent;

namespace Postern.Observability;

/// <summary>One hour of traffic: messages and how delivered recipients were protected.</summary>
public sealed record TrafficHour(DateTimeOffset Hour, long Received, long Delivered, long Deferred, long Bounced,
    long DeliveredTls, long DeliveredVerified, long DeliveredDane, long DeliveredMtaSts);

/// <summary>
/// Traffic over the last day for the web interface's overview, from the one event stream:
/// messages received, recipients delivered, deferred and bounced per hour, and for the
/// delivered ones whether their connection was encrypted, its certificate verified, and
/// whether DANE or MTA-STS authenticated it. Bounded: 24 hourly buckets, and the facts of the
/// last <see cref="MaxOpen"/> connections (kept past their close: a delivery is published once
/// the store has committed it, which may be after the connection ended).
/// </summary>
public sealed class TrafficHistory(Func<DateTimeOffset> now)
{
    public const int Hours = 24;
    public const int MaxOpen = 10_000;

    [Flags]
    private enum Protection { None = 0, Tls = 1, Verified = 2, Dane = 4, MtaSts = 8 }

    private sealed class Bucket
    {
        public long Hour;
        public long Received, Delivered, Deferred, Bounced, Tls, Verified, Dane, MtaSts;
    }

    private readonly Bucket[] _buckets = Enumerable.Range(0, Hours).Select(_ => new Bucket { Hour = -1 }).ToArray();
    private readonly ConcurrentDictionary<long, Protection> _connections = new();
    private readonly ConcurrentQueue<long> _order = new();
    private readonly Lock _gate = new();

    public void Attach(MailEventStream stream) => stream.Subscribe(On);

    private void On(MailEvent e)
    {
        switch (e)
        {
            case DeliveryConnectionOpened o:
                _connections[o.Dcid] = Protection.None;
                _order.Enqueue(o.Dcid);
                while (_order.Count > MaxOpen && _order.TryDequeue(out var oldest)) _connections.TryRemove(oldest, out _);
                break;
            case DeliveryTlsNegotiated negotiated: Mark(negotiated.Dcid, Protection.Tls); break;
            case DeliveryTlsOutcome { Kind: TlsOutcomeKind.CertificateVerified } v: Mark(v.Dcid, Protection.Verified); break;
            case DaneOutcome { Result: DaneResult.Authenticated } d: Mark(d.Dcid, Protection.Dane | Protection.Verified); break;
            case StsSuccessful s: Mark(s.Dcid, Protection.MtaSts); break;
            case MessageReady: Add(e.Time, b => b.Received++); break;
            case RecipientDelayed: Add(e.Time, b => b.Deferred++); break;
            case RecipientBounced: Add(e.Time, b => b.Bounced++); break;
            case MessageDone done:
                var p = _connections.GetValueOrDefault(done.Dcid);
                var n = done.Rids.Count;
                Add(e.Time, b =>
                {
                    b.Delivered += n;
                    if (p.HasFlag(Protection.Tls)) b.Tls += n;
                    if (p.HasFlag(Protection.Verified)) b.Verified += n;
                    if (p.HasFlag(Protection.Dane)) b.Dane += n;
                    if (p.HasFlag(Protection.MtaSts)) b.MtaSts += n;
                });
                break;
        }
    }

    private void Mark(long dcid, Protection p)
    {
        if (_connections.TryGetValue(dcid, out var old)) _connections[dcid] = old | p;
    }

    private void Add(DateTimeOffset time, Action<Bucket> change)
    {
        var hour = time.ToUnixTimeSeconds() / 3600;
        lock (_gate)
        {
            var bucket = _buckets[hour % Hours];
            if (bucket.Hour != hour)
            {
                bucket.Hour = hour;
                bucket.Received = bucket.Delivered = bucket.Deferred = bucket.Bounced = bucket.Tls = bucket.Verified = bucket.Dane = bucket.MtaSts = 0;
            }
            change(bucket);
        }
    }

    /// <summary>The last 24 hours, oldest first, every hour present (zeros where nothing happened).</summary>
    public IReadOnlyList<TrafficHour> Last24Hours()
    {
        var current = now().ToUnixTimeSeconds() / 3600;
        lock (_gate)
        {
            return Enumerable.Range(0, Hours).Select(i => current - Hours + 1 + i).Select(h =>
            {
                var b = _buckets[h % Hours];
                var at = DateTimeOffset.FromUnixTimeSeconds(h * 3600);
                return b.Hour == h ? new TrafficHour(at, b.Received, b.Delivered, b.Deferred, b.Bounced, b.Tls, b.Verified, b.Dane, b.MtaSts)
                    : new TrafficHour(at, 0, 0, 0, 0, 0, 0, 0, 0);
            }).ToList();
        }
    }
}
