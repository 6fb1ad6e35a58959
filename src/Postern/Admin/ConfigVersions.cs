using Microsoft.Data.Sqlite;

namespace Postern.Admin;

/// <summary>One committed configuration: the whole document, who committed it, when and why.</summary>
public sealed record ConfigVersion(int Number, DateTimeOffset Time, string Who, string Comment, string Document);

/// <summary>
/// Where committed versions and the staged (not yet committed) document live. SQLite for one
/// machine; the cluster store moves them to PostgreSQL behind the same interface.
/// </summary>
public interface IConfigStore : IDisposable
{
    ConfigVersion? Latest();
    /// <summary>The newest version's number (0 when none): what the running gateway polls, without reading documents.</summary>
    int LatestNumber();
    ConfigVersion? Get(int number);
    IReadOnlyList<ConfigVersion> List();
    ConfigVersion Add(string who, string comment, string document);
    /// <summary>The staged document and who staged it last; null when nothing is staged.</summary>
    (string Document, string Who, DateTimeOffset Time)? Staged();
    void Stage(string document, string who);
    void ClearStaged();
    /// <summary>Operator switches (suspended deliveries and listeners): state, not configuration, so not versioned.</summary>
    IReadOnlyList<OperatorHold> Holds();
    /// <summary>Sets or clears a hold; member names the cluster member it applies to ("" = every member, and always on one machine).</summary>
    void SetHold(string kind, string target, string who, bool on, string member = "");
}

/// <summary>A delivery ("delivery", domain or "*") or listener ("listener", name) suspended by an operator; Member "" = on every member.</summary>
public sealed record OperatorHold(string Kind, string Target, string Who, DateTimeOffset Since, string Member = "")
{
    public bool AppliesTo(string member) => Member.Length == 0 || Member.Equals(member, StringComparison.OrdinalIgnoreCase);
}

