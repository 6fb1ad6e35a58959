using Npgsql;
using Postern.Outbound;

namespace Postern.Cluster;

/// <summary>
/// Cluster-wide connection slots in the shared database: taking one is a short transaction
/// under an advisory lock per destination (count the live slots, add one if there is room).
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
        await using var c = await db.Source.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var cmd = new NpgsqlCommand($"""
            SELECT pg_advisory_xact_lock(hashtext('postern-slots:' || @d));
            DELETE FROM connection_slots WHERE domain=@d AND lease_until < {PostgresDatabase.NowMs};
            INSERT INTO connection_slots(domain, member, slot, lease_until)
              SELECT @d, @m, @s, {PostgresDatabase.NowMs} + @lease WHERE (SELECT COUNT(*) FROM connection_slots WHERE domain=@d) < @limit;
            """, c, tx))
        {
            cmd.Parameters.AddWithValue("d", domain.ToLowerInvariant());
            cmd.Parameters.AddWithValue("m", member);
            cmd.Parameters.AddWithValue("s", slot);
            cmd.Parameters.AddWithValue("lease", (long)lease.TotalMilliseconds);
            cmd.Parameters.AddWithValue("limit", (long)limit);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await using (var check = new NpgsqlCommand("SELECT EXISTS(SELECT 1 FROM connection_slots WHERE domain=@d AND member=@m AND slot=@s)", c, tx))
        {
            check.Parameters.AddWithValue("d", domain.ToLowerInvariant());
            check.Parameters.AddWithValue("m", member);
            check.Parameters.AddWithValue("s", slot);
            var mine = (bool)(await check.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            await tx.CommitAsync(ct).ConfigureAwait(false);
            return mine ? new Held(this, domain.ToLowerInvariant(), slot) : null;
        }
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
                await using var cmd = owner.Database.Source.CreateCommand("DELETE FROM connection_slots WHERE domain=$1 AND member=$2 AND slot=$3");
                cmd.Parameters.Add(new NpgsqlParameter { Value = domain });
                cmd.Parameters.Add(new NpgsqlParameter { Value = owner.Member });
                cmd.Parameters.Add(new NpgsqlParameter { Value = slot });
                await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException) { /* its lease frees it */ }
        }
    }
}
