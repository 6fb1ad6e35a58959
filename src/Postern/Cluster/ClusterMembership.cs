using System.Text.Json;
using Npgsql;
using Postern.Observability;

namespace Postern.Cluster;

/// <summary>One member as the shared store knows it (`postern cluster status`, the web page).</summary>
public sealed record MemberStatus(string Name, string Hostname, int Pid, DateTimeOffset Started, DateTimeOffset Heartbeat,
    DateTimeOffset? Stopped, string Software, int ConfigVersion, IReadOnlyList<string> Listeners, long Accepted, long Delivered, long TakenOver,
    bool Alive, TimeSpan SinceHeartbeat);

/// <summary>
/// A member's presence in the cluster: it registers under its name, beats every few seconds
/// (with its listeners, configuration version and counts), and renews the leases of the
/// messages it is delivering with the same beat. A member whose beat stops is shown as down;
/// its claims lapse after the lease and other members take its work over.
/// </summary>
public sealed class ClusterMembership : IAsyncDisposable
{
    private readonly PostgresDatabase _db;
    private readonly PostgresQueueStore _queue;
    private readonly string _member;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly (long Accepted, long Delivered, long TakenOver) _before;
    private readonly MailCounters _counters;
    private readonly Func<int> _configVersion;

    /// <summary>How often a member beats: often enough that its leases never lapse while it lives.</summary>
    public static TimeSpan BeatInterval(TimeSpan lease) => TimeSpan.FromMilliseconds(Math.Min(5000, lease.TotalMilliseconds / 4));

    private ClusterMembership(PostgresQueueStore queue, PostgresConnectionSlots slots, Func<IReadOnlyCollection<long>> inFlight, string hostname, MailCounters counters, Func<IReadOnlyList<string>> listeners,
        Func<int> configVersion, MailEventStream events, TimeSpan lease)
    {
        _db = queue.Database;
        _queue = queue;
        _member = queue.Member;
        _counters = counters;
        _configVersion = configVersion;
        using (var cmd = _db.Source.CreateCommand($"""
            INSERT INTO members(name, hostname, pid, started, heartbeat, software)
            VALUES($1, $2, $3, {PostgresDatabase.NowMs}, {PostgresDatabase.NowMs}, $4)
            ON CONFLICT(name) DO UPDATE SET hostname=excluded.hostname, pid=excluded.pid, started=excluded.started,
              heartbeat=excluded.heartbeat, stopped=NULL, software=excluded.software
            RETURNING accepted, delivered, taken_over
            """))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = _member });
            cmd.Parameters.Add(new NpgsqlParameter { Value = hostname });
            cmd.Parameters.Add(new NpgsqlParameter { Value = Environment.ProcessId });
            cmd.Parameters.Add(new NpgsqlParameter { Value = typeof(ClusterMembership).Assembly.GetName().Version?.ToString() ?? "?" });
            using var r = cmd.ExecuteReader();
            r.Read();
            _before = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2));
        }
        // This member's previous process is gone (a member name runs once): its claims go back at once.
        var released = _queue.ReleaseClaimsOfPreviousRunAsync().GetAwaiter().GetResult();
        using (var clear = _db.Source.CreateCommand("DELETE FROM connection_slots WHERE member=$1"))
        {
            clear.Parameters.Add(new NpgsqlParameter { Value = _member });
            clear.ExecuteNonQuery();
        }
        events.Publish(new ClusterMemberStarted(_member, _db.Display, released));
        var interval = BeatInterval(lease);
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try { await Task.Delay(interval, _stop.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
                try
                {
                    await _queue.RenewLeasesAsync(inFlight()).ConfigureAwait(false);
                    await slots.RenewAsync().ConfigureAwait(false);
                    await BeatAsync(listeners()).ConfigureAwait(false);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
                {
                    // The store is unreachable: nothing can be claimed or recorded either; say so, keep trying.
                    events.Publish(new SystemWarning($"cluster member {_member}: heartbeat failed: {e.Message}"));
                }
            }
        });
    }

    public static ClusterMembership Start(PostgresQueueStore queue, PostgresConnectionSlots slots, Func<IReadOnlyCollection<long>> inFlight, string hostname,
        MailCounters counters, Func<IReadOnlyList<string>> listeners, Func<int> configVersion, MailEventStream events, TimeSpan lease) =>
        new(queue, slots, inFlight, hostname, counters, listeners, configVersion, events, lease);

    private async Task BeatAsync(IReadOnlyList<string> listeners)
    {
        var (counters, configVersion) = (_counters, _configVersion());
        await using var cmd = _db.Control.CreateCommand($"""
            UPDATE members SET heartbeat={PostgresDatabase.NowMs}, listeners=$2, config_version=$3, accepted=$4, delivered=$5, taken_over=$6 WHERE name=$1
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = _member });
        cmd.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(listeners) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = configVersion });
        cmd.Parameters.Add(new NpgsqlParameter { Value = _before.Accepted + counters.Get(nameof(MessageQueued)) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = _before.Delivered + counters.Get(nameof(RecipientResponse)) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = _before.TakenOver + counters.Get(nameof(MessageTakenOver)) });
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <summary>Every member the store knows, alive ones first; alive = a beat within three beat intervals.</summary>
    public static IReadOnlyList<MemberStatus> Members(PostgresDatabase db, TimeSpan lease)
    {
        var grace = (long)BeatInterval(lease).TotalMilliseconds * 3;
        using var cmd = db.Source.CreateCommand($"""
            SELECT name, hostname, pid, started, heartbeat, stopped, software, config_version, listeners, accepted, delivered, taken_over,
              {PostgresDatabase.NowMs} - heartbeat FROM members ORDER BY name
            """);
        using var r = cmd.ExecuteReader();
        var list = new List<MemberStatus>();
        while (r.Read())
        {
            var since = r.GetInt64(12);
            var stopped = r.IsDBNull(5) ? (DateTimeOffset?)null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5));
            list.Add(new MemberStatus(r.GetString(0), r.GetString(1), r.GetInt32(2), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), stopped, r.GetString(6), r.GetInt32(7),
                JsonSerializer.Deserialize<List<string>>(r.GetString(8)) ?? [], r.GetInt64(9), r.GetInt64(10), r.GetInt64(11),
                Alive: stopped is null && since <= grace, SinceHeartbeat: TimeSpan.FromMilliseconds(Math.Max(0, since))));
        }
        return list;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
        try
        {
            await BeatAsync([]).ConfigureAwait(false);   // the last counts; no listeners any more
            await using var cmd = _db.Source.CreateCommand($"UPDATE members SET stopped={PostgresDatabase.NowMs} WHERE name=$1");
            cmd.Parameters.Add(new NpgsqlParameter { Value = _member });
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException) { /* shown as down after the grace */ }
    }
}
