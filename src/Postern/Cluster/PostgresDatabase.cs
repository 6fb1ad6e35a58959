using System.Collections.Concurrent;
using Npgsql;
using Postern.Admin;

namespace Postern.Cluster;

/// <summary>
/// The shared PostgreSQL database of a cluster: one connection pool per process, the schema
/// created and migrated by Postern (numbered steps, applied under an advisory lock so members
/// starting together do not race), and the database clock, which leases and heartbeats use
/// so that members' clocks never decide who owns a message.
/// </summary>
public sealed class PostgresDatabase
{
    private static readonly ConcurrentDictionary<string, Lazy<PostgresDatabase>> Open = new();

    public NpgsqlDataSource Source { get; }
    /// <summary>
    /// A small pool of its own for heartbeats and lease renewal: a member busy with hundreds of
    /// deliveries must never starve its own renewals (its claims would lapse under it).
    /// </summary>
    public NpgsqlDataSource Control { get; }
    /// <summary>
    /// For soft state (connection slots, rate windows): commits that do not wait for the WAL
    /// flush. A member's crash cannot lose them (the server has them); only the database
    /// server's own crash could, and then leases and windows simply start afresh. Taking a slot
    /// holds a per-destination lock, so a flush inside it would serialise every connection.
    /// </summary>
    public NpgsqlDataSource Soft { get; }
    /// <summary>The connection string without its password (for messages and status).</summary>
    public string Display { get; }

    /// <summary>Milliseconds since the epoch by the database's clock.</summary>
    public const string NowMs = "postern_now_ms()";

    private PostgresDatabase(NpgsqlDataSource source, NpgsqlDataSource control, NpgsqlDataSource soft, string display)
    {
        Source = source;
        Control = control;
        Soft = soft;
        Display = display;
    }

    /// <summary>The database a cluster configuration names, migrated to the current schema; one per process.</summary>
    public static PostgresDatabase For(ClusterSettings settings)
    {
        var key = settings.Postgres + "\n" + settings.PasswordFile;
        var lazy = Open.GetOrAdd(key, _ => new Lazy<PostgresDatabase>(() => Connect(settings)));
        try { return lazy.Value; }
        catch
        {
            Open.TryRemove(key, out _);   // a later call may find the database up
            throw;
        }
    }

