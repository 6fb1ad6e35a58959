using Npgsql;
using Postern.Admin;

namespace Postern.Cluster;

/// <summary>
/// Configuration versions, staged changes and operator holds of a cluster, in the shared
/// database: a commit made on any member is the next version for all of them (each member's
/// ConfigWatcher applies it within a second).
/// </summary>
public sealed class PostgresConfigStore(PostgresDatabase db) : IConfigStore
{
    private NpgsqlCommand Command(string sql, params (string Name, object Value)[] parameters)
    {
        var cmd = db.Source.CreateCommand(sql);
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        return cmd;
    }

    private List<ConfigVersion> Read(string where, params (string Name, object Value)[] parameters)
    {
        using var cmd = Command("SELECT number, time, who, comment, document FROM config_versions " + where, parameters);
        using var r = cmd.ExecuteReader();
        var list = new List<ConfigVersion>();
        while (r.Read()) list.Add(new ConfigVersion(r.GetInt32(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1)), r.GetString(2), r.GetString(3), r.GetString(4)));
        return list;
    }

    public ConfigVersion? Latest() => Read("ORDER BY number DESC LIMIT 1").FirstOrDefault();

    public int LatestNumber()
    {
        using var cmd = Command("SELECT COALESCE(MAX(number), 0) FROM config_versions");
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public ConfigVersion? Get(int number) => Read("WHERE number=@n", ("n", number)).FirstOrDefault();
    public IReadOnlyList<ConfigVersion> List() => Read("ORDER BY number");

    public ConfigVersion Add(string who, string comment, string document)
    {
        using var c = db.Source.OpenConnection();
        using var tx = c.BeginTransaction();
        // Two members committing at once get consecutive numbers, never the same one.
        PostgresDatabase.Exec(c, tx, "LOCK TABLE config_versions IN EXCLUSIVE MODE");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        int number;
        using (var cmd = new NpgsqlCommand("""
            INSERT INTO config_versions(number, time, who, comment, document)
            VALUES((SELECT COALESCE(MAX(number), 0) + 1 FROM config_versions), @t, @w, @c, @d) RETURNING number
            """, c, tx))
        {
            cmd.Parameters.AddWithValue("t", now);
            cmd.Parameters.AddWithValue("w", who);
            cmd.Parameters.AddWithValue("c", comment);
            cmd.Parameters.AddWithValue("d", document);
            number = (int)cmd.ExecuteScalar()!;
        }
        PostgresDatabase.Exec(c, tx, "DELETE FROM config_staged");
        tx.Commit();
        return new ConfigVersion(number, DateTimeOffset.FromUnixTimeMilliseconds(now), who, comment, document);
    }

    /// <summary>Stores a version exactly as it was (number, time, author): a migration from one machine.</summary>
    public void AddExact(ConfigVersion v)
    {
        using var cmd = Command("INSERT INTO config_versions(number, time, who, comment, document) VALUES(@n, @t, @w, @c, @d)",
            ("n", v.Number), ("t", v.Time.ToUnixTimeMilliseconds()), ("w", v.Who), ("c", v.Comment), ("d", v.Document));
        cmd.ExecuteNonQuery();
    }

    public (string Document, string Who, DateTimeOffset Time)? Staged()
    {
        using var cmd = Command("SELECT document, who, time FROM config_staged WHERE id=1");
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetString(0), r.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2))) : null;
    }

    public void Stage(string document, string who)
    {
        using var cmd = Command("""
            INSERT INTO config_staged(id, document, who, time) VALUES(1, @d, @w, @t)
            ON CONFLICT(id) DO UPDATE SET document=excluded.document, who=excluded.who, time=excluded.time
            """, ("d", document), ("w", who), ("t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        cmd.ExecuteNonQuery();
    }

    public void ClearStaged()
    {
        using var cmd = Command("DELETE FROM config_staged");
        cmd.ExecuteNonQuery();
    }

    public IReadOnlyList<OperatorHold> Holds()
    {
        using var cmd = Command("SELECT kind, target, who, since, member FROM holds ORDER BY kind, target, member");
        using var r = cmd.ExecuteReader();
        var list = new List<OperatorHold>();
        while (r.Read()) list.Add(new OperatorHold(r.GetString(0), r.GetString(1), r.GetString(2), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)), r.GetString(4)));
        return list;
    }

    public void SetHold(string kind, string target, string who, bool on, string member = "")
    {
        using var cmd = on
            ? Command("""
                INSERT INTO holds(kind, target, member, who, since) VALUES(@k, @t, @m, @w, @s)
                ON CONFLICT(kind, target, member) DO UPDATE SET who=excluded.who, since=excluded.since
                """, ("k", kind), ("t", target.ToLowerInvariant()), ("m", member), ("w", who), ("s", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()))
            : Command("DELETE FROM holds WHERE kind=@k AND target=@t AND member=@m", ("k", kind), ("t", target.ToLowerInvariant()), ("m", member));
        cmd.ExecuteNonQuery();
    }

    public void Dispose() { }   // the data source is shared by the process
}
