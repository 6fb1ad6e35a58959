using Npgsql;
using Postern.Outbound;

namespace Postern.Cluster;

/// <summary>
/// Cluster-wide connection slots in the shared database: taking one is one call of a server-side
/// function that, under an advisory lock per destination, counts the live slots and adds one if
/// there is room (one round trip, so the lock never waits on a busy member).
/// A slot carries a lease renewed by its member's heartbeat, so a crashed member's slots free
/// themselves; a member's own are cleared when it starts again.
/// </summary>
public sealed class PostgresConnectionSlots(PostgresDatabase db, string member, TimeSpan lease) : IConnectionSlots
{
    private long _next;
    private string Member => member;
    private PostgresDatabase Database => db;

    public async Task<IAsyncDisposable?> TryTakeAsync(string domain, int limit, CancellationToken ct)
    {
        var slot = Interlocked.Increment(ref _next);
        var d = domain.ToLowerInvariant();
        await using var cmd = db.Soft.CreateCommand("SELECT postern_take_slot($1, $2, $3, $4, $5)");
        foreach (var v in new object[] { d, member, slot, (long)lease.TotalMilliseconds, limit })
            cmd.Parameters.Add(new NpgsqlParameter { Value = v });
        var taken = (bool)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        return taken ? new Held(this, d, slot) : null;
    }

    /// <summary>Extends this member's slots (the membership heartbeat).</summary>
    public async Task RenewAsync()
    {
        // Skipping a row locked now (it is being given back) keeps renewal from ever waiting on a taker.
        await using var cmd = db.Control.CreateCommand($"""
            UPDATE connection_slots SET lease_until={PostgresDatabase.NowMs} + $2
            WHERE (domain, member, slot) IN (SELECT domain, member, slot FROM connection_slots WHERE member=$1 FOR UPDATE SKIP LOCKED)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = member });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)lease.TotalMilliseconds });
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private sealed class Held(PostgresConnectionSlots owner, string domain, long slot) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await using var cmd = owner.Database.Soft.CreateCommand("DELETE FROM connection_slots WHERE domain=$1 AND member=$2 AND slot=$3");
                cmd.Parameters.Add(new NpgsqlParameter { Value = domain });
                cmd.Parameters.Add(new NpgsqlParameter { Value = owner.Member });
                cmd.Parameters.Add(new NpgsqlParameter { Value = slot });
                await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException) { /* its lease frees it */ }
        }
    }
}
