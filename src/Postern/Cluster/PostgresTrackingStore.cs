using Npgsql;
using Postern.Observability;

namespace Postern.Cluster;

/// <summary>
/// Message tracking of a cluster, in its PostgreSQL database: every member writes here, so a
/// message accepted by one member and delivered by another has one story. The rows and the
/// searches are the SQLite store's (<see cref="SqliteTrackingStore"/>); what differs is that
/// writes about one MID come from several members in any order. A step or a recipient change
/// for a MID whose entry has not arrived yet (the accepting member commits its batch a moment
/// later) makes a placeholder row, as on one machine; the entry then fills that row in and
/// keeps what the others recorded, instead of replacing it. Only an entered message is
/// replaced by a later entry under its MID (the queue was reset and MIDs are used again).
/// </summary>
public sealed class PostgresTrackingStore : ITrackingStore
{
    /// <summary>The tracking schema, in numbered steps (never edit a released step; add one).</summary>
    private static readonly string[] SchemaSteps =
    [
        // 1: messages, recipients, steps; the subject index when pg_trgm can be had.
        """
        CREATE TABLE tracking_messages(
          mid bigint PRIMARY KEY, received bigint NOT NULL, updated bigint NOT NULL, origin text NOT NULL,
          entered boolean NOT NULL,   -- false: a placeholder made by a step or recipient change that came before the message's entry
          icid bigint, client_address text, reverse_dns text, reverse_verified boolean, listener text,
          sender_group text, policy text, policy_action text, group_match text, inbound_tls text, inbound_cipher text,
          sender text NOT NULL, sender_key text NOT NULL, sender_domain text NOT NULL,
          subject text, size bigint, message_id text, bounce_of bigint,
          status text NOT NULL, tls text NOT NULL);
        -- Each search index ends in (received, mid): newest first walks it and stops at the limit.
        CREATE INDEX tracking_messages_received ON tracking_messages(received, mid);
        CREATE INDEX tracking_messages_sender ON tracking_messages(sender_key, received, mid);
        CREATE INDEX tracking_messages_sender_domain ON tracking_messages(sender_domain, received, mid);
        CREATE INDEX tracking_messages_status ON tracking_messages(status, received, mid);
        CREATE INDEX tracking_messages_tls ON tracking_messages(tls, received, mid);
        CREATE TABLE tracking_recipients(
          mid bigint NOT NULL, rid int NOT NULL, received bigint NOT NULL, address text NOT NULL, address_key text NOT NULL,
          domain text NOT NULL, status text NOT NULL, tls text NOT NULL, response text, dcid bigint, updated bigint NOT NULL,
          PRIMARY KEY(mid, rid));
        CREATE INDEX tracking_recipients_address ON tracking_recipients(address_key, received, mid);
        CREATE INDEX tracking_recipients_domain ON tracking_recipients(domain, received, mid);
        CREATE TABLE tracking_steps(
          seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, mid bigint NOT NULL, time bigint NOT NULL, kind text NOT NULL,
          dcid bigint, rid int, member text NOT NULL, data text NOT NULL);
        CREATE INDEX tracking_steps_mid ON tracking_steps(mid, time, seq);
        -- "Subject contains" is ILIKE '%text%': a trigram index serves it. pg_trgm is a trusted
        -- extension, but a server without the contrib package lacks it: then subjects are searched
        -- without an index rather than tracking failing.
        DO $$
        BEGIN
          CREATE EXTENSION IF NOT EXISTS pg_trgm;
          CREATE INDEX tracking_messages_subject ON tracking_messages USING gin (subject gin_trgm_ops);
        EXCEPTION WHEN OTHERS THEN
          RAISE NOTICE 'pg_trgm is not available (%): tracking searches subjects without an index', SQLERRM;
        END $$;
        """,
    ];

    /// <summary>
    /// The first key of the advisory locks a transaction takes on the messages it writes (the
    /// second is the MID, folded to 32 bits): the two-key space is tracking's alone (the core's
    /// locks use single keys).
    /// </summary>
    private const int MessageLockClass = 7312002;

