using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using Postern.Admin;
using Postern.Queue;
using Postern.Security;

namespace Postern.Cluster;

/// <summary>What a migration moved, and how long it took.</summary>
public sealed record MigrationReport(int Messages, int Recipients, int Versions, int Holds, int Certificates, int StsPolicies, TimeSpan Elapsed, string MovedQueueTo);

/// <summary>
/// `postern store migrate --to postgres`: moves one machine's queue, configuration versions
/// (with their numbers, authors and times), staged changes, holds, certificates and MTA-STS
/// cache into an empty cluster database. The gateway must be stopped. Nothing is lost: every
/// message is copied and counted before the SQLite queue is renamed out of the way (so a
/// machine started again without its cluster section cannot deliver the same messages twice).
/// </summary>
public static class StoreMigration
{
    public static async Task<MigrationReport> ToPostgresAsync(PosternConfig single, ClusterSettings target, TextWriter progress)
    {
        if (single.Cluster is not null) throw new ConfigException("this configuration already names a cluster; migrate from a single machine's configuration");
        var data = Path.GetFullPath(single.DataDirectory);
        if (OperatorCommands.RunningStatus(data) is not null) throw new ConfigException($"a gateway is running on {data}: stop it first (postern serve must not write while its queue moves)");
        var queuePath = Gateway.StorePath(data);
        if (!File.Exists(queuePath)) throw new ConfigException($"no queue at {queuePath}");
        var clock = Stopwatch.StartNew();
        var db = PostgresDatabase.For(target);
        var member = target.Member.Length > 0 ? target.Member : single.Hostname;
        var clustered = PosternConfig.Parse(single.ToJson(), "configuration", validate: false);
        clustered.Cluster = target;

        await using (var check = db.Source.CreateCommand("SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM config_versions)"))
            if ((long)(await check.ExecuteScalarAsync().ConfigureAwait(false))! > 0)
                throw new ConfigException($"cluster store {db.Display} is not empty (it has messages or configuration versions); migrate into a new database");

        // Configuration first: versions as they were, then what was staged, then the holds.
        int versions, holds;
        using (var from = new SqliteConfigStore(SqliteConfigStore.PathFor(data)))
        {
            var to = new PostgresConfigStore(db);
            var all = from.List();
            foreach (var v in all) to.AddExact(v);
            if (from.Staged() is { } staged) to.Stage(staged.Document, staged.Who);
            foreach (var h in from.Holds()) to.SetHold(h.Kind, h.Target, h.Who, on: true, member);
            (versions, holds) = (all.Count, from.Holds().Count);
        }
        progress.WriteLine($"configuration: {versions} version(s), {holds} hold(s)");

        // The queue: IDs first (the cluster never hands out one this machine used), then every message with its body.
        int messages = 0, recipients = 0;
        await using (var to = new PostgresQueueStore(db, member, TimeSpan.FromSeconds(target.LeaseSeconds)))
        {
            await to.RaiseSequencesAsync(ReadSequences(queuePath)).ConfigureAwait(false);
            await using var from = new SqliteQueueStore(queuePath);
            var all = await from.ListAsync().ConfigureAwait(false);
            var gate = new SemaphoreSlim(64);   // enough in flight for the group commit to batch
            var copies = all.Select(async m =>
            {
                await gate.WaitAsync().ConfigureAwait(false);
                try
                {
                    var body = await from.ReadBodyAsync(m.Mid).ConfigureAwait(false) ?? throw new InvalidOperationException($"MID {m.Mid} has no body");
                    await to.EnqueueAsync(m, body).ConfigureAwait(false);
                    Interlocked.Add(ref recipients, m.Recipients.Count(r => !r.IsFinal));
                    if (Interlocked.Increment(ref messages) % 5000 == 0) progress.WriteLine($"queue: {messages} of {all.Count} message(s)");
                }
                finally { gate.Release(); }
            }).ToList();
            await Task.WhenAll(copies).ConfigureAwait(false);
            var (inCluster, _, _) = await to.StatsAsync().ConfigureAwait(false);
            if (inCluster != all.Count) throw new InvalidOperationException($"{all.Count} messages read but {inCluster} in the cluster store; the SQLite queue is left as it was");
        }
        progress.WriteLine($"queue: {messages} message(s), {recipients} pending recipient(s)");

        int certificates;
        using (var from = new SqliteCertificateRows(data))
        {
            var to = new PostgresCertificateRows(db, member);
            var keyPath = Path.Combine(data, "secrets", "certificate-store.key");
            if (File.Exists(keyPath)) to.KnowSealingKey(CertificateStore.SealingKeyCheck(File.ReadAllBytes(keyPath)), keyPath);
            var rows = from.All().ToList();
            foreach (var row in rows) to.Save(row, replace: true);
            to.Bump();
            certificates = rows.Count;
        }
        int policies;
        using (var from = new SqliteStsPolicyCache(SqliteStsPolicyCache.PathFor(data)))
        using (var to = new PostgresStsPolicyCache(db))
        {
            var entries = from.List();
            foreach (var e in entries) to.Put(e);
            policies = entries.Count;
        }
        progress.WriteLine($"certificates: {certificates}; MTA-STS policies: {policies}");

        // Out of the way, never deleted: the cluster holds the queue now.
        SqliteConnection.ClearAllPools();
        var moved = queuePath + ".migrated-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var suffix in new[] { "", "-wal", "-shm" })
            if (File.Exists(queuePath + suffix)) File.Move(queuePath + suffix, moved + suffix);
        return new MigrationReport(messages, recipients, versions, holds, certificates, policies, clock.Elapsed, moved);
    }

    private static Dictionary<string, long> ReadSequences(string queuePath)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = queuePath, Mode = SqliteOpenMode.ReadOnly }.ToString());
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT name, next FROM sequences";
        using var r = cmd.ExecuteReader();
        var result = new Dictionary<string, long>();
        while (r.Read()) result[r.GetString(0)] = r.GetInt64(1);
        return result;
    }
}
