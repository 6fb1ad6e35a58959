using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Postern.Queue;

/// <summary>
/// SQLite queue in WAL mode with synchronous=FULL: a commit is fsync'd. All writes go
/// through one writer task that commits whatever has gathered in one transaction (group
/// commit), so many sessions share one fsync.
/// </summary>
public sealed class SqliteQueueStore : IQueueStore
{
    private const int IdBlock = 1000;
    private readonly string _connectionString;
    private readonly SqliteConnection _writeConnection;
    private readonly Channel<GroupCommit.Op<Action<SqliteConnection, SqliteTransaction>>> _writes =
        Channel.CreateUnbounded<GroupCommit.Op<Action<SqliteConnection, SqliteTransaction>>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;
    private readonly Dictionary<IdKind, (long Next, long Limit)> _ids = new();
    private readonly SemaphoreSlim _idGate = new(1, 1);

    public SqliteQueueStore(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _writeConnection = Open();
        Exec(_writeConnection, """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS sequences(name TEXT PRIMARY KEY, next INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS messages(
              mid INTEGER PRIMARY KEY, icid INTEGER NOT NULL, received_at INTEGER NOT NULL,
              sender TEXT NOT NULL, envid TEXT, ret INTEGER NOT NULL, smtputf8 INTEGER NOT NULL,
              body_type TEXT NOT NULL, size INTEGER NOT NULL, client_address TEXT NOT NULL,
              helo TEXT NOT NULL, listener TEXT NOT NULL, bounce_of INTEGER, body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS recipients(
              mid INTEGER NOT NULL, rid INTEGER NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL,
              orcpt TEXT, notify INTEGER NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL,
              next_attempt INTEGER NOT NULL, last_response TEXT, PRIMARY KEY(mid, rid)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS recipients_due ON recipients(state, next_attempt);
            """);
        // Stores written before finishing was one transaction may hold finished messages.
        Exec(_writeConnection, """
            DELETE FROM messages WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.mid = messages.mid AND r.state = 0);
            DELETE FROM recipients WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.mid = recipients.mid);
            """);
        SqliteFiles.RestrictToOwner(path);
        _writer = Task.Run(() => GroupCommit.RunAsync(_writes.Reader, 512, ops => { Commit(ops); return Task.CompletedTask; }));
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        Exec(c, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000; PRAGMA foreign_keys=OFF;");
        return c;
    }

    /// <summary>
    /// A pooled connection for reading: no PRAGMAs per use (synchronous only matters to the
    /// writer; a busy database is retried up to the connection string's default timeout).
    /// </summary>
    private SqliteConnection OpenReader()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    private static void Exec(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private Task WriteAsync(Action<SqliteConnection, SqliteTransaction> apply)
    {
        var op = new GroupCommit.Op<Action<SqliteConnection, SqliteTransaction>>(apply, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_writes.Writer.TryWrite(op)) throw new InvalidOperationException("queue store is closed");
        return op.Done.Task;
    }

    private void Commit(IReadOnlyList<Action<SqliteConnection, SqliteTransaction>> ops)
    {
        using var tx = _writeConnection.BeginTransaction();
        foreach (var apply in ops) apply(_writeConnection, tx);
        tx.Commit();   // synchronous=FULL: returns after the WAL is fsync'd
    }

    public async ValueTask<long> NextIdAsync(IdKind kind)
    {
        await _idGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_ids.TryGetValue(kind, out var range) || range.Next >= range.Limit)
            {
                // Reserve a block durably before using it, so a crash never reuses an ID.
                long start = 0;
                var name = kind.ToString();
                await WriteAsync((c, tx) =>
                {
                    using var cmd = c.CreateCommand();
                    cmd.Transaction = tx;
                    cmd.CommandText = """
                        INSERT INTO sequences(name, next) VALUES($n, 1) ON CONFLICT(name) DO NOTHING;
                        UPDATE sequences SET next = next + $b WHERE name = $n RETURNING next - $b;
                        """;
                    cmd.Parameters.AddWithValue("$n", name);
                    cmd.Parameters.AddWithValue("$b", IdBlock);
                    start = (long)cmd.ExecuteScalar()!;
                }).ConfigureAwait(false);
                range = (start, start + IdBlock);
            }
            _ids[kind] = (range.Next + 1, range.Limit);
            return range.Next;
        }
        finally { _idGate.Release(); }
    }

