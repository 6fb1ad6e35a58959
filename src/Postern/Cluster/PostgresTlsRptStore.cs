using System.Data.Common;
using Npgsql;
using Postern.Observability;

namespace Postern.Cluster;

/// <summary>
/// TLS reporting's store shared by the members of a cluster: each member adds the sessions it
/// made, so every session is counted once, and one member claims each day's report of a domain.
/// </summary>
public sealed class PostgresTlsRptStore : TlsRptSqlStore
{
    private static readonly string[] Steps =
    [
        // 1: counts per day and policy domain, and the reports made from them.
        """
        CREATE TABLE tlsrpt_counts(
          day text NOT NULL, domain text NOT NULL, policy_key text NOT NULL, policy text NOT NULL, result text NOT NULL,
          sending_ip text NOT NULL, mx_host text NOT NULL, receiving_ip text NOT NULL, sessions bigint NOT NULL, detail text NOT NULL,
          PRIMARY KEY(day, domain, policy_key, result, sending_ip, mx_host, receiving_ip));
        CREATE TABLE tlsrpt_reports(
          day text NOT NULL, domain text NOT NULL, report_id text NOT NULL, member text NOT NULL, state text NOT NULL, detail text NOT NULL,
          attempts int NOT NULL, next_attempt bigint NOT NULL, payload bytea, post_to text NOT NULL, updated bigint NOT NULL,
          PRIMARY KEY(day, domain));
        """,
    ];

    private readonly PostgresDatabase _db;

    public PostgresTlsRptStore(PostgresDatabase db)
    {
        db.EnsureSchema("tlsrpt-sending", Steps);
        _db = db;
    }

    private static NpgsqlCommand Bind(NpgsqlCommand cmd, object[] values)
    {
        foreach (var v in values) cmd.Parameters.Add(new NpgsqlParameter { Value = v });
        return cmd;
    }

    protected override async Task<T> RunAsync<T>(string sql, object[] values, Func<DbCommand, Task<T>> run)
    {
        await using var cmd = Bind(_db.Source.CreateCommand(sql), values);
        return await run(cmd).ConfigureAwait(false);
    }

    protected override async Task InTransactionAsync(Func<Func<string, object[], Task>, Task> work)
    {
        await using var connection = await _db.Source.OpenConnectionAsync().ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync().ConfigureAwait(false);
        await work(async (sql, values) =>
        {
            await using var cmd = Bind(new NpgsqlCommand(sql, connection, tx), values);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }).ConfigureAwait(false);
        await tx.CommitAsync().ConfigureAwait(false);
    }

    public override void Dispose() { }
}
