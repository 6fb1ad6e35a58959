using Microsoft.Data.Sqlite;

namespace Postern.Security;

/// <summary>One cached MTA-STS policy: what was fetched, under which TXT id, until when.</summary>
public sealed record StsCacheEntry(string Domain, string Id, string PolicyText, DateTimeOffset FetchedAt, DateTimeOffset ExpiresAt, DateTimeOffset LastUsed)
{
    public bool IsExpired(DateTimeOffset now) => now >= ExpiresAt;

    /// <summary>The columns every cache store selects, in this order (times in seconds).</summary>
    public const string Columns = "domain, id, policy, fetched_at, expires_at, last_used";

    /// <summary>One row of <see cref="Columns"/>.</summary>
    public static StsCacheEntry FromRow(System.Data.Common.DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(3)),
            DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(4)), DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(5)));
}

/// <summary>The MTA-STS policy cache. Persistent, so policies survive restarts (RFC 8461 §5.1: a policy keeps applying until it expires).</summary>
public interface IStsPolicyCache : IDisposable
{
    StsCacheEntry? Get(string domain);
    void Put(StsCacheEntry entry);
    void Touch(string domain, DateTimeOffset lastUsed);
    bool Remove(string domain);
    IReadOnlyList<StsCacheEntry> List();
}

/// <summary>The cache in a SQLite file of its own under the data directory (0600).</summary>
public sealed class SqliteStsPolicyCache : IStsPolicyCache
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "queue", "mta-sts.db");

    public SqliteStsPolicyCache(string path)
    {
        _connection = Queue.SqliteFiles.OpenPrivate(path, """
            CREATE TABLE IF NOT EXISTS sts_policies(
              domain TEXT PRIMARY KEY, id TEXT NOT NULL, policy TEXT NOT NULL,
              fetched_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, last_used INTEGER NOT NULL);
            """);
    }

    private void Exec(string sql, params (string Name, object Value)[] parameters)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        cmd.ExecuteNonQuery();
    }

    public StsCacheEntry? Get(string domain)
    {
        lock (_gate) return Read("WHERE domain=$d", ("$d", domain.ToLowerInvariant())).FirstOrDefault();
    }

    public void Put(StsCacheEntry e)
    {
        lock (_gate)
            Exec("INSERT OR REPLACE INTO sts_policies VALUES($d, $id, $p, $f, $x, $u)",
                ("$d", e.Domain.ToLowerInvariant()), ("$id", e.Id), ("$p", e.PolicyText), ("$f", e.FetchedAt.ToUnixTimeSeconds()),
                ("$x", e.ExpiresAt.ToUnixTimeSeconds()), ("$u", e.LastUsed.ToUnixTimeSeconds()));
    }

    public void Touch(string domain, DateTimeOffset lastUsed)
    {
        lock (_gate) Exec("UPDATE sts_policies SET last_used=$u WHERE domain=$d", ("$u", lastUsed.ToUnixTimeSeconds()), ("$d", domain.ToLowerInvariant()));
    }

    public bool Remove(string domain)
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "DELETE FROM sts_policies WHERE domain=$d";
            cmd.Parameters.AddWithValue("$d", domain.ToLowerInvariant());
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    public IReadOnlyList<StsCacheEntry> List()
    {
        lock (_gate) return Read("ORDER BY domain");
    }

    private List<StsCacheEntry> Read(string where, params (string Name, object Value)[] parameters)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"SELECT {StsCacheEntry.Columns} FROM sts_policies " + where;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        using var r = cmd.ExecuteReader();
        var list = new List<StsCacheEntry>();
        while (r.Read()) list.Add(StsCacheEntry.FromRow(r));
        return list;
    }

    public void Dispose() => _connection.Dispose();
}
