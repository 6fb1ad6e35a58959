using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Postern.Policy;

namespace Postern.Observability;

/// <summary>Sessions of one kind on one UTC day: under one policy, one outcome, between the same hosts.</summary>
public sealed record TlsRptCount(DateOnly Day, TlsRptPolicy Policy, TlsRptResultType? Failure, string SendingIp, string MxHost, string ReceivingIp,
    long Sessions, string Detail);

/// <summary>Where the report of one policy domain and day stands.</summary>
public enum TlsRptReportState { Sending, Sent, NotRequested, Retry, Failed, TooLarge }

/// <summary>The report of one policy domain for one UTC day: claimed by one member, then sent, retried or given up.</summary>
public sealed record TlsRptOutgoing(DateOnly Day, string Domain, string ReportId, string Member, TlsRptReportState State, string Detail,
    int Attempts, DateTimeOffset NextAttempt, byte[]? Payload, IReadOnlyList<string> PostTo, DateTimeOffset Updated);

/// <summary>
/// TLS reporting's store: session counts per policy domain and UTC day (added to, never
/// rewritten, so members of a cluster each add their own sessions once), and the reports made
/// from them. Counts survive restarts; a report is claimed once per domain and day.
/// </summary>
public interface ITlsRptStore : IDisposable
{
    Task AddAsync(IReadOnlyCollection<TlsRptCount> counts);
    Task<IReadOnlyList<TlsRptCount>> CountsAsync(DateOnly day, string? domain = null);
    /// <summary>(day, domain) pairs from <paramref name="from"/> up to, not including, <paramref name="before"/> with counts and no report yet.</summary>
    Task<IReadOnlyList<(DateOnly Day, string Domain)>> UnreportedAsync(DateOnly from, DateOnly before);
    /// <summary>Takes the report of (day, domain) for this member; false when it exists already (another member, or an earlier run).</summary>
    Task<bool> ClaimAsync(TlsRptOutgoing report);
    /// <summary>Writes the report's new state if nobody moved it on since <paramref name="attemptsSeen"/>; false when someone did.</summary>
    Task<bool> UpdateAsync(TlsRptOutgoing report, int attemptsSeen);
    Task<IReadOnlyList<TlsRptOutgoing>> ReportsAsync(DateOnly from);
    /// <summary>Forgets counts and reports of days before <paramref name="before"/>.</summary>
    Task PruneAsync(DateOnly before);
}

/// <summary>
/// One implementation for both databases: the statements are the same SQL (positional $1…
/// parameters, ON CONFLICT upserts); only the schema and how a command is made differ.
/// </summary>
public abstract class TlsRptSqlStore : ITlsRptStore
{
    protected abstract Task<T> RunAsync<T>(string sql, object[] values, Func<DbCommand, Task<T>> run);
    protected abstract Task InTransactionAsync(Func<Func<string, object[], Task>, Task> work);
    public abstract void Dispose();

