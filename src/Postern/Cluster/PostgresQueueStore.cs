using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using Postern.Queue;

namespace Postern.Cluster;

/// <summary>A member tried to record the outcome of a message it no longer holds (its lease lapsed and another member took it).</summary>
public sealed class LeaseLostException(long mid, string? owner)
    : Exception($"MID {mid}: this member's claim lapsed{(owner is null ? "" : $" and member {owner} holds it now")}; its outcome is not recorded here");

/// <summary>
/// The queue of a cluster in PostgreSQL. Any member may deliver any message: due messages
/// are claimed with FOR UPDATE SKIP LOCKED and a lease by the database clock, renewed while
/// the member lives; a crashed member's claims lapse and are taken over. Recording an
/// outcome is fenced on the claim (a member that lost it records nothing) and finishes the
/// message in the same transaction. Writes gather into a few transactions at a time (group
/// commit, like the SQLite store); commits wait for the WAL flush (synchronous_commit on), so
/// EnqueueAsync returns only once the message is durable. Members wake each other with
/// LISTEN/NOTIFY on the channel "postern_queue".
/// </summary>
public sealed class PostgresQueueStore : IQueueStore
{
    private const int IdBlock = 1000;
    private const int Writers = 3;
    public const string Channel = "postern_queue";
    private readonly PostgresDatabase _db;
    private readonly string _member;
    private readonly TimeSpan _lease;
    private readonly Channel<GroupCommit.Op<WriteOp>> _writes = System.Threading.Channels.Channel.CreateBounded<GroupCommit.Op<WriteOp>>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.Wait });
    private readonly Task[] _writers;
    private readonly Dictionary<IdKind, (long Next, long Limit)> _ids = new();
    private readonly SemaphoreSlim _idGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _listener;
    private Action? _wake;
    /// <summary>Bodies fetched with a claim, until the scheduler reads them (bounded by the active-message limit).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, byte[]> _claimedBodies = new();

    private sealed record WriteOp(Func<NpgsqlConnection, NpgsqlTransaction, Task> Apply, bool Notify);

    public string Member => _member;
    public bool IsShared => true;
    public PostgresDatabase Database => _db;

    public PostgresQueueStore(PostgresDatabase db, string member, TimeSpan lease)
    {
        _db = db;
        _member = member;
        _lease = lease;
        _writers = Enumerable.Range(0, Writers).Select(_ => Task.Run(() => GroupCommit.RunAsync(_writes.Reader, 128, CommitAsync))).ToArray();
    }

    private async Task WriteAsync(Func<NpgsqlConnection, NpgsqlTransaction, Task> apply, bool notify = false)
    {
        var op = new GroupCommit.Op<WriteOp>(new WriteOp(apply, notify), new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        await _writes.Writer.WriteAsync(op).ConfigureAwait(false);
        await op.Done.Task.ConfigureAwait(false);
    }

    private async Task CommitAsync(IReadOnlyList<WriteOp> ops)
    {
        await using var c = await _db.Source.OpenConnectionAsync().ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync().ConfigureAwait(false);
        foreach (var op in ops) await op.Apply(c, tx).ConfigureAwait(false);
        if (ops.Any(o => o.Notify))
            await using (var n = new NpgsqlCommand($"NOTIFY {Channel}", c, tx)) await n.ExecuteNonQueryAsync().ConfigureAwait(false);
        await tx.CommitAsync().ConfigureAwait(false);
    }

    private static NpgsqlCommand Command(NpgsqlConnection c, NpgsqlTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = new NpgsqlCommand(sql, c, tx);
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    public async ValueTask<long> NextIdAsync(IdKind kind)
    {
        await _idGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_ids.TryGetValue(kind, out var range) || range.Next >= range.Limit)
            {
                // A block per member, reserved durably: members never hand out the same ID.
                long start = 0;
                await WriteAsync(async (c, tx) =>
                {
                    await using var cmd = Command(c, tx, """
                        INSERT INTO sequences(name, next) VALUES(@n, 1) ON CONFLICT(name) DO NOTHING;
                        UPDATE sequences SET next = next + @b WHERE name = @n RETURNING next - @b;
                        """, ("n", kind.ToString()), ("b", (long)IdBlock));
                    start = (long)(await cmd.ExecuteScalarAsync().ConfigureAwait(false))!;
                }).ConfigureAwait(false);
                range = (start, start + IdBlock);
            }
            _ids[kind] = (range.Next + 1, range.Limit);
            return range.Next;
        }
        finally { _idGate.Release(); }
    }

    public Task EnqueueAsync(QueuedMessage m, ReadOnlyMemory<byte> body)
    {
        var copy = body.ToArray();
        return WriteAsync(async (c, tx) =>
        {
            var batch = new NpgsqlBatch(c, tx);
            await using (batch)
            {
                var insert = new NpgsqlBatchCommand("""
                    INSERT INTO messages(mid, icid, received_at, sender, envid, ret, smtputf8, body_type, size, client_address, helo, listener, bounce_of, accepted_by, next_due)
                    VALUES(@mid, @icid, @at, @sender, @envid, @ret, @utf8, @bt, @size, @client, @helo, @listener, @bounce, @member, @due)
                    """);
                var p = insert.Parameters;
                p.AddWithValue("mid", m.Mid); p.AddWithValue("icid", m.Icid); p.AddWithValue("at", m.ReceivedAt.ToUnixTimeMilliseconds());
                p.AddWithValue("sender", m.Sender); p.AddWithValue("envid", (object?)m.EnvelopeId ?? DBNull.Value); p.AddWithValue("ret", (int)m.Ret);
                p.AddWithValue("utf8", m.SmtpUtf8); p.AddWithValue("bt", m.BodyType); p.AddWithValue("size", m.Size);
                p.AddWithValue("client", m.ClientAddress); p.AddWithValue("helo", m.Helo); p.AddWithValue("listener", m.Listener);
                p.AddWithValue("bounce", (object?)m.BounceOf ?? DBNull.Value); p.AddWithValue("member", _member);
                p.AddWithValue("due", m.Recipients.Where(r => !r.IsFinal).Select(r => r.NextAttempt.ToUnixTimeMilliseconds()).DefaultIfEmpty(long.MaxValue).Min());
                batch.BatchCommands.Add(insert);
                var b = new NpgsqlBatchCommand("INSERT INTO bodies(mid, body) VALUES(@mid, @body)");
                b.Parameters.AddWithValue("mid", m.Mid);
                b.Parameters.Add(new NpgsqlParameter("body", NpgsqlDbType.Bytea) { Value = copy });
                batch.BatchCommands.Add(b);
                var r = new NpgsqlBatchCommand("""
                    INSERT INTO recipients(mid, rid, address, domain, orcpt, notify, state, attempts, next_attempt, last_response)
                    SELECT @mid, * FROM unnest(@rid, @addr, @domain, @orcpt, @notify, @state, @attempts, @next, @resp)
                    """);
                r.Parameters.AddWithValue("mid", m.Mid);
                r.Parameters.AddWithValue("rid", m.Recipients.Select(x => x.Rid).ToArray());
                r.Parameters.AddWithValue("addr", m.Recipients.Select(x => x.Address).ToArray());
                r.Parameters.AddWithValue("domain", m.Recipients.Select(x => x.Domain).ToArray());
                r.Parameters.Add(new NpgsqlParameter("orcpt", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = m.Recipients.Select(x => x.OriginalRecipient).ToArray() });
                r.Parameters.AddWithValue("notify", m.Recipients.Select(x => (int)x.Notify).ToArray());
                r.Parameters.AddWithValue("state", m.Recipients.Select(x => (int)x.State).ToArray());
                r.Parameters.AddWithValue("attempts", m.Recipients.Select(x => x.Attempts).ToArray());
                r.Parameters.AddWithValue("next", m.Recipients.Select(x => x.NextAttempt.ToUnixTimeMilliseconds()).ToArray());
                r.Parameters.Add(new NpgsqlParameter("resp", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = m.Recipients.Select(x => x.LastResponse).ToArray() });
                batch.BatchCommands.Add(r);
                await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
        }, notify: true);
    }

    public Task UpdateRecipientsAsync(long mid, IReadOnlyList<RecipientUpdate> updates) => WriteAsync(async (c, tx) =>
    {
        _claimedBodies.TryRemove(mid, out _);
        // Fenced: only the member holding the claim records (a message deleted meanwhile is left alone).
        await using (var check = Command(c, tx, "SELECT owner FROM messages WHERE mid=@mid FOR UPDATE", ("mid", mid)))
        {
            var owner = await check.ExecuteScalarAsync().ConfigureAwait(false);
            if (owner is null) return;   // deleted meanwhile
            if (owner is not string o || o != _member) throw new LeaseLostException(mid, owner as string);
        }
        await using var batch = new NpgsqlBatch(c, tx);
        var u = new NpgsqlBatchCommand("""
            UPDATE recipients r SET state=u.state, attempts=u.attempts, next_attempt=u.next, last_response=u.resp, in_doubt_since=NULL, in_doubt_by=NULL
            FROM unnest(@rid, @state, @attempts, @next, @resp) AS u(rid, state, attempts, next, resp)
            WHERE r.mid=@mid AND r.rid=u.rid
            """);
        u.Parameters.AddWithValue("mid", mid);
        u.Parameters.AddWithValue("rid", updates.Select(x => x.Rid).ToArray());
        u.Parameters.AddWithValue("state", updates.Select(x => (int)x.State).ToArray());
        u.Parameters.AddWithValue("attempts", updates.Select(x => x.Attempts).ToArray());
        u.Parameters.AddWithValue("next", updates.Select(x => x.NextAttempt.ToUnixTimeMilliseconds()).ToArray());
        u.Parameters.Add(new NpgsqlParameter("resp", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = updates.Select(x => x.LastResponse).ToArray() });
        batch.BatchCommands.Add(u);
        // Finishing a message is this same transaction; otherwise its claim ends and its next due time is set.
        var finish = new NpgsqlBatchCommand("DELETE FROM messages WHERE mid=@mid AND NOT EXISTS (SELECT 1 FROM recipients WHERE mid=@mid AND state=0)");
        finish.Parameters.AddWithValue("mid", mid);
        batch.BatchCommands.Add(finish);
        var release = new NpgsqlBatchCommand("""
            UPDATE messages SET owner=NULL, lease_until=NULL,
              next_due=(SELECT MIN(next_attempt) FROM recipients WHERE mid=@mid AND state=0) WHERE mid=@mid
            """);
        release.Parameters.AddWithValue("mid", mid);
        batch.BatchCommands.Add(release);
        await batch.ExecuteNonQueryAsync().ConfigureAwait(false);
    });

    public Task ReleaseAsync(long mid) => WriteAsync(async (c, tx) =>
    {
        _claimedBodies.TryRemove(mid, out _);
        await using var cmd = Command(c, tx, """
            UPDATE messages SET owner=NULL, lease_until=NULL,
              next_due=COALESCE((SELECT MIN(next_attempt) FROM recipients WHERE mid=@mid AND state=0), next_due)
            WHERE mid=@mid AND owner=@me
            """, ("mid", mid), ("me", _member));
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }, notify: true);

    public async Task MarkInDoubtAsync(long mid, IReadOnlyList<int> rids)
    {
        // Not through the group commit: it sits between the data and the final dot. The
        // database server keeps it across a member's crash; only the database's own crash could
        // lose it, so no WAL flush is waited for. It is also the fence: a member whose claim
        // lapsed (another may hold the message now) learns it here and sends nothing.
        // One statement, one round trip: the fence, then the marks only where the fence held.
        await using var c = await _db.Soft.OpenConnectionAsync().ConfigureAwait(false);
        await using var cmd = Command(c, null, $"""
            WITH fence AS (
              UPDATE messages SET lease_until={PostgresDatabase.NowMs} + @lease
              WHERE mid=@mid AND owner=@me AND lease_until > {PostgresDatabase.NowMs} RETURNING mid),
            marked AS (
              UPDATE recipients SET in_doubt_since={PostgresDatabase.NowMs}, in_doubt_by=@me
              WHERE mid IN (SELECT mid FROM fence) AND rid = ANY(@rids) RETURNING rid)
            SELECT COUNT(*) FROM fence
            """, ("mid", mid), ("me", _member), ("lease", (long)_lease.TotalMilliseconds), ("rids", rids.ToArray()));
        if ((long)(await cmd.ExecuteScalarAsync().ConfigureAwait(false))! == 0) throw new LeaseLostException(mid, null);
    }

    public Task RemoveAsync(long mid) => WriteAsync(async (c, tx) =>
    {
        await using var cmd = Command(c, tx, "DELETE FROM messages WHERE mid=@mid", ("mid", mid));
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    });

    private async Task<int> MakeDueAsync(string where, params (string, object?)[] parameters)
    {
        var count = 0;
        await WriteAsync(async (c, tx) =>
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await using var cmd = Command(c, tx, $"""
                WITH touched AS (UPDATE recipients SET next_attempt=@now WHERE state=0 {where} RETURNING mid)
                UPDATE messages SET next_due=@now WHERE mid IN (SELECT mid FROM touched) RETURNING (SELECT COUNT(*) FROM touched)
                """, [.. parameters, ("now", now)]);
            await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
            if (await r.ReadAsync().ConfigureAwait(false)) count = (int)r.GetInt64(0);
        }, notify: true).ConfigureAwait(false);
        return count;
    }

    public Task<int> RetryDomainNowAsync(string domain) => MakeDueAsync("AND domain=@d", ("d", domain.ToLowerInvariant()));

    public Task<int> RetryNowAsync(long? mid) => mid is { } m ? MakeDueAsync("AND mid=@mid", ("mid", m)) : MakeDueAsync("");

    public async Task<(int Messages, int Recipients, DateTimeOffset? Oldest)> StatsAsync()
    {
        await using var cmd = _db.Source.CreateCommand("SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM recipients WHERE state=0), (SELECT MIN(received_at) FROM messages)");
        await using var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
        await r.ReadAsync().ConfigureAwait(false);
        return ((int)r.GetInt64(0), (int)r.GetInt64(1), r.IsDBNull(2) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)));
    }

    private const string MessageColumns = "m.mid, m.icid, m.received_at, m.sender, m.envid, m.ret, m.smtputf8, m.body_type, m.size, m.client_address, m.helo, m.listener, m.bounce_of, m.accepted_by";

    public async Task<IReadOnlyList<QueuedMessage>> LoadDueAsync(DateTimeOffset now, int limit, IReadOnlySet<long> exclude)
    {
        // The claim itself: due, unclaimed (or claimed by a member whose lease lapsed), not
        // locked by another member's claim in progress. The lease runs on the database clock.
        await using var c = await _db.Source.OpenConnectionAsync().ConfigureAwait(false);
        var claimed = new List<(long Mid, string? Previous)>();
        // Unclaimed work through its partial index, then claims that lapsed (rare) through theirs,
        // never one this process still has in flight (its own lapsed claim: it would run twice).
        await using (var cmd = Command(c, null, $"""
            WITH fresh AS (
              SELECT mid, NULL::text AS previous FROM messages WHERE owner IS NULL AND next_due <= @now
              ORDER BY next_due LIMIT @limit FOR UPDATE SKIP LOCKED),
            lapsed AS (
              SELECT mid, owner AS previous FROM messages WHERE owner IS NOT NULL AND lease_until < {PostgresDatabase.NowMs} AND next_due <= @now
                AND NOT (mid = ANY(@exclude)) LIMIT @limit FOR UPDATE SKIP LOCKED),
            due AS (SELECT * FROM fresh UNION ALL SELECT * FROM lapsed LIMIT @limit)
            UPDATE messages m SET owner=@me, lease_until={PostgresDatabase.NowMs} + @lease, claims=m.claims + 1
            FROM due d WHERE m.mid = d.mid RETURNING m.mid, d.previous
            """, ("now", now.ToUnixTimeMilliseconds()), ("limit", limit), ("exclude", exclude.ToArray()), ("me", _member), ("lease", (long)_lease.TotalMilliseconds)))
        await using (var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false))
            while (await r.ReadAsync().ConfigureAwait(false))
                claimed.Add((r.GetInt64(0), r.IsDBNull(1) ? null : r.GetString(1)));
        if (claimed.Count == 0) return [];
        var previous = claimed.ToDictionary(x => x.Mid, x => x.Previous);
        var mids = claimed.Select(x => x.Mid).ToArray();
        var messages = await LoadMessagesAsync(c, mids, previous).ConfigureAwait(false);
        // The bodies come with the claim (one query for the batch, not one per message); the
        // scheduler reads each once, at once, and a release drops what was not read.
        await using (var bodies = Command(c, null, "SELECT mid, body FROM bodies WHERE mid = ANY(@mids)", ("mids", mids)))
        await using (var r = await bodies.ExecuteReaderAsync().ConfigureAwait(false))
            while (await r.ReadAsync().ConfigureAwait(false)) _claimedBodies[r.GetInt64(0)] = (byte[])r[1];
        return messages;
    }

    public async Task<DateTimeOffset?> NextDueAsync()
    {
        // Unclaimed work by its due time; claimed work by when its lease lapses (a takeover).
        await using var cmd = _db.Source.CreateCommand("""
            SELECT LEAST((SELECT MIN(next_due) FROM messages WHERE owner IS NULL), (SELECT MIN(lease_until) FROM messages WHERE owner IS NOT NULL))
            """);
        var v = await cmd.ExecuteScalarAsync().ConfigureAwait(false);
        return v is long ms && ms != long.MaxValue ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    public async Task<byte[]?> ReadBodyAsync(long mid)
    {
        if (_claimedBodies.TryRemove(mid, out var claimed)) return claimed;
        await using var cmd = _db.Source.CreateCommand("SELECT body FROM bodies WHERE mid=$1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = mid });
        return await cmd.ExecuteScalarAsync().ConfigureAwait(false) as byte[];
    }

    public async Task<IReadOnlyList<QueuedMessage>> ListAsync()
    {
        await using var c = await _db.Source.OpenConnectionAsync().ConfigureAwait(false);
        var mids = new List<long>();
        await using (var cmd = Command(c, null, "SELECT mid FROM messages ORDER BY mid"))
        await using (var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false))
            while (await r.ReadAsync().ConfigureAwait(false)) mids.Add(r.GetInt64(0));
        return await LoadMessagesAsync(c, mids.ToArray(), null).ConfigureAwait(false);
    }

    public async Task<QueuedMessage?> GetAsync(long mid)
    {
        await using var c = await _db.Source.OpenConnectionAsync().ConfigureAwait(false);
        return (await LoadMessagesAsync(c, [mid], null).ConfigureAwait(false)).FirstOrDefault();
    }

    private static async Task<List<QueuedMessage>> LoadMessagesAsync(NpgsqlConnection c, long[] mids, IReadOnlyDictionary<long, string?>? previous)
    {
        var recipients = new Dictionary<long, List<QueuedRecipient>>();
        await using (var cmd = Command(c, null, $"""
            SELECT mid, {QueuedRecipient.Columns}, in_doubt_since, in_doubt_by
            FROM recipients WHERE mid = ANY(@mids) ORDER BY mid, rid
            """, ("mids", mids)))
        await using (var r = await cmd.ExecuteReaderAsync().ConfigureAwait(false))
            while (await r.ReadAsync().ConfigureAwait(false))
            {
                var mid = r.GetInt64(0);
                if (!recipients.TryGetValue(mid, out var list)) recipients[mid] = list = [];
                list.Add(QueuedRecipient.FromRow(r, 1, inDoubt: true));
            }
        var result = new List<QueuedMessage>(mids.Length);
        await using (var cmd = Command(c, null, $"SELECT {MessageColumns} FROM messages m WHERE m.mid = ANY(@mids) ORDER BY m.mid", ("mids", mids)))
        await using (var m = await cmd.ExecuteReaderAsync().ConfigureAwait(false))
            while (await m.ReadAsync().ConfigureAwait(false))
            {
                var mid = m.GetInt64(0);
                var before = previous is not null && previous.TryGetValue(mid, out var p) ? p : null;
                result.Add(new QueuedMessage
                {
                    Mid = mid, Icid = m.GetInt64(1), ReceivedAt = DateTimeOffset.FromUnixTimeMilliseconds(m.GetInt64(2)),
                    Sender = m.GetString(3), EnvelopeId = m.IsDBNull(4) ? null : m.GetString(4), Ret = (DsnRet)m.GetInt32(5),
                    SmtpUtf8 = m.GetBoolean(6), BodyType = m.GetString(7), Size = m.GetInt64(8), ClientAddress = m.GetString(9),
                    Helo = m.GetString(10), Listener = m.GetString(11), BounceOf = m.IsDBNull(12) ? null : m.GetInt64(12),
                    AcceptedBy = m.GetString(13), TakenOverFrom = before,
                    Recipients = recipients.TryGetValue(mid, out var list) ? list : [],
                });
            }
        return result;
    }

    /// <summary>Moves the ID sequences up to at least the given next values (a migrated machine's), never down.</summary>
    public Task RaiseSequencesAsync(IReadOnlyDictionary<string, long> next) => WriteAsync(async (c, tx) =>
    {
        foreach (var (name, value) in next)
        {
            await using var cmd = Command(c, tx, "INSERT INTO sequences(name, next) VALUES(@n, @v) ON CONFLICT(name) DO UPDATE SET next = GREATEST(sequences.next, excluded.next)",
                ("n", name), ("v", value));
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
    });

    /// <summary>
    /// Extends this member's claims on the messages it is delivering now (the membership
    /// heartbeat): only those, so a claim this process lost track of still lapses. Rows being
    /// written at this moment are skipped, not waited for (their outcome ends the claim anyway),
    /// so renewal never deadlocks with the writers.
    /// </summary>
    public async Task<int> RenewLeasesAsync(IReadOnlyCollection<long> inFlight)
    {
        if (inFlight.Count == 0) return 0;
        await using var cmd = _db.Control.CreateCommand($"""
            UPDATE messages SET lease_until={PostgresDatabase.NowMs} + $2
            WHERE mid IN (SELECT mid FROM messages WHERE owner=$1 AND mid = ANY($3) FOR UPDATE SKIP LOCKED)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = _member });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)_lease.TotalMilliseconds });
        cmd.Parameters.Add(new NpgsqlParameter { Value = inFlight.ToArray() });
        return await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// At start: claims this member's name still holds belonged to its previous process, which
    /// is gone; they are released at once (as a takeover, not after the lease) and counted.
    /// </summary>
    public async Task<int> ReleaseClaimsOfPreviousRunAsync()
    {
        await using var cmd = _db.Source.CreateCommand($"UPDATE messages SET lease_until={PostgresDatabase.NowMs} - 1 WHERE owner=$1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = _member });
        return await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public void OnWorkArrived(Action wake)
    {
        _wake = wake;
        _listener ??= Task.Run(ListenLoop);
    }

    /// <summary>LISTEN on a dedicated connection; reconnects after a failure (waking the scheduler, which rescans anyway).</summary>
    private async Task ListenLoop()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var c = await _db.Source.OpenConnectionAsync(ct).ConfigureAwait(false);
                c.Notification += (_, _) => _wake?.Invoke();
                await using (var cmd = new NpgsqlCommand($"LISTEN {Channel}", c)) await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                _wake?.Invoke();
                while (!ct.IsCancellationRequested)
                    await c.WaitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { return; }
            catch (Exception)
            {
                try { await Task.Delay(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _writes.Writer.TryComplete();
        await Task.WhenAll(_writers).ConfigureAwait(false);
        if (_listener is not null) await _listener.ConfigureAwait(false);
    }
}
