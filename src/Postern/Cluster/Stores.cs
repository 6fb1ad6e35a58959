using Postern.Admin;
using Postern.Queue;

namespace Postern.Cluster;

/// <summary>
/// Which store a configuration uses: SQLite files in the data directory for one machine, the
/// shared PostgreSQL database when the configuration has a cluster section. Every command,
/// the daemon and the web interface open their stores here, so they always agree.
/// </summary>
public static class Stores
{
    public static bool IsCluster(PosternConfig config) => config.Cluster is not null;

    /// <summary>This machine's member name: cluster.member, else the hostname; "" on a single machine.</summary>
    public static string MemberName(PosternConfig config) =>
        config.Cluster is { } c ? (c.Member.Length > 0 ? c.Member : config.Hostname) : "";

    public static IConfigStore Config(PosternConfig config) => config.Cluster is { } c
        ? new PostgresConfigStore(PostgresDatabase.For(c))
        : new SqliteConfigStore(SqliteConfigStore.PathFor(Path.GetFullPath(config.DataDirectory)));

    public static IQueueStore Queue(PosternConfig config) => config.Cluster is { } c
        ? new PostgresQueueStore(PostgresDatabase.For(c), MemberName(config), TimeSpan.FromSeconds(c.LeaseSeconds))
        : new SqliteQueueStore(Gateway.StorePath(Path.GetFullPath(config.DataDirectory)));

    public static Security.IStsPolicyCache StsCache(PosternConfig config) => config.Cluster is { } c
        ? new PostgresStsPolicyCache(PostgresDatabase.For(c))
        : new Security.SqliteStsPolicyCache(Security.SqliteStsPolicyCache.PathFor(Path.GetFullPath(config.DataDirectory)));

    public static Observability.ITlsRptStore TlsRpt(PosternConfig config) => config.Cluster is { } c
        ? new PostgresTlsRptStore(PostgresDatabase.For(c))
        : new Observability.SqliteTlsRptStore(Observability.SqliteTlsRptStore.PathFor(Path.GetFullPath(config.DataDirectory)));

    /// <summary>The TLS reports received from other organisations (RFC 8460).</summary>
    public static Observability.ITlsRptInbox TlsRptInbox(PosternConfig config) => config.Cluster is { } c
        ? new PostgresTlsRptInbox(PostgresDatabase.For(c))
        : new Observability.SqliteTlsRptInbox(Observability.SqliteTlsRptInbox.PathFor(Path.GetFullPath(config.DataDirectory)));

    /// <summary>A configuration service on this machine's configuration store, seeing committed versions with this machine's own settings.</summary>
    public static ConfigService ConfigService(IConfigStore store, PosternConfig local, Func<PosternConfig, IReadOnlyList<string>>? machineChecks = null) =>
        new(store, machineChecks) { Machine = local };
}

/// <summary>
/// Settings that belong to a machine, not to the cluster: in a cluster they come from each
/// member's own file and override what a committed version says. They are the cluster
/// section itself, the hostname, the data directory, each listener's address and port (by
/// listener name), and where the web interface and the metrics endpoint listen. On a single
/// machine nothing is overridden: the committed version is the whole truth.
/// </summary>
public static class MachineSettings
{
    public static readonly string[] Fields =
        ["cluster", "hostname", "dataDirectory", "listeners[].address/port (by name)", "web.address/port", "metrics.address/port"];

    /// <summary>The committed configuration as this machine runs it.</summary>
    public static PosternConfig Apply(PosternConfig committed, PosternConfig? local)
    {
        if (local?.Cluster is null) return committed;
        var mine = PosternConfig.Parse(committed.ToJson(), "committed configuration", validate: false);
        mine.Cluster = local.Cluster;
        mine.Hostname = local.Hostname;
        mine.DataDirectory = local.DataDirectory;
        foreach (var listener in mine.Listeners)
            if (local.Listeners.FirstOrDefault(l => l.Name.Equals(listener.Name, StringComparison.OrdinalIgnoreCase)) is { } own)
            {
                listener.Address = own.Address;
                listener.Port = own.Port;
            }
        (mine.Web.Address, mine.Web.Port) = (local.Web.Address, local.Web.Port);
        (mine.Metrics.Address, mine.Metrics.Port) = (local.Metrics.Address, local.Metrics.Port);
        return mine;
    }

    /// <summary>The document stored for everyone: without this machine's cluster section (its connection and name stay local).</summary>
    public static string SharedDocument(PosternConfig config)
    {
        if (config.Cluster is null) return config.ToJson();
        var node = System.Text.Json.Nodes.JsonNode.Parse(config.ToJson())!.AsObject();
        node.Remove("cluster");
        return System.Text.Json.JsonSerializer.Serialize(node, PosternConfig.JsonOptions);
    }
}