    /// <summary>Bodies of messages just queued, for their first delivery round (64 MB at most).</summary>
    private readonly FreshBodies _fresh = new(64L << 20);

    public async Task EnqueueAsync(QueuedMessage m, ReadOnlyMemory<byte> body)
    {
        await InsertAsync(m, body).ConfigureAwait(false);
        _fresh.Add(m.Mid, body.Span);   // only once it is durable: a failed write leaves nothing behind
    }

    private Task InsertAsync(QueuedMessage m, ReadOnlyMemory<byte> body) => WriteAsync((c, tx) =>
    {
        using (var cmd = c.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO messages(mid, icid, received_at, sender, envid, ret, smtputf8, body_type, size, client_address, helo, listener, bounce_of, body)
                VALUES($mid, $icid, $at, $sender, $envid, $ret, $utf8, $bt, $size, $client, $helo, $listener, $bounce, zeroblob($length))
                """;
            cmd.Parameters.AddWithValue("$mid", m.Mid);
            cmd.Parameters.AddWithValue("$icid", m.Icid);
            cmd.Parameters.AddWithValue("$at", m.ReceivedAt.ToUnixTimeMilliseconds());
            cmd.Parameters.AddWithValue("$sender", m.Sender);
            cmd.Parameters.AddWithValue("$envid", (object?)m.EnvelopeId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$ret", (int)m.Ret);
            cmd.Parameters.AddWithValue("$utf8", m.SmtpUtf8 ? 1 : 0);
            cmd.Parameters.AddWithValue("$bt", m.BodyType);
            cmd.Parameters.AddWithValue("$size", m.Size);
            cmd.Parameters.AddWithValue("$client", m.ClientAddress);
            cmd.Parameters.AddWithValue("$helo", m.Helo);
            cmd.Parameters.AddWithValue("$listener", m.Listener);
            cmd.Parameters.AddWithValue("$bounce", (object?)m.BounceOf ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$length", body.Length);
            cmd.ExecuteNonQuery();
        }
        // Incremental blob I/O: the bytes go from the message buffer into SQLite's pages with no managed copy.
        if (body.Length > 0)
        {
            using var blob = new SqliteBlob(c, "messages", "body", m.Mid);
            blob.Write(body.Span);
        }
        using var rcmd = c.CreateCommand();
        rcmd.Transaction = tx;
        rcmd.CommandText = """
            INSERT INTO recipients(mid, rid, address, domain, orcpt, notify, state, attempts, next_attempt, last_response)
            VALUES($mid, $rid, $addr, $domain, $orcpt, $notify, $state, $attempts, $next, $resp)
            """;
        var pMid = rcmd.Parameters.Add("$mid", SqliteType.Integer);
        var pRid = rcmd.Parameters.Add("$rid", SqliteType.Integer);
        var pAddr = rcmd.Parameters.Add("$addr", SqliteType.Text);
        var pDomain = rcmd.Parameters.Add("$domain", SqliteType.Text);
        var pOrcpt = rcmd.Parameters.Add("$orcpt", SqliteType.Text);
        var pNotify = rcmd.Parameters.Add("$notify", SqliteType.Integer);
        var pState = rcmd.Parameters.Add("$state", SqliteType.Integer);
        var pAttempts = rcmd.Parameters.Add("$attempts", SqliteType.Integer);
        var pNext = rcmd.Parameters.Add("$next", SqliteType.Integer);
        var pResp = rcmd.Parameters.Add("$resp", SqliteType.Text);
        foreach (var r in m.Recipients)
        {
            pMid.Value = m.Mid; pRid.Value = r.Rid; pAddr.Value = r.Address; pDomain.Value = r.Domain;
            pOrcpt.Value = (object?)r.OriginalRecipient ?? DBNull.Value; pNotify.Value = (int)r.Notify;
            pState.Value = (int)r.State; pAttempts.Value = r.Attempts;
            pNext.Value = r.NextAttempt.ToUnixTimeMilliseconds(); pResp.Value = (object?)r.LastResponse ?? DBNull.Value;
            rcmd.ExecuteNonQuery();
        }
    });

    public Task UpdateRecipientsAsync(long mid, IReadOnlyList<RecipientUpdate> updates)
    {
        _fresh.Remove(mid);   // recorded without a round of ours (an operator's bounce): the next round reads the store
        return UpdateRowsAsync(mid, updates);
    }

    private Task UpdateRowsAsync(long mid, IReadOnlyList<RecipientUpdate> updates) => WriteAsync((c, tx) =>
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE recipients SET state=$state, attempts=$attempts, next_attempt=$next, last_response=$resp WHERE mid=$mid AND rid=$rid";
        var pState = cmd.Parameters.Add("$state", SqliteType.Integer);
        var pAttempts = cmd.Parameters.Add("$attempts", SqliteType.Integer);
        var pNext = cmd.Parameters.Add("$next", SqliteType.Integer);
        var pResp = cmd.Parameters.Add("$resp", SqliteType.Text);
        var pMid = cmd.Parameters.Add("$mid", SqliteType.Integer);
        var pRid = cmd.Parameters.Add("$rid", SqliteType.Integer);
        foreach (var u in updates)
        {
            pState.Value = (int)u.State; pAttempts.Value = u.Attempts; pNext.Value = u.NextAttempt.ToUnixTimeMilliseconds();
            pResp.Value = (object?)u.LastResponse ?? DBNull.Value; pMid.Value = mid; pRid.Value = u.Rid;
            cmd.ExecuteNonQuery();
        }
        // Finishing a message is this same transaction: a crash can never leave a message
        // whose every recipient is final (and that nothing would ever pick up again).
        Exec(c, $"""
            DELETE FROM messages WHERE mid={mid} AND NOT EXISTS (SELECT 1 FROM recipients WHERE mid={mid} AND state=0);
            DELETE FROM recipients WHERE mid={mid} AND NOT EXISTS (SELECT 1 FROM messages WHERE mid={mid});
            """, tx);
    });

    public Task RemoveAsync(long mid)
    {
        _fresh.Remove(mid);
        return RemoveRowsAsync(mid);
    }

    private Task RemoveRowsAsync(long mid) => WriteAsync((c, tx) =>
    {
        Exec(c, $"DELETE FROM recipients WHERE mid={mid}; DELETE FROM messages WHERE mid={mid};", tx);
    });

    public async Task<int> RetryDomainNowAsync(string domain)
    {
        var count = 0;
        await WriteAsync((c, tx) =>
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE recipients SET next_attempt=$now WHERE state=0 AND domain=$d";
            cmd.Parameters.AddWithValue("$now", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            cmd.Parameters.AddWithValue("$d", domain.ToLowerInvariant());
            count = cmd.ExecuteNonQuery();
        }).ConfigureAwait(false);
        return count;
    }

    public async Task<(int Messages, int Recipients, DateTimeOffset? Oldest)> StatsAsync()
    {
        await Task.Yield();
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM recipients WHERE state=0), (SELECT MIN(received_at) FROM messages)";
        using var r = cmd.ExecuteReader();
        r.Read();
        return (r.GetInt32(0), r.GetInt32(1), r.IsDBNull(2) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)));
    }

    public async Task<int> RetryNowAsync(long? mid)
    {
        var count = 0;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await WriteAsync((c, tx) =>
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE recipients SET next_attempt=$now WHERE state=0" + (mid is null ? "" : " AND mid=$mid");
            cmd.Parameters.AddWithValue("$now", now);
            if (mid is not null) cmd.Parameters.AddWithValue("$mid", mid.Value);
            count = cmd.ExecuteNonQuery();
        }).ConfigureAwait(false);
        return count;
    }

    public async Task<IReadOnlyList<QueuedMessage>> LoadDueAsync(DateTimeOffset now, int limit, IReadOnlySet<long> exclude)
    {
        await Task.Yield();
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        // Messages with at least one pending recipient that is due; all their recipients are loaded.
        cmd.CommandText = """
            SELECT DISTINCT mid FROM recipients WHERE state=0 AND next_attempt <= $now ORDER BY next_attempt LIMIT $limit
            """;
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$limit", limit + exclude.Count);
        var mids = new List<long>();
        using (var reader = cmd.ExecuteReader())
            while (reader.Read())
            {
                var mid = reader.GetInt64(0);
                if (!exclude.Contains(mid) && mids.Count < limit) mids.Add(mid);
            }
        return LoadMessages(c, mids);
    }

    public async Task<DateTimeOffset?> NextDueAsync()
    {
        await Task.Yield();
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT MIN(next_attempt) FROM recipients WHERE state=0";
        var v = cmd.ExecuteScalar();
        return v is long ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    public async Task<byte[]?> ReadBodyAsync(long mid)
    {
        using var lease = await LeaseBodyAsync(mid).ConfigureAwait(false);
        return lease?.Memory.ToArray();
    }

    /// <summary>The body read by incremental blob I/O into pooled memory (no large-object-heap array per delivery round).</summary>
    public async Task<MessageBody?> LeaseBodyAsync(long mid)
    {
        if (_fresh.Take(mid) is { } fresh) return fresh;
        await Task.Yield();
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        // One read transaction: the row cannot vanish between its length and its bytes.
        using var tx = c.BeginTransaction(deferred: true);
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT length(body) FROM messages WHERE mid=$mid";
        cmd.Parameters.AddWithValue("$mid", mid);
        if (cmd.ExecuteScalar() is not long length) return null;
        var body = MessageBody.Rent((int)length);
        if (length == 0) return body;
        try
        {
            using var blob = new SqliteBlob(c, "messages", "body", mid, readOnly: true);
            blob.ReadExactly(body.Writable);
        }
        catch
        {
            body.Dispose();
            throw;
        }
        return body;
    }

    public async Task<IReadOnlyList<QueuedMessage>> ListAsync()
    {
        await Task.Yield();
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT mid FROM messages ORDER BY mid";
        var mids = new List<long>();
        using (var reader = cmd.ExecuteReader())
            while (reader.Read()) mids.Add(reader.GetInt64(0));
        return LoadMessages(c, mids);
    }

    public async Task<QueuedMessage?> GetAsync(long mid)
    {
        await Task.Yield();
        using var c = OpenReader();
        return LoadMessages(c, [mid]).FirstOrDefault();
    }

    private static List<QueuedMessage> LoadMessages(SqliteConnection c, IReadOnlyList<long> mids)
    {
        var result = new List<QueuedMessage>(mids.Count);
        if (mids.Count == 0) return result;
        using var mcmd = c.CreateCommand();
        mcmd.CommandText = """
            SELECT mid, icid, received_at, sender, envid, ret, smtputf8, body_type, size, client_address, helo, listener, bounce_of
            FROM messages WHERE mid=$mid
            """;
        var pm = mcmd.Parameters.Add("$mid", SqliteType.Integer);
        using var rcmd = c.CreateCommand();
        rcmd.CommandText = $"SELECT {QueuedRecipient.Columns} FROM recipients WHERE mid=$mid ORDER BY rid";
        var pr = rcmd.Parameters.Add("$mid", SqliteType.Integer);
        foreach (var mid in mids)
        {
            pm.Value = mid; pr.Value = mid;
            var recipients = new List<QueuedRecipient>();
            using (var r = rcmd.ExecuteReader())
                while (r.Read()) recipients.Add(QueuedRecipient.FromRow(r, 0));
            using var m = mcmd.ExecuteReader();
            if (!m.Read()) continue;
            result.Add(new QueuedMessage
            {
                Mid = m.GetInt64(0), Icid = m.GetInt64(1), ReceivedAt = DateTimeOffset.FromUnixTimeMilliseconds(m.GetInt64(2)),
                Sender = m.GetString(3), EnvelopeId = m.IsDBNull(4) ? null : m.GetString(4), Ret = (DsnRet)m.GetInt32(5),
                SmtpUtf8 = m.GetInt32(6) != 0, BodyType = m.GetString(7), Size = m.GetInt64(8), ClientAddress = m.GetString(9),
                Helo = m.GetString(10), Listener = m.GetString(11), BounceOf = m.IsDBNull(12) ? null : m.GetInt64(12),
                Recipients = recipients,
            });
        }
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        _writes.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        _writeConnection.Dispose();
        _fresh.Dispose();
        SqliteConnection.ClearAllPools();
    }
}