    private static PostgresDatabase Connect(ClusterSettings settings)
    {
        var builder = new NpgsqlConnectionStringBuilder(settings.Postgres);
        if (settings.PasswordFile is { } file)
        {
            try { builder.Password = File.ReadAllText(file).Trim(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException($"cluster.passwordFile {file}: {e.Message}");
            }
        }
        if (!builder.ContainsKey("Timeout")) builder.Timeout = 10;
        if (!builder.ContainsKey("Command Timeout")) builder.CommandTimeout = 30;
        if (!builder.ContainsKey("Maximum Pool Size")) builder.MaxPoolSize = 50;
        // The same few statements run for every message: prepared once per connection, not planned each time.
        if (!builder.ContainsKey("Max Auto Prepare")) builder.MaxAutoPrepare = 64;
        var display = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Password = null }.ConnectionString;
        var source = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = "postern" }.Build();
        const string noFlushWait = "-c synchronous_commit=off";
        var control = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(builder.ConnectionString) { MaxPoolSize = 3, Options = noFlushWait }.ConnectionString) { Name = "postern-control" }.Build();
        var soft = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Options = noFlushWait }.ConnectionString) { Name = "postern-soft" }.Build();
        var db = new PostgresDatabase(source, control, soft, display);
        try { db.Migrate(); }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            source.Dispose();
            control.Dispose();
            soft.Dispose();
            throw new ConfigException($"cluster store {display}: {e.Message}");
        }
        return db;
    }

    /// <summary>The core schema (queue, configuration, holds, members, connection slots), in numbered steps: a step is never edited once released, a change is a new step.</summary>
    private static readonly string[] CoreSteps =
    [
        // 1: queue, configuration versions and operator holds, members.
        """
        CREATE FUNCTION postern_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
          $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
        CREATE TABLE sequences(name text PRIMARY KEY, next bigint NOT NULL);
        CREATE TABLE messages(
          mid bigint PRIMARY KEY, icid bigint NOT NULL, received_at bigint NOT NULL, sender text NOT NULL,
          envid text, ret int NOT NULL, smtputf8 boolean NOT NULL, body_type text NOT NULL, size bigint NOT NULL,
          client_address text NOT NULL, helo text NOT NULL, listener text NOT NULL, bounce_of bigint,
          accepted_by text NOT NULL,
          next_due bigint NOT NULL,            -- the earliest next attempt of a pending recipient
          owner text, lease_until bigint,      -- the member delivering it now, and until when its claim holds
          claims int NOT NULL DEFAULT 0);
        CREATE INDEX messages_due ON messages(next_due);
        CREATE INDEX messages_owner ON messages(owner) WHERE owner IS NOT NULL;
        CREATE TABLE bodies(mid bigint PRIMARY KEY REFERENCES messages ON DELETE CASCADE, body bytea NOT NULL);
        -- Bodies are mostly compressed already or small: no TOAST compression on the hot path.
        ALTER TABLE bodies ALTER COLUMN body SET STORAGE EXTERNAL;
        CREATE TABLE recipients(
          mid bigint NOT NULL REFERENCES messages ON DELETE CASCADE, rid int NOT NULL,
          address text NOT NULL, domain text NOT NULL, orcpt text, notify int NOT NULL, state int NOT NULL,
          attempts int NOT NULL, next_attempt bigint NOT NULL, last_response text,
          in_doubt_since bigint, in_doubt_by text,   -- the final dot went out; its answer was not recorded yet
          PRIMARY KEY(mid, rid));
        CREATE INDEX recipients_domain ON recipients(domain) WHERE state = 0;
        CREATE TABLE config_versions(number int PRIMARY KEY, time bigint NOT NULL, who text NOT NULL, comment text NOT NULL, document text NOT NULL);
        CREATE TABLE config_staged(id int PRIMARY KEY CHECK (id = 1), document text NOT NULL, who text NOT NULL, time bigint NOT NULL);
        CREATE TABLE holds(kind text NOT NULL, target text NOT NULL, member text NOT NULL DEFAULT '', who text NOT NULL, since bigint NOT NULL,
          PRIMARY KEY(kind, target, member));
        CREATE TABLE members(
          name text PRIMARY KEY, hostname text NOT NULL, pid int NOT NULL, started bigint NOT NULL, heartbeat bigint NOT NULL,
          stopped bigint, software text NOT NULL, config_version int NOT NULL DEFAULT 0, listeners text NOT NULL DEFAULT '[]',
          accepted bigint NOT NULL DEFAULT 0, delivered bigint NOT NULL DEFAULT 0, taken_over bigint NOT NULL DEFAULT 0);
        """,
        // 2: connection slots for cluster-wide concurrency limits (held while a connection is open, with a lease).
        """
        CREATE TABLE connection_slots(domain text NOT NULL, member text NOT NULL, slot bigint NOT NULL, lease_until bigint NOT NULL,
          PRIMARY KEY(domain, member, slot));
        """,
        // 3: claims look at unclaimed work and at lapsed claims separately, each through a small partial index.
        """
        DROP INDEX messages_due;
        DROP INDEX messages_owner;
        CREATE INDEX messages_unclaimed ON messages(next_due) WHERE owner IS NULL;
        CREATE INDEX messages_claimed ON messages(lease_until) WHERE owner IS NOT NULL;
        """,
        // 4: taking a connection slot is one call on the server: its per-destination lock is never held across a round trip to a busy member.
        """
        CREATE FUNCTION postern_take_slot(p_domain text, p_member text, p_slot bigint, p_lease bigint, p_limit int) RETURNS boolean
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_advisory_xact_lock(hashtext('postern-slots:' || p_domain));
          DELETE FROM connection_slots WHERE domain = p_domain AND lease_until < postern_now_ms();
          IF (SELECT COUNT(*) FROM connection_slots WHERE domain = p_domain) >= p_limit THEN
            RETURN false;
          END IF;
          INSERT INTO connection_slots(domain, member, slot, lease_until) VALUES(p_domain, p_member, p_slot, postern_now_ms() + p_lease);
          RETURN true;
        END $$;
        """,
    ];

    /// <summary>The core schema's version in this database.</summary>
    public int SchemaVersion { get; private set; }

    private readonly ConcurrentDictionary<string, Lazy<int>> _components = new();

    private void Migrate() => SchemaVersion = EnsureSchema("core", CoreSteps);

    /// <summary>
    /// Brings one component's tables (the core, tracking, certificates …) to its newest step,
    /// once per process; each component keeps its own numbered steps, so a store adds tables
    /// in its own file. Returns the component's version. Throws ConfigException when the
    /// database is newer than this Postern.
    /// </summary>
    public int EnsureSchema(string component, IReadOnlyList<string> steps) =>
        _components.GetOrAdd(component, c => new Lazy<int>(() => MigrateComponent(c, steps))).Value;

    private int MigrateComponent(string component, IReadOnlyList<string> steps)
    {
        using var c = Source.OpenConnection();
        using var tx = c.BeginTransaction();
        Exec(c, tx, "SELECT pg_advisory_xact_lock(7312001)");   // one migrator at a time, across members
        Exec(c, tx, "CREATE TABLE IF NOT EXISTS postern_schema(component text NOT NULL DEFAULT 'core', version int NOT NULL, applied bigint NOT NULL)");
        int current;
        using (var cmd = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM postern_schema WHERE component = @c", c, tx))
        {
            cmd.Parameters.AddWithValue("c", component);
            current = Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        if (current > steps.Count)
            throw new ConfigException($"cluster store {Display}: the {component} schema is at version {current}, newer than this Postern knows ({steps.Count}); upgrade this member");
        for (var v = current + 1; v <= steps.Count; v++)
        {
            Exec(c, tx, steps[v - 1]);
            using var record = new NpgsqlCommand("INSERT INTO postern_schema(component, version, applied) VALUES(@c, @v, (extract(epoch FROM now()) * 1000)::bigint)", c, tx);
            record.Parameters.AddWithValue("c", component);
            record.Parameters.AddWithValue("v", v);
            record.ExecuteNonQuery();
        }
        tx.Commit();
        return steps.Count;
    }

    public static void Exec(NpgsqlConnection c, NpgsqlTransaction? tx, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Milliseconds since the epoch by the database clock.</summary>
    public long Now()
    {
        using var cmd = Source.CreateCommand($"SELECT {NowMs}");
        return (long)cmd.ExecuteScalar()!;
    }
}
