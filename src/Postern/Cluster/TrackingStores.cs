using Microsoft.Data.Sqlite;
using Npgsql;
using Postern.Admin;
using Postern.Observability;

namespace Postern.Cluster;

/// <summary>
/// Which message tracking store a configuration uses: SQLite in the data directory on one
/// machine, the cluster's PostgreSQL database when the configuration has a cluster section
/// (every member writes there, so a message accepted by one member and delivered by another
/// has one story). The gateway, `postern track` and the web pages open it here, so they agree.
/// </summary>
public static class TrackingStores
{
    /// <summary>Where this configuration's tracking records are, in words for messages (never with a password).</summary>
    public static string Location(PosternConfig config, string dataDirectory) => config.Cluster is { } c
        ? $"the cluster database {new NpgsqlConnectionStringBuilder(c.Postgres) { Password = null }.ConnectionString}"
        : SqliteTrackingStore.PathFor(dataDirectory);

    /// <summary>The gateway's store, created (schema or file) when it is not there yet.</summary>
    public static ITrackingStore OpenForWriting(PosternConfig config, string dataDirectory) => config.Cluster is { } c
        ? new PostgresTrackingStore(PostgresDatabase.For(c), Stores.MemberName(config))
        : SqliteTrackingStore.OpenForWriting(SqliteTrackingStore.PathFor(dataDirectory));

    /// <summary>A store to search (the CLI, the web pages); null when this machine has not tracked anything yet (no SQLite file).</summary>
    public static ITrackingStore? OpenForReading(PosternConfig config, string dataDirectory)
    {
        if (config.Cluster is { } c) return new PostgresTrackingStore(PostgresDatabase.For(c), Stores.MemberName(config));
        var path = SqliteTrackingStore.PathFor(dataDirectory);
        return File.Exists(path) ? SqliteTrackingStore.OpenForReading(path) : null;
    }

    /// <summary>Whether an exception means the store cannot be opened or read (a file, the database server), as opposed to a bug.</summary>
    public static bool IsUnavailable(Exception e) =>
        e is SqliteException or IOException or UnauthorizedAccessException or NpgsqlException or ConfigException or TimeoutException;
}