    /// <summary>How often a batch is applied at most when PostgreSQL fails it as a deadlock victim (it is rolled back whole, so applying it again is exact).</summary>
    private const int WriteAttempts = 3;

    /// <summary>A message's status from its recipients', as the SQLite store computes it (the message is "m").</summary>
    private const string StatusFromRecipients = """
        (SELECT CASE
            WHEN count(*) = count(*) FILTER (WHERE r.status = 'delivered') THEN 'delivered'
            WHEN count(*) = count(*) FILTER (WHERE r.status = 'bounced') THEN 'bounced'
            WHEN count(*) = count(*) FILTER (WHERE r.status IN ('delivered', 'bounced')) THEN 'partial'
            WHEN count(*) FILTER (WHERE r.status = 'deferred') > 0 THEN 'deferred'
            ELSE 'queued' END
          FROM tracking_recipients r WHERE r.mid = m.mid)
        """;

    private readonly PostgresDatabase _db;
    private readonly string _member;

    /// <param name="member">The member whose steps this process writes (each step says who recorded it).</param>
    public PostgresTrackingStore(PostgresDatabase db, string member)
    {
        _db = db;
        _member = member;
        db.EnsureSchema("tracking", SchemaSteps);
    }

    // ---------------- writes ----------------

    public void Write(IReadOnlyList<TrackingWrite> batch)
    {
        if (batch.Count == 0) return;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                WriteOnce(batch);
                return;
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < WriteAttempts)
            {
                // Not between tracking writers (their locks are ordered), but another session may hold rows in another order.
            }
        }
    }

    /// <summary>
    /// Locks the messages a transaction is about to write, in one order for every member: two
    /// members' batches about the same messages (one entering them, the other recording their
    /// deliveries) then wait for each other instead of crossing row locks and deadlocking.
    /// </summary>
    private static void LockMessages(NpgsqlBatch commands, IEnumerable<long> mids) =>
        // unnest yields the keys in the array's (ascending) order, and the locks are taken in that order.
        Add(commands, $"SELECT pg_advisory_xact_lock({MessageLockClass}, key) FROM unnest(@keys) AS key",
            ("keys", mids.Select(mid => (int)(mid ^ (mid >> 32))).Distinct().Order().ToArray()));

    /// <summary>The batch as one transaction, sent in one round trip.</summary>
    private void WriteOnce(IReadOnlyList<TrackingWrite> batch)
    {
        using var c = _db.Source.OpenConnection();
        using var tx = c.BeginTransaction();
        using var commands = new NpgsqlBatch(c, tx);
        // Tracking is a record of what happened, not mail: its commits need not wait for the WAL
        // flush (a crash of the server may lose the last of them, never corrupt them).
        Add(commands, "SET LOCAL synchronous_commit TO OFF");
        LockMessages(commands, batch.Select(w => w.Mid));
        foreach (var op in batch)
        {
            switch (op)
            {
                case MessageEntered m: Enter(commands, m); break;
                case StepAdded s:
                    Placeholder(commands, s.Mid, s.Time, null);
                    InsertSteps(commands, s.Mid, [s.Step]);
                    break;
                case RecipientChanged r: ChangeRecipient(commands, r); break;
            }
        }
        // A batch runs the same few statements thousands of times: prepared once per connection
        // (Npgsql keeps them across the pool), each run skips parsing and planning.
        commands.Prepare();
        commands.ExecuteNonQuery();
        tx.Commit();
    }

    private static void Add(NpgsqlBatch batch, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        batch.BatchCommands.Add(command);
    }

    private void Enter(NpgsqlBatch commands, MessageEntered m)
    {
        var t = TrackingTime.ToStored(m.Time);
        // An entered message under this MID is an older one (the queue was reset): it goes. A
        // placeholder is this message, seen first by a member that delivered it: it is filled in.
        Add(commands, """
            WITH old AS (DELETE FROM tracking_messages WHERE mid = @mid AND entered RETURNING mid),
              old_recipients AS (DELETE FROM tracking_recipients WHERE mid IN (SELECT mid FROM old))
            DELETE FROM tracking_steps WHERE mid IN (SELECT mid FROM old)
            """, ("mid", m.Mid));
        var inbound = InboundRow.From(m.Inbound);
        Add(commands, """
            INSERT INTO tracking_messages AS m(mid, received, updated, origin, entered, icid, client_address, reverse_dns, reverse_verified, listener,
              sender_group, policy, policy_action, group_match, inbound_tls, inbound_cipher, sender, sender_key, sender_domain, subject, size, message_id,
              bounce_of, status, tls)
            VALUES(@mid, @t, @t, @origin, true, @icid, @client, @rdns, @rverified, @listener, @group, @policy, @action, @match, @itls, @icipher,
              @sender, @skey, @sdomain, @subject, @size, @msgid, @bounceof, @status, 'none')
            ON CONFLICT (mid) DO UPDATE SET
              received = excluded.received, updated = greatest(m.updated, excluded.updated), origin = excluded.origin, entered = true,
              icid = excluded.icid, client_address = excluded.client_address, reverse_dns = excluded.reverse_dns,
              reverse_verified = excluded.reverse_verified, listener = excluded.listener, sender_group = excluded.sender_group,
              policy = excluded.policy, policy_action = excluded.policy_action, group_match = excluded.group_match,
              inbound_tls = excluded.inbound_tls, inbound_cipher = excluded.inbound_cipher, sender = excluded.sender,
              sender_key = excluded.sender_key, sender_domain = excluded.sender_domain, subject = excluded.subject, size = excluded.size,
              message_id = excluded.message_id, bounce_of = excluded.bounce_of, status = excluded.status
            """,
            ("mid", m.Mid), ("t", t), ("origin", m.Origin), ("icid", inbound.Icid), ("client", inbound.Client), ("rdns", inbound.ReverseDns),
            ("rverified", inbound.ReverseVerified), ("listener", inbound.Listener), ("group", inbound.SenderGroup), ("policy", inbound.Policy),
            ("action", inbound.Action), ("match", inbound.Match), ("itls", inbound.Tls), ("icipher", inbound.TlsCipher),
            ("sender", m.Sender), ("skey", SqliteTrackingStore.AddressKey(m.Sender)), ("sdomain", SqliteTrackingStore.DomainKey(m.Sender)),
            ("subject", m.Subject), ("size", m.Size), ("msgid", m.MessageId), ("bounceof", m.BounceOf), ("status", m.Status));

        // The recipients as accepted; where a delivering member recorded one already, its outcome stays.
        var recipients = m.Recipients.GroupBy(r => r.Rid).Select(g => g.Last()).ToList();   // one row per RID, the last as on one machine
        if (recipients.Count > 0)
            Add(commands, """
                INSERT INTO tracking_recipients AS r(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
                SELECT @mid, a.rid, @t, a.address, a.address_key, a.domain, @status, 'none', NULL, NULL, @t
                FROM unnest(@rids, @addresses, @keys, @domains) AS a(rid, address, address_key, domain)
                ON CONFLICT (mid, rid) DO UPDATE SET address = excluded.address, address_key = excluded.address_key, domain = excluded.domain
                """,
                ("mid", m.Mid), ("t", t), ("status", m.Status == TrackingStatus.Rejected ? TrackingStatus.Rejected : TrackingStatus.Queued),
                ("rids", recipients.Select(r => r.Rid).ToArray()), ("addresses", recipients.Select(r => r.Address).ToArray()),
                ("keys", recipients.Select(r => SqliteTrackingStore.AddressKey(r.Address)).ToArray()),
                ("domains", recipients.Select(r => SqliteTrackingStore.DomainKey(r.Address)).ToArray()));
        if (m.RecipientIsSenderOf is { } original)
        {
            // A DSN goes to the sender of the message it reports on.
            Add(commands, """
                INSERT INTO tracking_recipients AS r(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
                SELECT @mid, 0, @t, sender, sender_key, sender_domain, 'queued', 'none', NULL, NULL, @t FROM tracking_messages WHERE mid = @original AND sender <> ''
                ON CONFLICT (mid, rid) DO UPDATE SET address = excluded.address, address_key = excluded.address_key, domain = excluded.domain
                """, ("mid", m.Mid), ("t", t), ("original", original));
        }
        // What a placeholder collected: its recipients take the message's received time (searches
        // walk recipients by it), and its status follows the outcomes already recorded.
        Add(commands, "UPDATE tracking_recipients SET received = @t WHERE mid = @mid AND received <> @t", ("mid", m.Mid), ("t", t));
        Add(commands, $"""
            UPDATE tracking_messages m SET status = {StatusFromRecipients}
            WHERE m.mid = @mid AND m.status <> 'rejected' AND EXISTS (SELECT 1 FROM tracking_recipients r WHERE r.mid = @mid AND r.status <> 'queued')
            """, ("mid", m.Mid));
        InsertSteps(commands, m.Mid, m.Steps);
    }

    /// <summary>A message seen first after its acceptance (another member's entry is still coming, or its events were dropped): a row of unknown origin.</summary>
    private static void Placeholder(NpgsqlBatch commands, long mid, DateTimeOffset time, string? sender) =>
        Add(commands, """
            INSERT INTO tracking_messages(mid, received, updated, origin, entered, sender, sender_key, sender_domain, status, tls)
            VALUES(@mid, @t, @t, 'unknown', false, @sender, @skey, @sdomain, 'queued', 'none')
            ON CONFLICT (mid) DO NOTHING
            """,
            ("mid", mid), ("t", TrackingTime.ToStored(time)), ("sender", sender ?? ""),
            ("skey", SqliteTrackingStore.AddressKey(sender ?? "")), ("sdomain", SqliteTrackingStore.DomainKey(sender ?? "")));

    private void InsertSteps(NpgsqlBatch commands, long mid, IReadOnlyList<TrackingStep> steps)
    {
        if (steps.Count == 0) return;
        Add(commands, """
            INSERT INTO tracking_steps(mid, time, kind, dcid, rid, member, data)
            SELECT @mid, s.time, s.kind, s.dcid, s.rid, @member, s.data
            FROM unnest(@times, @kinds, @dcids, @rids, @data) WITH ORDINALITY AS s(time, kind, dcid, rid, data, n)
            ORDER BY s.n
            """,
            ("mid", mid), ("member", _member), ("times", steps.Select(s => TrackingTime.ToStored(s.Time)).ToArray()),
            ("kinds", steps.Select(s => s.Kind).ToArray()), ("dcids", steps.Select(s => s.Dcid).ToArray()), ("rids", steps.Select(s => s.Rid).ToArray()),
            ("data", steps.Select(s => System.Text.Json.JsonSerializer.Serialize(s.Fields)).ToArray()));
    }

    private static void ChangeRecipient(NpgsqlBatch commands, RecipientChanged r)
    {
        Placeholder(commands, r.Mid, r.Time, r.Sender);
        var address = r.Address ?? "";
        Add(commands, """
            INSERT INTO tracking_recipients AS r(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
            VALUES(@mid, @rid, (SELECT received FROM tracking_messages WHERE mid = @mid), @address, @key, @domain, @status, @tls, @response, @dcid, @t)
            ON CONFLICT (mid, rid) DO UPDATE SET
              status = excluded.status, response = excluded.response, dcid = excluded.dcid, updated = excluded.updated,
              tls = CASE WHEN excluded.tls <> 'none' THEN excluded.tls ELSE r.tls END,
              address = CASE WHEN excluded.address <> '' THEN excluded.address ELSE r.address END,
              address_key = CASE WHEN excluded.address <> '' THEN excluded.address_key ELSE r.address_key END,
              domain = CASE WHEN excluded.address <> '' THEN excluded.domain ELSE r.domain END
            """,
            ("mid", r.Mid), ("rid", r.Rid), ("address", address), ("key", SqliteTrackingStore.AddressKey(address)),
            ("domain", SqliteTrackingStore.DomainKey(address)), ("status", r.Status), ("tls", r.Tls), ("response", r.Response), ("dcid", r.Dcid),
            ("t", TrackingTime.ToStored(r.Time)));
        Add(commands, $"""
            UPDATE tracking_messages m SET
              updated = greatest(m.updated, @t),
              tls = CASE WHEN @tls <> 'none' THEN @tls ELSE m.tls END,
              status = {StatusFromRecipients}
            WHERE m.mid = @mid AND m.status <> 'rejected'
            """, ("mid", r.Mid), ("t", TrackingTime.ToStored(r.Time)), ("tls", r.Tls));
    }

    public int DeleteReceivedBefore(DateTimeOffset cutoff, int maxMessages)
    {
        var before = TrackingTime.ToStored(cutoff);
        using var c = _db.Source.OpenConnection();
        using var tx = c.BeginTransaction();
        var expired = new List<long>();
        using (var select = new NpgsqlCommand("SELECT mid FROM tracking_messages WHERE received < @cutoff ORDER BY received LIMIT @n", c, tx))
        {
            select.Parameters.AddWithValue("cutoff", before);
            select.Parameters.AddWithValue("n", maxMessages);
            using var reader = select.ExecuteReader();
            while (reader.Read()) expired.Add(reader.GetInt64(0));
        }
        if (expired.Count == 0) return 0;
        // Locked as writers lock them (every member runs the retention, and writes may come for
        // these messages meanwhile); what another member deleted first is not counted.
        using (var locks = new NpgsqlBatch(c, tx))
        {
            LockMessages(locks, expired);
            locks.ExecuteNonQuery();
        }
        using var delete = new NpgsqlCommand("""
            WITH deleted AS (DELETE FROM tracking_messages WHERE mid = ANY(@mids) AND received < @cutoff RETURNING mid),
              deleted_steps AS (DELETE FROM tracking_steps WHERE mid IN (SELECT mid FROM deleted)),
              deleted_recipients AS (DELETE FROM tracking_recipients WHERE mid IN (SELECT mid FROM deleted))
            SELECT count(*) FROM deleted
            """, c, tx);
        delete.Parameters.AddWithValue("mids", expired.ToArray());
        delete.Parameters.AddWithValue("cutoff", before);
        var count = Convert.ToInt32(delete.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        tx.Commit();
        return count;
    }

    /// <summary>Refreshes the planner's statistics after many deletions (ANALYZE samples: bounded work).</summary>
    public void Optimize()
    {
        using var cmd = _db.Source.CreateCommand("ANALYZE tracking_messages, tracking_recipients, tracking_steps");
        cmd.ExecuteNonQuery();
    }

    // ---------------- reads ----------------

    public IReadOnlyList<TrackedMessageSummary> Search(TrackingQuery query)
    {
        if (query.Problems() is { Count: > 0 } problems) throw new ArgumentException(string.Join("; ", problems));
        using var c = _db.Source.OpenConnection();
        using var cmd = new NpgsqlCommand { Connection = c };
        var where = new List<string>();
        void Criterion(string condition, string parameter, object value)
        {
            where.Add(condition);
            cmd.Parameters.AddWithValue(parameter, value);
        }
        // PostgreSQL's planner picks the narrowest index from its statistics: the criteria are simply combined.
        if (query.Mid is { } mid) Criterion("m.mid = @mid", "mid", mid);
        var range = "";
        if (query.From is { } since)
        {
            Criterion("m.received >= @from", "from", TrackingTime.ToStored(since));
            range += " AND r.received >= @from";
        }
        if (query.To is { } until)
        {
            Criterion("m.received < @to", "to", TrackingTime.ToStored(until));
            range += " AND r.received < @to";
        }
        if (query.Sender is { } sender)
        {
            var (isDomain, key) = SqliteTrackingStore.AddressCriterion(sender);
            Criterion($"m.{(isDomain ? "sender_domain" : "sender_key")} = @sender", "sender", key);
        }
        if (query.Recipient is { } recipient)
        {
            var (isDomain, key) = SqliteTrackingStore.AddressCriterion(recipient);
            Criterion($"m.mid IN (SELECT r.mid FROM tracking_recipients r WHERE r.{(isDomain ? "domain" : "address_key")} = @rcpt{range})", "rcpt", key);
        }
        if (query.Status is { } status) Criterion("m.status = @status", "status", status);
        if (query.Tls is { } tls) Criterion("m.tls = @tls", "tls", tls);
        if (query.SubjectContains is { } text) Criterion("m.subject ILIKE @subject", "subject", "%" + LikeLiteral(text) + "%");
        cmd.Parameters.AddWithValue("limit", query.Limit);
        cmd.CommandText = $"""
            SELECT {TrackingRows.SummaryColumns} FROM tracking_messages m
            {(where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where))}
            ORDER BY m.received DESC, m.mid DESC LIMIT @limit
            """;
        var rows = new List<MessageRow>();
        using (var reader = cmd.ExecuteReader())
            while (reader.Read()) rows.Add(MessageRow.Read(reader));
        var recipients = RecipientsOf(c, rows.Select(r => r.Mid).ToArray());
        return rows.Select(r => r.Summary(recipients.GetValueOrDefault(r.Mid) ?? [], SqliteTrackingStore.MaxRecipientsListed)).ToList();
    }

    /// <summary>Text matched as itself inside a LIKE pattern (backslash is LIKE's escape character).</summary>
    private static string LikeLiteral(string text) => text.Replace(@"\", @"\\").Replace("%", @"\%").Replace("_", @"\_");

    private static Dictionary<long, List<TrackedRecipient>> RecipientsOf(NpgsqlConnection c, long[] mids)
    {
        var result = new Dictionary<long, List<TrackedRecipient>>();
        if (mids.Length == 0) return result;
        using var cmd = new NpgsqlCommand($"SELECT {TrackingRows.RecipientColumns} FROM tracking_recipients WHERE mid = ANY(@mids) ORDER BY mid, rid", c);
        cmd.Parameters.AddWithValue("mids", mids);
        using var reader = cmd.ExecuteReader();
        TrackingRows.ReadRecipients(reader, result);
        return result;
    }

    public TrackedMessage? Get(long mid)
    {
        using var c = _db.Source.OpenConnection();
        MessageRow row;
        Dictionary<string, string> inbound;
        using (var cmd = new NpgsqlCommand($"SELECT {TrackingRows.SummaryColumns}, {TrackingRows.InboundColumns} FROM tracking_messages m WHERE m.mid = @mid", c))
        {
            cmd.Parameters.AddWithValue("mid", mid);
            using var r = cmd.ExecuteReader();
            if (!r.Read()) return null;
            row = MessageRow.Read(r);
            inbound = TrackingRows.Inbound(r, row);
        }
        var recipients = RecipientsOf(c, [mid]).GetValueOrDefault(mid) ?? [];
        var steps = new List<TrackingStep>();
        var truncated = false;
        using (var cmd = new NpgsqlCommand($"SELECT {TrackingRows.StepColumns}, member FROM tracking_steps WHERE mid = @mid ORDER BY time, seq LIMIT @n", c))
        {
            cmd.Parameters.AddWithValue("mid", mid);
            cmd.Parameters.AddWithValue("n", SqliteTrackingStore.MaxStepsRead + 1);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                if (steps.Count == SqliteTrackingStore.MaxStepsRead) { truncated = true; break; }
                steps.Add(TrackingRows.Step(r) with { Member = r.GetString(5) });
            }
        }
        return new TrackedMessage(row.Summary(recipients, recipients.Count), inbound, steps, truncated);
    }

    /// <summary>The process's database and its pools are shared (<see cref="PostgresDatabase.For"/>): nothing of this store's own to close.</summary>
    public void Dispose() { }
}
