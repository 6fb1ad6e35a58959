namespace Postern.Outbound;

/// <summary>
/// Connection limits that hold across a cluster: before a delivery connection opens to a
/// destination whose limits apply system-wide, a slot is taken from the shared store, and
/// given back when the connection closes. One machine needs none (its own counters are the
/// whole system); per-hostname limits are each member's own counters.
/// </summary>
public interface IConnectionSlots
{
    /// <summary>A held slot (dispose to give it back), or null when limit connections to domain are open across the cluster.</summary>
    Task<IAsyncDisposable?> TryTakeAsync(string domain, int limit, CancellationToken ct);
}

/// <summary>Recipient-rate limits shared by a cluster: reserves room for count recipients, or says how long until there is room.</summary>
public interface IRecipientRate
{
    Task<TimeSpan?> TryReserveAsync(string domain, int limit, TimeSpan window, int count, CancellationToken ct);
}
