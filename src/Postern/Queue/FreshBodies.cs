namespace Postern.Queue;

/// <summary>
/// Bodies of messages just queued, kept in pooled memory for their first delivery round: the
/// round that usually follows at once then needs no read-back from the store. Bounded by
/// bytes (oldest out first); a body is handed out once (the round then owns it) and forgotten
/// when its message is removed.
/// </summary>
public sealed class FreshBodies(long maxBytes) : IDisposable
{
    private readonly Dictionary<long, MessageBody> _bodies = new();
    private readonly Queue<long> _order = new();
    private readonly Lock _gate = new();
    private long _bytes;

    public long Bytes { get { lock (_gate) return _bytes; } }

    public void Add(long mid, ReadOnlySpan<byte> body)
    {
        if (body.Length > maxBytes / 4) return;   // a very large message is read from the store when needed
        var copy = MessageBody.Rent(body.Length);
        body.CopyTo(copy.Writable);
        lock (_gate)
        {
            if (!_bodies.TryAdd(mid, copy)) { copy.Dispose(); return; }
            _order.Enqueue(mid);
            _bytes += body.Length;
            while (_bytes > maxBytes && _order.TryDequeue(out var oldest))
                if (_bodies.Remove(oldest, out var evicted)) { _bytes -= evicted.Memory.Length; evicted.Dispose(); }
            // Mids taken or removed stay in the order queue until they reach its front: keep it bounded too.
            if (_order.Count > 4 * Math.Max(16, _bodies.Count)) Compact();
        }
    }

    /// <summary>Hands the body over (the caller disposes it), or null when it is not kept here.</summary>
    public MessageBody? Take(long mid)
    {
        lock (_gate)
        {
            if (!_bodies.Remove(mid, out var body)) return null;
            _bytes -= body.Memory.Length;
            return body;
        }
    }

    public void Remove(long mid) => Take(mid)?.Dispose();

    private void Compact()
    {
        var live = _order.Where(_bodies.ContainsKey).ToList();
        _order.Clear();
        foreach (var mid in live) _order.Enqueue(mid);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var body in _bodies.Values) body.Dispose();
            _bodies.Clear();
            _order.Clear();
            _bytes = 0;
        }
    }
}