public sealed class SqliteConfigStore : IConfigStore
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "config", "versions.db");

    public SqliteConfigStore(string path)
    {
        _connection = Queue.SqliteFiles.OpenPrivate(path, """
            CREATE TABLE IF NOT EXISTS versions(number INTEGER PRIMARY KEY, time INTEGER NOT NULL, who TEXT NOT NULL, comment TEXT NOT NULL, document TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS staged(id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT NOT NULL, who TEXT NOT NULL, time INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS holds(kind TEXT NOT NULL, target TEXT NOT NULL, who TEXT NOT NULL, since INTEGER NOT NULL, PRIMARY KEY(kind, target));
            """);
    }

    private int Exec(string sql, params (string Name, object Value)[] parameters)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        return cmd.ExecuteNonQuery();
    }

    private List<ConfigVersion> Read(string where, params (string Name, object Value)[] parameters)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT number, time, who, comment, document FROM versions " + where;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        using var r = cmd.ExecuteReader();
        var list = new List<ConfigVersion>();
        while (r.Read()) list.Add(new ConfigVersion(r.GetInt32(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1)), r.GetString(2), r.GetString(3), r.GetString(4)));
        return list;
    }

    public ConfigVersion? Latest() { lock (_gate) return Read("ORDER BY number DESC LIMIT 1").FirstOrDefault(); }

    public int LatestNumber()
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT COALESCE(MAX(number), 0) FROM versions";
            return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
    }
    public ConfigVersion? Get(int number) { lock (_gate) return Read("WHERE number=$n", ("$n", number)).FirstOrDefault(); }
    public IReadOnlyList<ConfigVersion> List() { lock (_gate) return Read("ORDER BY number"); }

    public ConfigVersion Add(string who, string comment, string document)
    {
        lock (_gate)
        {
            using var tx = _connection.BeginTransaction();
            using var cmd = _connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO versions(number, time, who, comment, document) VALUES((SELECT COALESCE(MAX(number), 0) + 1 FROM versions), $t, $w, $c, $d) RETURNING number, time";
            var now = DateTimeOffset.UtcNow;
            cmd.Parameters.AddWithValue("$t", now.ToUnixTimeMilliseconds());
            cmd.Parameters.AddWithValue("$w", who);
            cmd.Parameters.AddWithValue("$c", comment);
            cmd.Parameters.AddWithValue("$d", document);
            int number;
            using (var r = cmd.ExecuteReader()) { r.Read(); number = r.GetInt32(0); }
            using var clear = _connection.CreateCommand();
            clear.Transaction = tx;
            clear.CommandText = "DELETE FROM staged";
            clear.ExecuteNonQuery();
            tx.Commit();
            return new ConfigVersion(number, DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()), who, comment, document);
        }
    }

    public (string Document, string Who, DateTimeOffset Time)? Staged()
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT document, who, time FROM staged WHERE id=1";
            using var r = cmd.ExecuteReader();
            return r.Read() ? (r.GetString(0), r.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2))) : null;
        }
    }

    public void Stage(string document, string who)
    {
        lock (_gate) Exec("INSERT OR REPLACE INTO staged(id, document, who, time) VALUES(1, $d, $w, $t)", ("$d", document), ("$w", who), ("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    }

    public void ClearStaged() { lock (_gate) Exec("DELETE FROM staged"); }

    public IReadOnlyList<OperatorHold> Holds()
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT kind, target, who, since FROM holds ORDER BY kind, target";
            using var r = cmd.ExecuteReader();
            var list = new List<OperatorHold>();
            while (r.Read()) list.Add(new OperatorHold(r.GetString(0), r.GetString(1), r.GetString(2), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3))));
            return list;
        }
    }

    public void SetHold(string kind, string target, string who, bool on, string member = "")
    {
        lock (_gate)
        {
            if (on) Exec("INSERT OR REPLACE INTO holds VALUES($k, $t, $w, $s)", ("$k", kind), ("$t", target.ToLowerInvariant()), ("$w", who), ("$s", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            else Exec("DELETE FROM holds WHERE kind=$k AND target=$t", ("$k", kind), ("$t", target.ToLowerInvariant()));
        }
    }

    public void Dispose() => _connection.Dispose();
}

/// <summary>
/// The application service for configuration: staged changes, commit with validation,
/// versions, diff, rollback, import and export. The CLI calls it now; the web interface and
/// the cluster members will call the same service. No rule lives in a command handler.
/// </summary>
/// <param name="machineChecks">Checks against this machine run at commit (files, stored certificates): one line per problem.</param>
public sealed class ConfigService(IConfigStore store, Func<PosternConfig, IReadOnlyList<string>>? machineChecks = null)
{
    public static string CurrentUser => Environment.UserName is { Length: > 0 } u ? u : "unknown";

    /// <summary>This machine's own file: in a cluster its machine-level settings override committed versions (Cluster.MachineSettings).</summary>
    public PosternConfig? Machine { get; init; }

    /// <summary>The committed configuration in force on this machine (null before the first commit).</summary>
    public PosternConfig? Committed() => store.Latest() is { } v ? Cluster.MachineSettings.Apply(PosternConfig.Parse(v.Document, $"version {v.Number}"), Machine) : null;

    private static string Document(PosternConfig config) => Cluster.MachineSettings.SharedDocument(config);

    /// <summary>What changes apply to: the staged document, else the committed one, else the given base; always a fresh copy to change.</summary>
    public PosternConfig Working(PosternConfig fallback)
    {
        if (store.Staged() is { } staged) return PosternConfig.Parse(staged.Document, "staged changes", validate: false);
        return Committed() ?? PosternConfig.Parse(fallback.ToJson(), "configuration", validate: false);
    }

    public bool HasStagedChanges => store.Staged() is not null;

    /// <summary>Stages a changed configuration (validated when committed, not now: a change may need a second one to be valid).</summary>
    public void Stage(PosternConfig config, string? who = null) => store.Stage(Document(config), who ?? CurrentUser);

    public void ClearChanges() => store.ClearStaged();

    /// <summary>Validates the staged document and commits it as a new version; throws ConfigException with one line per problem.</summary>
    public ConfigVersion Commit(string comment, string? who = null)
    {
        var staged = store.Staged() ?? throw new ConfigException("there are no staged changes to commit");
        var config = PosternConfig.Parse(staged.Document, "staged changes");   // validates, or throws with the reasons
        if (machineChecks?.Invoke(Cluster.MachineSettings.Apply(config, Machine)) is { Count: > 0 } problems)
            throw new ConfigException("invalid configuration:\n  - " + string.Join("\n  - ", problems));
        var document = Document(config);
        if (store.Latest() is { } latest && latest.Document == document)
        {
            store.ClearStaged();
            throw new ConfigException($"the staged changes are identical to version {latest.Number}; nothing committed");
        }
        return store.Add(who ?? CurrentUser, comment, document);
    }

    /// <summary>
    /// The configuration `serve --config FILE` runs with: the file, committed as a new version
    /// when it changed since it was last imported (editing the file and restarting is the
    /// Postfix habit); else the latest committed version, which keeps commits made since with
    /// the CLI. Returns the configuration and the version committed now, if any.
    /// </summary>
    public (PosternConfig Config, ConfigVersion? Committed) FromFile(PosternConfig fromFile, string path, string? who = null)
    {
        fromFile.Validate();
        var document = Document(fromFile);
        var member = Cluster.Stores.MemberName(fromFile);
        var comment = member.Length > 0 ? $"imported from {path} on member {member}" : $"imported from {path}";
        var lastImport = store.List().LastOrDefault(v => v.Comment == comment);
        var latest = store.Latest();
        PosternConfig InForce(ConfigVersion v) => Cluster.MachineSettings.Apply(PosternConfig.Parse(v.Document, $"version {v.Number}"), fromFile);
        if (lastImport is not null && lastImport.Document == document && latest is not null) return (InForce(latest), null);
        if (latest is not null && latest.Document == document) return (fromFile, null);
        // A member joining a cluster that already has versions runs them: its file does not
        // overwrite what the others committed (its machine-level settings still apply).
        if (member.Length > 0 && lastImport is null && latest is not null)
        {
            var inForce = InForce(latest);
            if (Document(inForce) == document) return (inForce, null);   // differs only in this machine's own settings
            Ignored = $"the cluster's configuration version {latest.Number} is in force; the shared settings in {path} differ and were not committed (postern config import commits a file)";
            return (InForce(latest), null);
        }
        var v = store.Add(who ?? CurrentUser, comment, document);
        return (fromFile, v);
    }

    /// <summary>Commits a whole document at once, bypassing the staged changes (migrations made by Postern itself).</summary>
    public ConfigVersion CommitDirectly(PosternConfig config, string who, string comment)
    {
        config.Validate();
        return store.Add(who, comment, Document(config));
    }

    /// <summary>Set by FromFile when a cluster member's file was not committed (its shared settings differ from the version in force).</summary>
    public string? Ignored { get; private set; }

    public IReadOnlyList<ConfigVersion> Versions() => store.List();
    public ConfigVersion? Version(int number) => store.Get(number);

    /// <summary>Stages version N's content; commit applies it.</summary>
    public void Rollback(int number, string? who = null)
    {
        var v = store.Get(number) ?? throw new ConfigException($"there is no configuration version {number}");
        store.Stage(v.Document, who ?? CurrentUser);
    }

    /// <summary>A line diff of two documents (version numbers; 0 = the staged changes).</summary>
    public IReadOnlyList<string> Diff(int from, int? to)
    {
        string Doc(int n) => n == 0
            ? (store.Staged()?.Document ?? throw new ConfigException("there are no staged changes"))
            : (store.Get(n)?.Document ?? throw new ConfigException($"there is no configuration version {n}"));
        // Without a second version: the staged changes against what is committed, or a version against the staged changes (else the latest).
        if (to is null && from == 0) return LineDiff.Unified((store.Latest()?.Document ?? "").Split('\n'), Doc(0).Split('\n'));
        var a = Doc(from).Split('\n');
        var b = to is { } t ? Doc(t).Split('\n') : (store.Staged()?.Document ?? store.Latest()?.Document ?? "").Split('\n');
        return LineDiff.Unified(a, b);
    }
}

/// <summary>A small longest-common-subsequence line diff ("-" removed, "+" added, context kept short).</summary>
public static class LineDiff
{
    public static IReadOnlyList<string> Unified(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        // Documents are a few hundred lines: the quadratic table is fine and bounded.
        if ((long)a.Count * b.Count > 4_000_000) return ["(documents too large to diff line by line)"];
        var lcs = new int[a.Count + 1, b.Count + 1];
        for (var i = a.Count - 1; i >= 0; i--)
            for (var j = b.Count - 1; j >= 0; j--)
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
        var output = new List<string>();
        int x = 0, y = 0;
        while (x < a.Count || y < b.Count)
        {
            if (x < a.Count && y < b.Count && a[x] == b[y]) { x++; y++; continue; }
            if (y < b.Count && (x == a.Count || lcs[x, y + 1] >= lcs[x + 1, y])) output.Add("+" + b[y++]);
            else output.Add("-" + a[x++]);
        }
        return output;
    }
}