    private static string DayText(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
    private static DateOnly ParseDay(string s) => DateOnly.ParseExact(s, "yyyy-MM-dd", CultureInfo.InvariantCulture);
    private static string Result(TlsRptResultType? failure) => failure is { } f ? TlsRptNames.Of(f) : "";

    private sealed record StoredPolicy(string Domain, string Type, List<string> Strings, List<string> Mx);

    private static string PolicyJson(TlsRptPolicy p) =>
        JsonSerializer.Serialize(new StoredPolicy(p.PolicyDomain, TlsRptNames.Of(p.Type), [.. p.Strings], [.. p.MxHosts]));

    private static TlsRptPolicy Policy(string json)
    {
        var s = JsonSerializer.Deserialize<StoredPolicy>(json)!;
        var type = Enum.GetValues<TlsRptPolicyType>().First(t => TlsRptNames.Of(t) == s.Type);
        return new TlsRptPolicy(s.Domain, type, s.Strings, s.Mx);
    }

    public Task AddAsync(IReadOnlyCollection<TlsRptCount> counts) => counts.Count == 0 ? Task.CompletedTask : InTransactionAsync(async exec =>
    {
        // In key order: members adding the same rows at once lock them in the same order (no deadlock in PostgreSQL).
        foreach (var c in counts.OrderBy(c => DayText(c.Day), StringComparer.Ordinal).ThenBy(c => c.Policy.PolicyDomain, StringComparer.Ordinal)
                     .ThenBy(c => c.Policy.Key, StringComparer.Ordinal).ThenBy(c => Result(c.Failure), StringComparer.Ordinal)
                     .ThenBy(c => c.SendingIp, StringComparer.Ordinal).ThenBy(c => c.MxHost, StringComparer.Ordinal).ThenBy(c => c.ReceivingIp, StringComparer.Ordinal))
            await exec("""
                INSERT INTO tlsrpt_counts(day, domain, policy_key, policy, result, sending_ip, mx_host, receiving_ip, sessions, detail)
                VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT(day, domain, policy_key, result, sending_ip, mx_host, receiving_ip) DO UPDATE SET sessions = tlsrpt_counts.sessions + excluded.sessions
                """, [DayText(c.Day), c.Policy.PolicyDomain, c.Policy.Key, PolicyJson(c.Policy), Result(c.Failure), c.SendingIp, c.MxHost, c.ReceivingIp, c.Sessions, c.Detail]).ConfigureAwait(false);
    });

    public Task<IReadOnlyList<TlsRptCount>> CountsAsync(DateOnly day, string? domain = null) =>
        RunAsync<IReadOnlyList<TlsRptCount>>(
            "SELECT day, policy, result, sending_ip, mx_host, receiving_ip, sessions, detail FROM tlsrpt_counts WHERE day = $1 AND ($2 = '' OR domain = $2) ORDER BY domain, policy_key, result, mx_host, receiving_ip, sending_ip",
            [DayText(day), domain?.ToLowerInvariant() ?? ""], async cmd =>
            {
                var list = new List<TlsRptCount>();
                await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
                while (await r.ReadAsync().ConfigureAwait(false))
                {
                    var result = r.GetString(2);
                    list.Add(new TlsRptCount(ParseDay(r.GetString(0)), Policy(r.GetString(1)), result.Length == 0 ? null : TlsRptNames.ResultType(result),
                        r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt64(6), r.GetString(7)));
                }
                return list;
            });

    public Task<IReadOnlyList<(DateOnly Day, string Domain)>> UnreportedAsync(DateOnly from, DateOnly before) =>
        RunAsync<IReadOnlyList<(DateOnly, string)>>("""
            SELECT DISTINCT c.day, c.domain FROM tlsrpt_counts c
            WHERE c.day >= $1 AND c.day < $2 AND NOT EXISTS (SELECT 1 FROM tlsrpt_reports r WHERE r.day = c.day AND r.domain = c.domain)
            ORDER BY c.day, c.domain
            """, [DayText(from), DayText(before)], async cmd =>
            {
                var list = new List<(DateOnly, string)>();
                await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
                while (await r.ReadAsync().ConfigureAwait(false)) list.Add((ParseDay(r.GetString(0)), r.GetString(1)));
                return list;
            });

    private static object[] Row(TlsRptOutgoing o) =>
        [DayText(o.Day), o.Domain, o.ReportId, o.Member, o.State.ToString(), o.Detail, o.Attempts, o.NextAttempt.ToUnixTimeSeconds(),
         (object?)o.Payload ?? DBNull.Value, string.Join("\n", o.PostTo), o.Updated.ToUnixTimeSeconds()];

    public Task<bool> ClaimAsync(TlsRptOutgoing report) =>
        RunAsync("""
            INSERT INTO tlsrpt_reports(day, domain, report_id, member, state, detail, attempts, next_attempt, payload, post_to, updated)
            VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT(day, domain) DO NOTHING
            """, Row(report), async cmd => await cmd.ExecuteNonQueryAsync().ConfigureAwait(false) == 1);

    public Task<bool> UpdateAsync(TlsRptOutgoing report, int attemptsSeen) =>
        RunAsync("""
            UPDATE tlsrpt_reports SET report_id = $3, member = $4, state = $5, detail = $6, attempts = $7, next_attempt = $8, payload = $9, post_to = $10, updated = $11
            WHERE day = $1 AND domain = $2 AND attempts = $12
            """, [.. Row(report), attemptsSeen], async cmd => await cmd.ExecuteNonQueryAsync().ConfigureAwait(false) == 1);

    public Task<IReadOnlyList<TlsRptOutgoing>> ReportsAsync(DateOnly from) =>
        RunAsync<IReadOnlyList<TlsRptOutgoing>>(
            "SELECT day, domain, report_id, member, state, detail, attempts, next_attempt, payload, post_to, updated FROM tlsrpt_reports WHERE day >= $1 ORDER BY day, domain",
            [DayText(from)], async cmd =>
            {
                var list = new List<TlsRptOutgoing>();
                await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
                while (await r.ReadAsync().ConfigureAwait(false))
                    list.Add(new TlsRptOutgoing(ParseDay(r.GetString(0)), r.GetString(1), r.GetString(2), r.GetString(3), Enum.Parse<TlsRptReportState>(r.GetString(4)),
                        r.GetString(5), r.GetInt32(6), DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(7)), r.IsDBNull(8) ? null : (byte[])r.GetValue(8),
                        r.GetString(9).Split('\n', StringSplitOptions.RemoveEmptyEntries), DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(10))));
                return list;
            });

    public Task PruneAsync(DateOnly before) => InTransactionAsync(async exec =>
    {
        await exec("DELETE FROM tlsrpt_counts WHERE day < $1", [DayText(before)]).ConfigureAwait(false);
        await exec("DELETE FROM tlsrpt_reports WHERE day < $1", [DayText(before)]).ConfigureAwait(false);
    });
}

