using Npgsql;
using Postern.Observability;
using Postern.Outbound;
using Postern.Security;

namespace Postern.Cluster;

/// <summary>
/// The small shared state of a cluster besides the queue: the MTA-STS policy cache, the alert
/// throttle and recipient-rate windows. One schema component ("state"), one file.
/// </summary>
public static class PostgresSharedState
{
    private static readonly string[] Steps =
    [
        // 1: MTA-STS cache (times in seconds, as in the SQLite cache), alert throttle, recipient-rate windows.
        """
        CREATE TABLE sts_policies(domain text PRIMARY KEY, id text NOT NULL, policy text NOT NULL,
          fetched_at bigint NOT NULL, expires_at bigint NOT NULL, last_used bigint NOT NULL);
        CREATE TABLE alert_throttle(key text PRIMARY KEY, last_sent bigint NOT NULL);
        CREATE TABLE recipient_rate(domain text NOT NULL, at bigint NOT NULL, count int NOT NULL, member text NOT NULL);
        CREATE INDEX recipient_rate_window ON recipient_rate(domain, at);
        """,
    ];

    public static PostgresDatabase Open(PostgresDatabase db)
    {
        db.EnsureSchema("state", Steps);
        return db;
    }
}

/// <summary>The MTA-STS policy cache shared by the members: a policy one member fetched applies on all (RFC 8461 §5.1).</summary>
public sealed class PostgresStsPolicyCache(PostgresDatabase db) : IStsPolicyCache
{
    private readonly PostgresDatabase _db = PostgresSharedState.Open(db);

    private NpgsqlCommand Command(string sql, params object[] values)
    {
        var cmd = _db.Source.CreateCommand(sql);
        foreach (var v in values) cmd.Parameters.Add(new NpgsqlParameter { Value = v });
        return cmd;
    }

    public StsCacheEntry? Get(string domain) => Read("WHERE domain=$1", domain.ToLowerInvariant()).FirstOrDefault();

    public void Put(StsCacheEntry e)
    {
        using var cmd = Command("""
            INSERT INTO sts_policies VALUES($1, $2, $3, $4, $5, $6)
            ON CONFLICT(domain) DO UPDATE SET id=excluded.id, policy=excluded.policy, fetched_at=excluded.fetched_at,
              expires_at=excluded.expires_at, last_used=excluded.last_used
            """, e.Domain.ToLowerInvariant(), e.Id, e.PolicyText, e.FetchedAt.ToUnixTimeSeconds(), e.ExpiresAt.ToUnixTimeSeconds(), e.LastUsed.ToUnixTimeSeconds());
        cmd.ExecuteNonQuery();
    }

    public void Touch(string domain, DateTimeOffset lastUsed)
    {
        using var cmd = Command("UPDATE sts_policies SET last_used=GREATEST(last_used, $1) WHERE domain=$2", lastUsed.ToUnixTimeSeconds(), domain.ToLowerInvariant());
        cmd.ExecuteNonQuery();
    }

    public bool Remove(string domain)
    {
        using var cmd = Command("DELETE FROM sts_policies WHERE domain=$1", domain.ToLowerInvariant());
        return cmd.ExecuteNonQuery() > 0;
    }

    public IReadOnlyList<StsCacheEntry> List() => Read("ORDER BY domain");

    private List<StsCacheEntry> Read(string where, params object[] values)
    {
        using var cmd = Command($"SELECT {StsCacheEntry.Columns} FROM sts_policies " + where, values);
        using var r = cmd.ExecuteReader();
        var list = new List<StsCacheEntry>();
        while (r.Read()) list.Add(StsCacheEntry.FromRow(r));
        return list;
    }

    public void Dispose() { }   // the data source is the process's
}

/// <summary>The alert throttle across members: one alert of a kind per window for the whole cluster, and it survives restarts.</summary>
public sealed class PostgresAlertThrottle(PostgresDatabase db) : IAlertThrottle
{
    private readonly PostgresDatabase _db = PostgresSharedState.Open(db);

    public async Task<DateTimeOffset?> TryPassAsync(string key, DateTimeOffset now, TimeSpan window)
    {
        // Passes (and records the send) only when the last one is older than the window: one statement, so two members never both pass.
        await using var cmd = _db.Source.CreateCommand("""
            INSERT INTO alert_throttle(key, last_sent) VALUES($1, $2)
            ON CONFLICT(key) DO UPDATE SET last_sent=excluded.last_sent WHERE alert_throttle.last_sent <= $2 - $3
            RETURNING last_sent
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = key });
        cmd.Parameters.Add(new NpgsqlParameter { Value = now.ToUnixTimeMilliseconds() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)window.TotalMilliseconds });
        if (await cmd.ExecuteScalarAsync().ConfigureAwait(false) is not null) return null;
        await using var last = _db.Source.CreateCommand("SELECT last_sent FROM alert_throttle WHERE key=$1");
        last.Parameters.Add(new NpgsqlParameter { Value = key });
        return await last.ExecuteScalarAsync().ConfigureAwait(false) is long ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : now;
    }
}

/// <summary>Recipient-rate limits counted across members (Destination Controls limits that apply system-wide).</summary>
public sealed class PostgresRecipientRate(PostgresDatabase db, string member) : IRecipientRate
{
    private readonly PostgresDatabase _db = PostgresSharedState.Open(db);

    public async Task<TimeSpan?> TryReserveAsync(string domain, int limit, TimeSpan window, int count, CancellationToken ct)
    {
        var d = domain.ToLowerInvariant();
        await using var c = await _db.Soft.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('postern-rate:' || $1))", c, tx))
        {
            lockCmd.Parameters.Add(new NpgsqlParameter { Value = d });
            await lockCmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        long now;
        await using (var clock = new NpgsqlCommand($"SELECT {PostgresDatabase.NowMs}", c, tx)) now = (long)(await clock.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        var since = now - (long)window.TotalMilliseconds;
        await using (var prune = new NpgsqlCommand("DELETE FROM recipient_rate WHERE domain=$1 AND at <= $2", c, tx))
        {
            prune.Parameters.Add(new NpgsqlParameter { Value = d });
            prune.Parameters.Add(new NpgsqlParameter { Value = since });
            await prune.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        long used = 0, oldest = now;
        await using (var sum = new NpgsqlCommand("SELECT COALESCE(SUM(count), 0), COALESCE(MIN(at), $2) FROM recipient_rate WHERE domain=$1", c, tx))
        {
            sum.Parameters.Add(new NpgsqlParameter { Value = d });
            sum.Parameters.Add(new NpgsqlParameter { Value = now });
            await using var r = await sum.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (await r.ReadAsync(ct).ConfigureAwait(false)) { used = r.GetInt64(0); oldest = r.GetInt64(1); }
        }
        // As on one machine: an oversized job may go alone into an empty window, or it would wait forever.
        if (limit > 0 && (used + count <= limit || used == 0))
        {
            await using var add = new NpgsqlCommand("INSERT INTO recipient_rate(domain, at, count, member) VALUES($1, $2, $3, $4)", c, tx);
            add.Parameters.Add(new NpgsqlParameter { Value = d });
            add.Parameters.Add(new NpgsqlParameter { Value = now });
            add.Parameters.Add(new NpgsqlParameter { Value = count });
            add.Parameters.Add(new NpgsqlParameter { Value = member });
            await add.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            await tx.CommitAsync(ct).ConfigureAwait(false);
            return null;
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return TimeSpan.FromMilliseconds(Math.Max(1000, oldest + (long)window.TotalMilliseconds - now));
    }
}
