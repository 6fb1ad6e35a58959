using System.Text.Json;
using Microsoft.Data.Sqlite;
using Postern.Queue;

namespace Postern.Observability;

/// <summary>
/// Message tracking in SQLite: &lt;data&gt;/tracking/tracking.db (0600, WAL). One row per message
/// (with the columns the searches use, each behind an index that ends in the received time, so
/// "newest first" walks an index and stops at the limit), one per recipient, and the steps of
/// each message (appended in order, found by MID through a small index). Subjects are indexed by trigrams
/// (FTS5) for "contains" searches. Writes come from one writer in batches; reads open their own
/// read-only connections, so the CLI and the web page search while the gateway writes.
/// </summary>
public sealed class SqliteTrackingStore : ITrackingStore
{
    public const int SchemaVersion = 1;
    /// <summary>Steps read for one story at most (a message retried for days has a few hundred).</summary>
    public const int MaxStepsRead = 5000;
    /// <summary>Recipients listed per message in search results at most (the count says how many there are).</summary>
    public const int MaxRecipientsListed = 50;
    /// <summary>A criterion matching at most this many messages drives a search (its matches are read and sorted); broader ones only filter a walk of the newest.</summary>
    internal int DriverCap { get; set; } = 50_000;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS messages(
          mid INTEGER PRIMARY KEY, received INTEGER NOT NULL, updated INTEGER NOT NULL, origin TEXT NOT NULL,
          icid INTEGER, client_address TEXT, reverse_dns TEXT, reverse_verified INTEGER, listener TEXT,
          sender_group TEXT, policy TEXT, policy_action TEXT, group_match TEXT, inbound_tls TEXT, inbound_cipher TEXT,
          sender TEXT NOT NULL, sender_key TEXT NOT NULL, sender_domain TEXT NOT NULL,
          subject TEXT, size INTEGER, message_id TEXT, bounce_of INTEGER,
          status TEXT NOT NULL, tls TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS messages_received ON messages(received);
        CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender_key, received);
        CREATE INDEX IF NOT EXISTS messages_sender_domain ON messages(sender_domain, received);
        CREATE INDEX IF NOT EXISTS messages_status ON messages(status, received);
        CREATE INDEX IF NOT EXISTS messages_tls ON messages(tls, received);
        CREATE TABLE IF NOT EXISTS recipients(
          mid INTEGER NOT NULL, rid INTEGER NOT NULL, received INTEGER NOT NULL, address TEXT NOT NULL, address_key TEXT NOT NULL,
          domain TEXT NOT NULL, status TEXT NOT NULL, tls TEXT NOT NULL, response TEXT, dcid INTEGER, updated INTEGER NOT NULL,
          PRIMARY KEY(mid, rid)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS recipients_address ON recipients(address_key, received);
        CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain, received);
        CREATE TABLE IF NOT EXISTS steps(
          seq INTEGER PRIMARY KEY, mid INTEGER NOT NULL, time INTEGER NOT NULL, kind TEXT NOT NULL, dcid INTEGER, rid INTEGER, data TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS steps_mid ON steps(mid);
        CREATE VIRTUAL TABLE IF NOT EXISTS subject_fts USING fts5(subject, content='messages', content_rowid='mid', tokenize='trigram');
        """;

    private readonly string _path;
    private readonly string _readConnectionString;
    private readonly SqliteConnection? _writer;
    private readonly Lock _writeGate = new();
    private long _nextSeq;

    private SqliteTrackingStore(string path, SqliteConnection? writer)
    {
        _path = path;
        _writer = writer;
        _readConnectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, DefaultTimeout = 30 }.ToString();
        if (writer is not null)
        {
            using var cmd = writer.CreateCommand();
            cmd.CommandText = "SELECT coalesce(max(seq), 0) + 1 FROM steps";
            _nextSeq = (long)cmd.ExecuteScalar()!;
        }
    }

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "tracking", "tracking.db");

    /// <summary>The gateway's store: creates the file (0600, WAL) and the schema.</summary>
    public static SqliteTrackingStore OpenForWriting(string path)
    {
        // Addresses and subjects are personal data: the folder is the service user's alone, like certs/.
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(folder);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var connection = SqliteFiles.OpenPrivate(path, Schema);
        try
        {
            // Tracking is a record of what happened, not mail: a power cut may lose its last
            // batches, so commits are not fsync'd one by one (the WAL stays consistent).
            Exec(connection, $"PRAGMA synchronous=NORMAL; PRAGMA user_version={SchemaVersion};");
            return new SqliteTrackingStore(path, connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>A reader (the CLI): never writes, works while the gateway writes.</summary>
    public static SqliteTrackingStore OpenForReading(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no tracking database at {path}", path);
        return new SqliteTrackingStore(path, null);
    }

    public string DatabasePath => _path;

    private static void Exec(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private SqliteConnection Writer => _writer ?? throw new InvalidOperationException("this tracking store was opened for reading");

    // ---------------- writes ----------------

    /// <summary>A statement prepared once and run many times (the writer's statements: a million messages are a few million runs).</summary>
    private sealed class Prepared(SqliteConnection connection, string sql) : IDisposable
    {
        private readonly SqliteCommand _command = CreateCommand(connection, sql);

        private static SqliteCommand CreateCommand(SqliteConnection connection, string sql)
        {
            var cmd = connection.CreateCommand();
            cmd.CommandText = sql;
            return cmd;
        }

        public Prepared Set(string name, object? value)
        {
            var v = value ?? DBNull.Value;
            if (_command.Parameters.Contains(name)) _command.Parameters[name].Value = v;
            else _command.Parameters.AddWithValue(name, v);
            return this;
        }

        public void Run(SqliteTransaction tx)
        {
            _command.Transaction = tx;
            _command.ExecuteNonQuery();
        }

        public object? Scalar(SqliteTransaction tx)
        {
            _command.Transaction = tx;
            return _command.ExecuteScalar();
        }

        public void Dispose() => _command.Dispose();
    }

    private Prepared? _exists, _deleteMessage, _insertMessage, _insertRecipient, _dsnRecipient, _placeholder, _insertStep, _changeRecipient;

    /// <summary>MIDs known to have a row (entered or placed by this writer): their steps need no placeholder. Bounded, oldest forgotten first.</summary>
    private readonly HashSet<long> _known = [];
    private readonly Queue<long> _knownOrder = new();
    private const int MaxKnown = 200_000;

    private void Know(long mid)
    {
        if (!_known.Add(mid)) return;
        _knownOrder.Enqueue(mid);
        if (_knownOrder.Count > MaxKnown) _known.Remove(_knownOrder.Dequeue());
    }

    public void Write(IReadOnlyList<TrackingWrite> batch)
    {
        if (batch.Count == 0) return;
        lock (_writeGate)
        {
            var c = Writer;
            using var tx = c.BeginTransaction();
            var seq = _nextSeq;
            try
            {
                foreach (var op in batch)
                {
                    switch (op)
                    {
                        case MessageEntered m: Enter(c, tx, m, ref seq); break;
                        case StepAdded s:
                            Placeholder(c, tx, s.Mid, s.Time, null);
                            InsertStep(c, tx, s.Mid, s.Step, ref seq);
                            break;
                        case RecipientChanged r: ChangeRecipient(c, tx, r); break;
                    }
                }
                tx.Commit();
            }
            catch
            {
                _known.Clear();   // what this batch placed is rolled back
                _knownOrder.Clear();
                throw;
            }
            _nextSeq = seq;
        }
    }

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd;
    }

    private void Enter(SqliteConnection c, SqliteTransaction tx, MessageEntered m, ref long seq)
    {
        var inbound = InboundRow.From(m.Inbound);
        var t = TrackingTime.ToStored(m.Time);
        // A MID seen before belongs to an older message (the queue was reset): it goes first.
        (_exists ??= new Prepared(c, "SELECT 1 FROM messages WHERE mid = $mid")).Set("$mid", m.Mid);
        if (_known.Contains(m.Mid) || _exists.Scalar(tx) is not null)
            (_deleteMessage ??= new Prepared(c, """
                INSERT INTO subject_fts(subject_fts, rowid, subject) SELECT 'delete', mid, subject FROM messages WHERE mid = $mid AND subject IS NOT NULL;
                DELETE FROM steps WHERE mid = $mid;
                DELETE FROM recipients WHERE mid = $mid;
                DELETE FROM messages WHERE mid = $mid;
                """)).Set("$mid", m.Mid).Run(tx);
        (_insertMessage ??= new Prepared(c, """
            INSERT INTO messages(mid, received, updated, origin, icid, client_address, reverse_dns, reverse_verified, listener, sender_group, policy,
              policy_action, group_match, inbound_tls, inbound_cipher, sender, sender_key, sender_domain, subject, size, message_id, bounce_of, status, tls)
            VALUES($mid, $t, $t, $origin, $icid, $client, $rdns, $rverified, $listener, $group, $policy, $action, $match, $itls, $icipher,
              $sender, $skey, $sdomain, $subject, $size, $msgid, $bounceof, $status, 'none');
            INSERT INTO subject_fts(rowid, subject) SELECT $mid, $subject WHERE $subject IS NOT NULL;
            """))
            .Set("$mid", m.Mid).Set("$t", t).Set("$origin", m.Origin)
            .Set("$icid", inbound.Icid).Set("$client", inbound.Client).Set("$rdns", inbound.ReverseDns)
            .Set("$rverified", inbound.ReverseVerified is { } verified ? verified ? 1 : 0 : null)
            .Set("$listener", inbound.Listener).Set("$group", inbound.SenderGroup).Set("$policy", inbound.Policy)
            .Set("$action", inbound.Action).Set("$match", inbound.Match).Set("$itls", inbound.Tls).Set("$icipher", inbound.TlsCipher)
            .Set("$sender", m.Sender).Set("$skey", AddressKey(m.Sender)).Set("$sdomain", DomainKey(m.Sender))
            .Set("$subject", m.Subject).Set("$size", m.Size).Set("$msgid", m.MessageId).Set("$bounceof", m.BounceOf).Set("$status", m.Status)
            .Run(tx);
        Know(m.Mid);
        var recipientStatus = m.Status == TrackingStatus.Rejected ? TrackingStatus.Rejected : TrackingStatus.Queued;
        _insertRecipient ??= new Prepared(c, """
            INSERT OR REPLACE INTO recipients(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
            VALUES($mid, $rid, $t, $address, $key, $domain, $status, 'none', NULL, NULL, $t)
            """);
        foreach (var (rid, address) in m.Recipients)
            _insertRecipient.Set("$mid", m.Mid).Set("$rid", rid).Set("$t", t).Set("$address", address).Set("$key", AddressKey(address))
                .Set("$domain", DomainKey(address)).Set("$status", recipientStatus).Run(tx);
        if (m.RecipientIsSenderOf is { } original)
        {
            // A DSN goes to the sender of the message it reports on.
            (_dsnRecipient ??= new Prepared(c, """
                INSERT OR REPLACE INTO recipients(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
                SELECT $mid, 0, $t, sender, sender_key, sender_domain, 'queued', 'none', NULL, NULL, $t FROM messages WHERE mid = $original AND sender <> ''
                """)).Set("$mid", m.Mid).Set("$t", t).Set("$original", original).Run(tx);
        }
        foreach (var step in m.Steps) InsertStep(c, tx, m.Mid, step, ref seq);
    }

    /// <summary>A message seen first after its acceptance (tracking was off, or its events were dropped): a row of unknown origin.</summary>
    private void Placeholder(SqliteConnection c, SqliteTransaction tx, long mid, DateTimeOffset time, string? sender)
    {
        if (_known.Contains(mid)) return;
        Know(mid);
        var t = TrackingTime.ToStored(time);
        (_placeholder ??= new Prepared(c, """
            INSERT OR IGNORE INTO messages(mid, received, updated, origin, sender, sender_key, sender_domain, status, tls)
            VALUES($mid, $t, $t, 'unknown', $sender, $skey, $sdomain, 'queued', 'none')
            """))
            .Set("$mid", mid).Set("$t", t).Set("$sender", sender ?? "").Set("$skey", AddressKey(sender ?? "")).Set("$sdomain", DomainKey(sender ?? ""))
            .Run(tx);
    }

    private void InsertStep(SqliteConnection c, SqliteTransaction tx, long mid, TrackingStep step, ref long seq)
    {
        (_insertStep ??= new Prepared(c, "INSERT INTO steps(mid, seq, time, kind, dcid, rid, data) VALUES($mid, $seq, $t, $kind, $dcid, $rid, $data)"))
            .Set("$mid", mid).Set("$seq", seq++).Set("$t", TrackingTime.ToStored(step.Time)).Set("$kind", step.Kind)
            .Set("$dcid", step.Dcid).Set("$rid", step.Rid).Set("$data", FieldsJson(step.Fields))
            .Run(tx);
    }

    private readonly System.Buffers.ArrayBufferWriter<byte> _json = new(1024);

    /// <summary>A step's fields as a JSON object, written directly (this runs for every step).</summary>
    private string FieldsJson(IReadOnlyDictionary<string, string> fields)
    {
        _json.ResetWrittenCount();
        using (var w = new Utf8JsonWriter(_json))
        {
            w.WriteStartObject();
            foreach (var (name, value) in fields) w.WriteString(name, value);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(_json.WrittenSpan);
    }

    private void ChangeRecipient(SqliteConnection c, SqliteTransaction tx, RecipientChanged r)
    {
        Placeholder(c, tx, r.Mid, r.Time, r.Sender);
        var address = r.Address ?? "";
        (_changeRecipient ??= new Prepared(c, """
            INSERT INTO recipients(mid, rid, received, address, address_key, domain, status, tls, response, dcid, updated)
            VALUES($mid, $rid, (SELECT received FROM messages WHERE mid = $mid), $address, $key, $domain, $status, $tls, $response, $dcid, $t)
            ON CONFLICT(mid, rid) DO UPDATE SET
              status = excluded.status, response = excluded.response, dcid = excluded.dcid, updated = excluded.updated,
              tls = CASE WHEN excluded.tls <> 'none' THEN excluded.tls ELSE recipients.tls END,
              address = CASE WHEN excluded.address <> '' THEN excluded.address ELSE recipients.address END,
              address_key = CASE WHEN excluded.address <> '' THEN excluded.address_key ELSE recipients.address_key END,
              domain = CASE WHEN excluded.address <> '' THEN excluded.domain ELSE recipients.domain END;
            UPDATE messages SET
              updated = max(updated, $t),
              tls = CASE WHEN $tls <> 'none' THEN $tls ELSE tls END,
              status = (SELECT CASE
                  WHEN count(*) = sum(status = 'delivered') THEN 'delivered'
                  WHEN count(*) = sum(status = 'bounced') THEN 'bounced'
                  WHEN count(*) = sum(status IN ('delivered', 'bounced')) THEN 'partial'
                  WHEN sum(status = 'deferred') > 0 THEN 'deferred'
                  ELSE 'queued' END
                FROM recipients WHERE mid = $mid)
            WHERE mid = $mid AND status <> 'rejected';
            """))
            .Set("$mid", r.Mid).Set("$rid", r.Rid).Set("$address", address).Set("$key", AddressKey(address)).Set("$domain", DomainKey(address))
            .Set("$status", r.Status).Set("$tls", r.Tls).Set("$response", r.Response).Set("$dcid", r.Dcid).Set("$t", TrackingTime.ToStored(r.Time))
            .Run(tx);
    }

    public int DeleteReceivedBefore(DateTimeOffset cutoff, int maxMessages)
    {
        lock (_writeGate)
        {
            var c = Writer;
            using var tx = c.BeginTransaction();
            using var cmd = Command(c, tx, """
                CREATE TEMP TABLE IF NOT EXISTS expired(mid INTEGER PRIMARY KEY);
                DELETE FROM expired;
                INSERT INTO expired SELECT mid FROM messages WHERE received < $cutoff ORDER BY received LIMIT $n;
                INSERT INTO subject_fts(subject_fts, rowid, subject) SELECT 'delete', mid, subject FROM messages WHERE mid IN expired AND subject IS NOT NULL;
                DELETE FROM steps WHERE mid IN expired;
                DELETE FROM recipients WHERE mid IN expired;
                DELETE FROM messages WHERE mid IN expired;
                SELECT count(*) FROM expired;
                """);
            cmd.Parameters.AddWithValue("$cutoff", TrackingTime.ToStored(cutoff));
            cmd.Parameters.AddWithValue("$n", maxMessages);
            var deleted = Convert.ToInt32(cmd.ExecuteScalar());
            tx.Commit();
            return deleted;
        }
    }

    /// <summary>Refreshes the planner's statistics (bounded work), so each search picks its narrowest index.</summary>
    public void Optimize()
    {
        lock (_writeGate) Exec(Writer, "PRAGMA analysis_limit=1000; ANALYZE; PRAGMA optimize;");
    }

    // ---------------- reads ----------------

    private SqliteConnection OpenReader()
    {
        var c = new SqliteConnection(_readConnectionString);
        c.Open();
        Exec(c, "PRAGMA busy_timeout=30000;");
        return c;
    }

    /// <summary>"alice@example.com" compares case-insensitively.</summary>
    internal static string AddressKey(string address) => address.ToLowerInvariant();

    /// <summary>The domain of an address, lower case ("" for the null sender).</summary>
    internal static string DomainKey(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? "" : address[(at + 1)..].ToLowerInvariant();
    }

    /// <summary>An address criterion: ("address", key) or, for "example.com" / "@example.com", ("domain", key).</summary>
    internal static (bool IsDomain, string Key) AddressCriterion(string text)
    {
        var t = text.Trim();
        if (t.StartsWith('<') && t.EndsWith('>')) t = t[1..^1];
        if (t.StartsWith('@')) return (true, t[1..].ToLowerInvariant());
        return t.Contains('@') ? (false, AddressKey(t)) : (true, t.ToLowerInvariant());
    }

    /// <summary>
    /// One criterion of a search, in the two forms the query can use: as the driver (a list of
    /// MIDs read from its own index, in the time range) or as a filter that can drive nothing.
    /// </summary>
    private sealed record Criterion(string Driver, string Filter, string Probe);

    public IReadOnlyList<TrackedMessageSummary> Search(TrackingQuery query)
    {
        if (query.Problems() is { Count: > 0 } problems) throw new ArgumentException(string.Join("; ", problems));
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        var p = cmd.Parameters;
        var criteria = new List<Criterion>();
        var range = "";
        if (query.From is { } since) { range += " AND received >= $from"; p.AddWithValue("$from", TrackingTime.ToStored(since)); }
        if (query.To is { } until) { range += " AND received < $to"; p.AddWithValue("$to", TrackingTime.ToStored(until)); }
        Criterion? recipientCriterion = null;
        string? recipientColumn = null;
        if (query.Recipient is { } recipient)
        {
            var (isDomain, key) = AddressCriterion(recipient);
            recipientColumn = isDomain ? "domain" : "address_key";
            p.AddWithValue("$rcpt", key);
            criteria.Add(recipientCriterion = new($"SELECT mid FROM recipients WHERE {recipientColumn} = $rcpt{range}",
                $"EXISTS (SELECT 1 FROM recipients r WHERE r.mid = m.mid AND r.{recipientColumn} = $rcpt)",
                $"SELECT 1 FROM recipients WHERE {recipientColumn} = $rcpt{range}"));
        }
        void Column(string column, string parameter, string value)
        {
            p.AddWithValue(parameter, value);
            criteria.Add(new($"SELECT mid FROM messages WHERE {column} = {parameter}{range}", $"+m.{column} = {parameter}",
                $"SELECT 1 FROM messages WHERE {column} = {parameter}{range}"));
        }
        if (query.Sender is { } sender)
        {
            var (isDomain, key) = AddressCriterion(sender);
            Column(isDomain ? "sender_domain" : "sender_key", "$sender", key);
        }
        if (query.Status is { } status) Column("status", "$status", status);
        if (query.Tls is { } tls) Column("tls", "$tls", tls);
        Criterion? subjectCriterion = null;
        if (query.SubjectContains is { } text)
        {
            p.AddWithValue("$fts", FtsPhrase(text));
            const string matches = "SELECT rowid FROM subject_fts WHERE subject_fts MATCH $fts";
            criteria.Add(subjectCriterion = new(matches, $"+m.mid IN ({matches})", matches));
        }

        // Which criterion is narrowest? Each is counted on its own index, up to a cap (a few ms each).
        // The narrowest under the cap drives: its MIDs are read and sorted, the others only filter them
        // (two broad criteria may have few messages in common: walking would read far). Otherwise the
        // newest messages are walked on an index (the recipients' when a recipient is asked for), and
        // the walk stops at the limit.
        var where = new List<string>();
        var from = "messages m";
        var time = "m.received";
        var order = "m.mid";
        Criterion? driver = null;
        if (query.Mid is { } mid)
        {
            where.Add("m.mid = $mid");
            p.AddWithValue("$mid", mid);
        }
        else if (criteria.Count > 1 || subjectCriterion is not null)
        {
            // (One indexed criterion alone is best walked: its index is in time order.)
            var narrowest = criteria.Select(k => (Criterion: k, Count: Count(c, p, k.Probe))).MinBy(k => k.Count);
            if (narrowest.Count <= DriverCap) driver = narrowest.Criterion;
        }
        if (query.Mid is not null || driver is not null)
        {
            if (driver is not null) where.Add($"m.mid IN ({driver.Driver})");
            where.AddRange(criteria.Where(k => k != driver).Select(k => k.Filter));
            if (query.From is not null) where.Add("+m.received >= $from");
            if (query.To is not null) where.Add("+m.received < $to");
        }
        else
        {
            foreach (var k in criteria)
            {
                if (k == recipientCriterion)
                {
                    // Walk the recipients' index newest first; a message with two matching recipients comes twice and is read once.
                    from = "recipients r JOIN messages m ON m.mid = r.mid";
                    time = "r.received";
                    order = "r.mid";   // the recipients' index is (domain or address, received, mid): no sort
                    where.Add($"r.{recipientColumn} = $rcpt");
                }
                else if (k == subjectCriterion) where.Add(k.Filter);   // never a long driving list
                else where.Add(k.Filter[1..]);                         // the planner may walk its index
            }
            if (query.From is not null) where.Add($"{time} >= $from");
            if (query.To is not null) where.Add($"{time} < $to");
        }
        var walksRecipients = from != "messages m";
        cmd.CommandText = $"""
            SELECT {TrackingRows.SummaryColumns}
            FROM {from} {(where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where))}
            ORDER BY {time} DESC, {order} DESC
            {(walksRecipients ? "" : "LIMIT $limit")}
            """;
        // Walking recipients, a message can come once per matching recipient: the reader stops at the limit instead.
        if (!walksRecipients) p.AddWithValue("$limit", query.Limit);
        var rows = new List<MessageRow>();
        var seen = new HashSet<long>();
        using (var reader = cmd.ExecuteReader())
        {
            while (rows.Count < query.Limit && reader.Read())
                if (seen.Add(reader.GetInt64(0))) rows.Add(MessageRow.Read(reader));
        }
        var recipients = RecipientsOf(c, rows.Select(r => r.Mid).ToList());
        return rows.Select(r => r.Summary(recipients.GetValueOrDefault(r.Mid) ?? [], MaxRecipientsListed)).ToList();
    }

    /// <summary>How many rows a criterion's index holds, counted up to <see cref="DriverCap"/> + 1.</summary>
    private long Count(SqliteConnection c, SqliteParameterCollection parameters, string probe)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT count(*) FROM ({probe} LIMIT {DriverCap + 1})";
        foreach (SqliteParameter parameter in parameters)
            if (probe.Contains(parameter.ParameterName, StringComparison.Ordinal)) cmd.Parameters.AddWithValue(parameter.ParameterName, parameter.Value);
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>The text as one FTS5 phrase: with the trigram tokenizer, a substring match.</summary>
    private static string FtsPhrase(string text) => "\"" + text.Replace("\"", "\"\"") + "\"";

    private static Dictionary<long, List<TrackedRecipient>> RecipientsOf(SqliteConnection c, IReadOnlyList<long> mids)
    {
        var result = new Dictionary<long, List<TrackedRecipient>>();
        // At most TrackingQuery.MaxLimit MIDs: within SQLite's parameter limit.
        foreach (var chunk in mids.Chunk(500))
        {
            using var cmd = c.CreateCommand();
            var names = chunk.Select((m, i) => { cmd.Parameters.AddWithValue($"$m{i}", m); return $"$m{i}"; });
            cmd.CommandText = $"SELECT {TrackingRows.RecipientColumns} FROM recipients WHERE mid IN ({string.Join(",", names)}) ORDER BY mid, rid";
            using var reader = cmd.ExecuteReader();
            TrackingRows.ReadRecipients(reader, result);
        }
        return result;
    }

    public TrackedMessage? Get(long mid)
    {
        using var c = OpenReader();
        TrackedMessageSummary summary;
        Dictionary<string, string> inbound;
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = $"SELECT {TrackingRows.SummaryColumns}, {TrackingRows.InboundColumns} FROM messages m WHERE m.mid = $mid";
            cmd.Parameters.AddWithValue("$mid", mid);
            using var r = cmd.ExecuteReader();
            if (!r.Read()) return null;
            var row = MessageRow.Read(r);
            var recipients = RecipientsOf(c, [mid]).GetValueOrDefault(mid) ?? [];
            summary = row.Summary(recipients, recipients.Count);
            inbound = TrackingRows.Inbound(r, row);
        }
        var steps = new List<TrackingStep>();
        var truncated = false;
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = $"SELECT {TrackingRows.StepColumns} FROM steps WHERE mid = $mid ORDER BY time, seq LIMIT $n";   // host attempts are written when a deferral claims them, with their own time
            cmd.Parameters.AddWithValue("$mid", mid);
            cmd.Parameters.AddWithValue("$n", MaxStepsRead + 1);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                if (steps.Count == MaxStepsRead) { truncated = true; break; }
                steps.Add(TrackingRows.Step(r));
            }
        }
        return new TrackedMessage(summary, inbound, steps, truncated);
    }

    /// <summary>How many messages are tracked (for the bench and the status line).</summary>
    public long Count()
    {
        using var c = OpenReader();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM messages";
        return (long)cmd.ExecuteScalar()!;
    }

    public void Dispose()
    {
        lock (_writeGate)
        {
            if (_writer is null) return;
            foreach (var p in new[] { _exists, _deleteMessage, _insertMessage, _insertRecipient, _dsnRecipient, _placeholder, _insertStep, _changeRecipient }) p?.Dispose();
            try { Exec(_writer, "PRAGMA optimize;"); } catch (SqliteException) { /* closing anyway */ }
            _writer.Dispose();
        }
    }
}