/// <summary>The store in a SQLite file of its own under the data directory (0600), for one machine.</summary>
public sealed class SqliteTlsRptStore : TlsRptSqlStore
{
    private readonly SqliteConnection _connection;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "queue", "tlsrpt.db");

    public SqliteTlsRptStore(string path)
    {
        _connection = Queue.SqliteFiles.OpenPrivate(path, """
            CREATE TABLE IF NOT EXISTS tlsrpt_counts(
              day TEXT NOT NULL, domain TEXT NOT NULL, policy_key TEXT NOT NULL, policy TEXT NOT NULL, result TEXT NOT NULL,
              sending_ip TEXT NOT NULL, mx_host TEXT NOT NULL, receiving_ip TEXT NOT NULL, sessions INTEGER NOT NULL, detail TEXT NOT NULL,
              PRIMARY KEY(day, domain, policy_key, result, sending_ip, mx_host, receiving_ip));
            CREATE TABLE IF NOT EXISTS tlsrpt_reports(
              day TEXT NOT NULL, domain TEXT NOT NULL, report_id TEXT NOT NULL, member TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL,
              attempts INTEGER NOT NULL, next_attempt INTEGER NOT NULL, payload BLOB, post_to TEXT NOT NULL, updated INTEGER NOT NULL,
              PRIMARY KEY(day, domain));
            """);
    }

    private SqliteCommand Command(string sql, object[] values, SqliteTransaction? transaction = null)
    {
        var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = transaction;
        for (var i = 0; i < values.Length; i++) cmd.Parameters.AddWithValue("$" + (i + 1).ToString(CultureInfo.InvariantCulture), values[i]);
        return cmd;
    }

    protected override async Task<T> RunAsync<T>(string sql, object[] values, Func<DbCommand, Task<T>> run)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await using var cmd = Command(sql, values);
            return await run(cmd).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    protected override async Task InTransactionAsync(Func<Func<string, object[], Task>, Task> work)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await using var tx = (SqliteTransaction)await _connection.BeginTransactionAsync().ConfigureAwait(false);
            await work(async (sql, values) =>
            {
                await using var cmd = Command(sql, values, tx);
                await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            }).ConfigureAwait(false);
            await tx.CommitAsync().ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    public override void Dispose()
    {
        _connection.Dispose();
        _gate.Dispose();
    }
}
