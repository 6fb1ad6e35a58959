using System.Collections.Concurrent;

namespace Postern.Observability;

/// <summary>
/// Counts events by type from the one event stream (bounce verification failures,
/// deferrals, refusals ...): the seed of the metrics endpoint, so nothing is counted in
/// one place and logged in another.
/// </summary>
public sealed class MailCounters
{
    private readonly ConcurrentDictionary<string, long> _counts = new(StringComparer.Ordinal);

    public void Attach(MailEventStream stream) => stream.Subscribe(e => _counts.AddOrUpdate(e.CounterName, 1, (_, n) => n + 1));

    /// <summary>How many events of this type were published since start (e.g. nameof(BounceVerificationFailed)).</summary>
    public long Get(string eventType) => _counts.TryGetValue(eventType, out var n) ? n : 0;

    public IReadOnlyDictionary<string, long> Snapshot() => new Dictionary<string, long>(_counts);
}
