using System.CommandLine;
using System.Text.Json;
using Postern.Cluster;

namespace Postern.Admin;

/// <summary>`postern cluster status`: the members of the cluster this machine's configuration names, from the shared store.</summary>
public static class ClusterCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var cluster = new Command("cluster", "The cluster this machine belongs to (a shared PostgreSQL store)");
        var status = new Command("status", "Members, their listeners, their share of deliveries and their last heartbeat") { configOption, jsonOption };
        status.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            if (config.Cluster is not { } settings)
            {
                Console.Error.WriteLine("postern: this configuration has no cluster section: the machine runs alone on SQLite in its data directory");
                return 2;
            }
            try
            {
                var db = PostgresDatabase.For(settings);
                var lease = TimeSpan.FromSeconds(settings.LeaseSeconds);
                var members = ClusterMembership.Members(db, lease);
                await using var queue = Stores.Queue(config);
                var (messages, recipients, _) = await queue.StatsAsync();
                using var versions = Stores.Config(config);
                var latest = versions.LatestNumber();
                var delivered = Math.Max(1, members.Sum(m => m.Delivered));
                if (p.GetValue(jsonOption))
                {
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        store = db.Display, schemaVersion = db.SchemaVersion, configVersion = latest,
                        queue = new { messages, pendingRecipients = recipients },
                        members = members.Select(m => new
                        {
                            m.Name, m.Hostname, m.Pid, m.Alive, m.Started, m.Heartbeat, secondsSinceHeartbeat = Math.Round(m.SinceHeartbeat.TotalSeconds, 1),
                            m.Stopped, m.Software, m.ConfigVersion, m.Listeners, m.Accepted, m.Delivered, m.TakenOver,
                            deliveryShare = Math.Round((double)m.Delivered / delivered, 3),
                        }),
                    }, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true }));
                    return 0;
                }
                Console.WriteLine($"Cluster store {db.Display} (schema {db.SchemaVersion}); configuration version {latest}; queue: {messages} message(s), {recipients} pending recipient(s)");
                if (members.Count == 0) Console.WriteLine("  no member has started yet");
                foreach (var m in members)
                {
                    var state = m.Alive ? "up" : m.Stopped is { } s ? $"stopped {s.UtcDateTime:u}" : "DOWN (no heartbeat)";
                    Console.WriteLine($"  {m.Name} ({m.Hostname}, pid {m.Pid}): {state}; last heartbeat {m.SinceHeartbeat.TotalSeconds:0.0} s ago; " +
                        $"configuration version {m.ConfigVersion}{(m.Alive && m.ConfigVersion != latest ? " (NOT the latest)" : "")}");
                    Console.WriteLine($"      accepted {m.Accepted}, delivered {m.Delivered} recipient(s) ({100.0 * m.Delivered / delivered:0.#}% of the cluster's), took over {m.TakenOver} message(s)");
                    foreach (var l in m.Listeners) Console.WriteLine($"      listener {l}");
                }
                return 0;
            }
            catch (Exception e) when (e is ConfigException or Npgsql.NpgsqlException or TimeoutException)
            {
                Console.Error.WriteLine($"postern: {e.Message}");
                return 1;
            }
        });
        cluster.Subcommands.Add(status);
        return cluster;
    }

    /// <summary>`postern store migrate --to postgres CONNECTION`: a single machine's stores into a cluster database.</summary>
    public static Command BuildStore(Option<FileInfo?> configOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var store = new Command("store", "Where this machine keeps its queue and configuration");
        var to = new Option<string>("--to") { Description = "The kind of store to move to: postgres", Required = true, HelpName = "KIND" };
        var connection = new Argument<string>("connection") { Description = "Npgsql connection string of the (empty) cluster database, without the password" };
        var passwordFile = new Option<FileInfo?>("--password-file") { Description = "File holding the database password" };
        var member = new Option<string?>("--member") { Description = "This machine's member name (default: its hostname)" };
        var migrate = new Command("migrate", "Move the queue, configuration versions, holds, certificates and MTA-STS cache into a cluster database")
            { to, connection, passwordFile, member, configOption };
        migrate.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            if (p.GetValue(to) != "postgres") { Console.Error.WriteLine("postern: --to must be postgres"); return 2; }
            var target = new ClusterSettings
            {
                Postgres = p.GetValue(connection) ?? "", PasswordFile = p.GetValue(passwordFile)?.FullName, Member = p.GetValue(member) ?? "",
            };
            var errors = new List<string>();
            target.Validate(errors);
            if (errors.Count > 0) { Console.Error.WriteLine("postern: " + string.Join("; ", errors)); return 2; }
            try
            {
                var report = await StoreMigration.ToPostgresAsync(config, target, Console.Out);
                Console.WriteLine($"Migrated in {report.Elapsed.TotalSeconds:0.0} s: {report.Messages} message(s) with {report.Recipients} pending recipient(s), " +
                    $"{report.Versions} configuration version(s), {report.Holds} hold(s), {report.Certificates} certificate(s), {report.StsPolicies} MTA-STS policies.");
                Console.WriteLine($"The SQLite queue was renamed to {report.MovedQueueTo}.");
                Console.WriteLine("Add this section to the configuration file before starting the gateway again (and copy secrets/certificate-store.key to every other member):");
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { cluster = target }, PosternConfig.JsonOptions));
                return 0;
            }
            catch (Exception e) when (e is ConfigException or Npgsql.NpgsqlException or Security.CertificateException or InvalidOperationException)
            {
                Console.Error.WriteLine($"postern: {e.Message}");
                return 1;
            }
        });
        store.Subcommands.Add(migrate);
        return store;
    }
}
