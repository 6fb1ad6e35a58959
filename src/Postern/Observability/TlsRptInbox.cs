using System.Data.Common;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using MimeKit;
using Postern.Admin;
using Postern.Inbound;
using Postern.Outbound;
using Postern.Queue;

namespace Postern.Observability;

/// <summary>One failure line of a report another organisation sent us (RFC 8460 §4.4 "failure-details"), as written there.</summary>
public sealed record ReceivedTlsFailure(string ResultType, string? SendingMtaIp, string? ReceivingMxHostname, string? ReceivingMxHelo,
    string? ReceivingIp, long FailedSessionCount, string? AdditionalInformation, string? FailureReasonCode);

/// <summary>One policy's part of a received report: the policy the sender applied to one of our domains, and how its sessions went.</summary>
public sealed record ReceivedTlsPolicy(string PolicyType, IReadOnlyList<string> PolicyStrings, string PolicyDomain, IReadOnlyList<string> MxHosts,
    long SuccessfulSessions, long FailedSessions, IReadOnlyList<ReceivedTlsFailure> Failures);

/// <summary>
/// A TLS report received from another organisation: how its MTAs fared when they sent mail to
/// our domains. Every string is the sender's text: escape it (TrackingText.Clean) before it is shown.
/// </summary>
public sealed record ReceivedTlsReport(string OrganizationName, DateTimeOffset Start, DateTimeOffset End, string ContactInfo, string ReportId,
    IReadOnlyList<ReceivedTlsPolicy> Policies)
{
    [JsonIgnore] public long SuccessfulSessions => Policies.Sum(p => p.SuccessfulSessions);
    [JsonIgnore] public long FailedSessions => Policies.Sum(p => p.FailedSessions);
    [JsonIgnore] public IReadOnlyList<string> PolicyDomains => Policies.Select(p => p.PolicyDomain.ToLowerInvariant()).Distinct().ToList();
}

/// <summary>A parsed report with the JSON it was read from (decompressed).</summary>
public sealed record ParsedTlsReport(ReceivedTlsReport Report, string Json);

/// <summary>A report found in a mail, with the RFC 8460 §5.3 headers when the mail had them.</summary>
public sealed record TlsRptMail(ParsedTlsReport Parsed, string? ReportDomain, string? Submitter);

/// <summary>Why a payload is not a report we can read. The message names the member and quotes peer text escaped.</summary>
public sealed class TlsRptParseException(string message) : Exception(message);

/// <summary>
/// Reads received TLS reports: the §4.4 JSON, plain or gzipped (§5.3), and mail carrying one.
/// Pure and bounded: a hostile payload gets a <see cref="TlsRptParseException"/>, never another exception.
/// </summary>
public static partial class TlsRptReader
{
    /// <summary>
    /// The most a received report may be before decompression. Fixed rather than
    /// tlsReporting.maxReportBytes, which bounds the reports we send: other senders' reports
    /// for a busy domain can be larger than ours, and 10 MB is Kestrel's request cap too.
    /// </summary>
    public const int MaxPayloadBytes = 10 * 1024 * 1024;
    /// <summary>The most its JSON may be once decompressed: a gzip bomb stops here.</summary>
    public const int MaxJsonBytes = 20 * 1024 * 1024;
    private const int MaxPolicies = 1000, MaxFailures = 10_000, MaxStrings = 1000, MaxMimeParts = 100;
    /// <summary>More sessions than any sender has in a day: keeps the sums far from overflowing.</summary>
    private const long MaxCount = 1_000_000_000_000;

    public static bool IsGzip(ReadOnlySpan<byte> payload) => payload.Length >= 2 && payload[0] == 0x1f && payload[1] == 0x8b;

    /// <summary>Reads a report: gzip (found by its magic bytes) or plain JSON.</summary>
    public static ParsedTlsReport Parse(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty) throw Error("the report is empty");
        if (payload.Length > MaxPayloadBytes) throw Error($"the report is larger than {MaxPayloadBytes} bytes");
        var json = IsGzip(payload) ? Inflate(payload) : payload.ToArray();
        var start = json.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0;
        string text;
        try { text = new UTF8Encoding(false, true).GetString(json, start, json.Length - start); }
        catch (DecoderFallbackException) { throw Error("the report is not UTF-8 text"); }
        try
        {
            using var document = JsonDocument.Parse(json.AsMemory(start), new JsonDocumentOptions { MaxDepth = 16 });
            return new ParsedTlsReport(Read(document.RootElement), text);
        }
        catch (JsonException e) { throw Error($"the report is not JSON: {Clean(e.Message)}"); }
    }

    private static byte[] Inflate(ReadOnlySpan<byte> compressed)
    {
        using var input = new MemoryStream(compressed.ToArray(), writable: false);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = gzip.Read(buffer)) > 0)
            {
                if (output.Length + n > MaxJsonBytes) throw Error($"the report decompresses to more than {MaxJsonBytes} bytes");
                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException) { throw Error("the report is not valid gzip"); }
        return output.ToArray();
    }

    private static ReceivedTlsReport Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Error($"the report must be a JSON object, not {Kind(root.ValueKind)}");
        var range = Required(root, "date-range", "date-range", JsonValueKind.Object);
        var start = Time(range, "start-datetime", "date-range.start-datetime");
        var end = Time(range, "end-datetime", "date-range.end-datetime");
        if (end < start) throw Error("date-range.end-datetime is before start-datetime");
        var org = Text(root, "organization-name", "organization-name");
        var contact = Text(root, "contact-info", "contact-info");
        var reportId = Text(root, "report-id", "report-id");
        var policies = Items(Required(root, "policies", "policies", JsonValueKind.Array), "policies", MaxPolicies)
            .Select((entry, i) => Policy(entry, $"policies[{i}]")).ToList();
        return new ReceivedTlsReport(org, start, end, contact, reportId, policies);
    }

    private static ReceivedTlsPolicy Policy(JsonElement entry, string path)
    {
        if (entry.ValueKind != JsonValueKind.Object) throw Error($"{path} must be an object, not {Kind(entry.ValueKind)}");
        var policy = Required(entry, "policy", $"{path}.policy", JsonValueKind.Object);
        var type = Text(policy, "policy-type", $"{path}.policy.policy-type");
        if (type is not ("tlsa" or "sts" or "no-policy-found"))
            throw Error($"{path}.policy.policy-type '{Clean(type)}' is not tlsa, sts or no-policy-found");
        var strings = Strings(policy, "policy-string", $"{path}.policy.policy-string");
        var domain = Text(policy, "policy-domain", $"{path}.policy.policy-domain");
        var mx = Strings(policy, "mx-host", $"{path}.policy.mx-host");
        var summary = Required(entry, "summary", $"{path}.summary", JsonValueKind.Object);
        var successful = Count(summary, "total-successful-session-count", $"{path}.summary.total-successful-session-count");
        var failed = Count(summary, "total-failure-session-count", $"{path}.summary.total-failure-session-count");
        var failures = new List<ReceivedTlsFailure>();
        if (Optional(entry, "failure-details", $"{path}.failure-details", JsonValueKind.Array) is { } details)
            failures.AddRange(Items(details, $"{path}.failure-details", MaxFailures).Select((f, i) => Failure(f, $"{path}.failure-details[{i}]")));
        return new ReceivedTlsPolicy(type, strings, domain, mx, successful, failed, failures);
    }

    private static ReceivedTlsFailure Failure(JsonElement f, string path)
    {
        if (f.ValueKind != JsonValueKind.Object) throw Error($"{path} must be an object, not {Kind(f.ValueKind)}");
        // The result type is kept as written: the IANA registry of result types can grow.
        return new ReceivedTlsFailure(
            Text(f, "result-type", $"{path}.result-type"),
            OptionalText(f, "sending-mta-ip", path), OptionalText(f, "receiving-mx-hostname", path), OptionalText(f, "receiving-mx-helo", path),
            OptionalText(f, "receiving-ip", path), Count(f, "failed-session-count", $"{path}.failed-session-count"),
            OptionalText(f, "additional-information", path),
            // §4.4 names it failure-reason-code; the RFC's own example (Appendix B) writes failure-error-code.
            OptionalText(f, "failure-reason-code", path) ?? OptionalText(f, "failure-error-code", path));
    }

    private static JsonElement Required(JsonElement parent, string name, string path, JsonValueKind kind) =>
        Optional(parent, name, path, kind) ?? throw Error($"{path} is missing");

    private static JsonElement? Optional(JsonElement parent, string name, string path, JsonValueKind kind)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != kind) throw Error($"{path} must be {Kind(kind)}, not {Kind(value.ValueKind)}");
        return value;
    }

    private static string Text(JsonElement parent, string name, string path)
    {
        var text = Required(parent, name, path, JsonValueKind.String).GetString()!;
        return text.Length > 0 ? text : throw Error($"{path} is empty");
    }

    private static string? OptionalText(JsonElement parent, string name, string path) =>
        Optional(parent, name, $"{path}.{name}", JsonValueKind.String)?.GetString();

    private static long Count(JsonElement parent, string name, string path)
    {
        var value = Required(parent, name, path, JsonValueKind.Number);
        return value.TryGetInt64(out var n) && n is >= 0 and <= MaxCount ? n : throw Error($"{path} must be a whole number from 0 to {MaxCount}");
    }

    /// <summary>An array of strings; a lone string is taken as a list of one (some senders write mx-host so).</summary>
    private static List<string> Strings(JsonElement parent, string name, string path)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return [];
        if (value.ValueKind == JsonValueKind.String) return [value.GetString()!];
        if (value.ValueKind != JsonValueKind.Array) throw Error($"{path} must be an array of strings, not {Kind(value.ValueKind)}");
        return Items(value, path, MaxStrings).Select((s, i) => s.ValueKind == JsonValueKind.String ? s.GetString()!
            : throw Error($"{path}[{i}] must be a string, not {Kind(s.ValueKind)}")).ToList();
    }

    private static List<JsonElement> Items(JsonElement array, string path, int max) =>
        array.GetArrayLength() <= max ? array.EnumerateArray().ToList() : throw Error($"{path} has more than {max} entries");

    private static DateTimeOffset Time(JsonElement parent, string name, string path)
    {
        var text = Text(parent, name, path);
        if (!Rfc3339().IsMatch(text) || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var time))
            throw Error($"{path} '{Clean(text)}' is not an RFC 3339 date-time such as 2026-11-29T00:00:00Z");
        return time.ToUniversalTime();
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")]
    private static partial Regex Rfc3339();

    private static string Kind(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object", JsonValueKind.Array => "an array", JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number", JsonValueKind.True or JsonValueKind.False => "true or false", _ => "null",
    };

    private static string Clean(string text) => TrackingText.Clean(text, 80);

    private static TlsRptParseException Error(string message) => new(message);

    /// <summary>
    /// Finds the report in a mail (§5.3): the application/tlsrpt+gzip or +json part; else, leniently,
    /// an application/gzip or application/json part named *.json.gz or *.json. Takes the
    /// TLS-Report-Domain and TLS-Report-Submitter headers when present (neither is checked: they are the sender's word).
    /// </summary>
    public static TlsRptMail FromMail(ReadOnlyMemory<byte> mail)
    {
        MimeMessage message;
        try
        {
            using var stream = MemoryMarshal.TryGetArray(mail, out var segment)
                ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
                : new MemoryStream(mail.ToArray(), writable: false);
            message = MimeMessage.Load(new ParserOptions { MaxMimeDepth = 8 }, stream);
        }
        catch (FormatException e) { throw Error($"the mail cannot be read: {Clean(e.Message)}"); }
        return FromMail(message);
    }

    public static TlsRptMail FromMail(MimeMessage message)
    {
        var part = ReportPart(message) ?? throw Error("the mail has no application/tlsrpt+gzip or application/tlsrpt+json part");
        using var content = new MemoryStream();
        try { part.Content?.DecodeTo(content); }
        catch (Exception e) when (e is FormatException or IOException) { throw Error($"the report part cannot be decoded: {Clean(e.Message)}"); }
        var parsed = Parse(content.GetBuffer().AsSpan(0, (int)content.Length));
        return new TlsRptMail(parsed, Header(message, "TLS-Report-Domain"), Header(message, "TLS-Report-Submitter"));
    }

    private static MimePart? ReportPart(MimeMessage message)
    {
        MimePart? lenient = null;
        foreach (var part in message.BodyParts.OfType<MimePart>().Take(MaxMimeParts))
        {
            var type = part.ContentType.MimeType.ToLowerInvariant();
            if (type is "application/tlsrpt+gzip" or "application/tlsrpt+json") return part;
            var name = (part.FileName ?? "").ToLowerInvariant();
            if (lenient is null && (type is "application/gzip" or "application/x-gzip" && name.EndsWith(".json.gz", StringComparison.Ordinal)
                || type is "application/json" && name.EndsWith(".json", StringComparison.Ordinal)))
                lenient = part;
        }
        return lenient;
    }

    private static string? Header(MimeMessage message, string name) =>
        message.Headers[name]?.Trim() is { Length: > 0 } value ? value[..Math.Min(value.Length, 255)] : null;
}

/// <summary>Where a received report came from: "mail MID 12 from &lt;...&gt;", "https from 192.0.2.1", "import of FILE"; the §5.3 headers of a mail.</summary>
public sealed record TlsRptOrigin(string Via, string? ReportDomain = null, string? Submitter = null);

/// <summary>What Add did: the report's number, and whether it was there already (then nothing was added).</summary>
public sealed record TlsRptStored(long Id, bool Duplicate);

/// <summary>Which received reports to list, newest first.</summary>
public sealed record TlsRptQuery(int Limit = 50, string? PolicyDomain = null, DateTimeOffset? Since = null, bool FailedOnly = false);

/// <summary>A received report in a list: one row of `postern tlsrpt list` and of the web page.</summary>
public sealed record TlsRptSummary(long Id, DateTimeOffset ReceivedAt, string Via, string? Submitter, string Organization, string ReportId,
    IReadOnlyList<string> PolicyDomains, DateTimeOffset Start, DateTimeOffset End, long SuccessfulSessions, long FailedSessions);

/// <summary>A received report in whole. RawJson is null when the JSON was over <see cref="TlsRptInboxSql.MaxRawJsonChars"/> and only the parsed report was kept.</summary>
public sealed record StoredTlsReport(TlsRptSummary Summary, string? ReportDomain, ReceivedTlsReport Report, string? RawJson, long RawJsonChars);

/// <summary>
/// The reports other organisations sent us (RFC 8460). The same report-id from the same
/// organization-name is stored once, however often and by whichever way it arrives
/// (senders retry, and may send by mail and by HTTPS).
/// </summary>
public interface ITlsRptInbox : IDisposable
{
    TlsRptStored Add(ParsedTlsReport parsed, TlsRptOrigin origin, DateTimeOffset receivedAt);
    IReadOnlyList<TlsRptSummary> List(TlsRptQuery query);
    StoredTlsReport? Get(long id);
}

/// <summary>
/// The statements both inbox stores run (SQLite and PostgreSQL read the same SQL here): the
/// stores differ only in how they open a command.
/// </summary>
public abstract class TlsRptInboxSql : ITlsRptInbox
{
    /// <summary>Raw JSON over this many characters is not kept beside the parsed report (`show --json` then prints the parsed one).</summary>
    public const int MaxRawJsonChars = 2 * 1024 * 1024;
    /// <summary>Reports are kept this long, then deleted when a new one arrives: a year of daily reports and a margin.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromDays(400);

    private const string SummaryColumns = "id, received_at, via, submitter, organization, report_id, policy_domains, start_at, end_at, successful, failed";
    private static readonly JsonSerializerOptions ModelJson = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>A command on the store's connection; the caller disposes it.</summary>
    protected abstract DbCommand Command(string sql);
    /// <summary>Runs one call's statements one at a time where the connection is not thread-safe.</summary>
    protected virtual T Locked<T>(Func<T> action) => action();

    private DbCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = Command(sql);
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    public TlsRptStored Add(ParsedTlsReport parsed, TlsRptOrigin origin, DateTimeOffset receivedAt) => Locked(() =>
    {
        var r = parsed.Report;
        var orgKey = r.OrganizationName.ToLowerInvariant();
        using (var prune = Command("DELETE FROM tlsrpt_received WHERE received_at < @before", ("@before", (receivedAt - Retention).ToUnixTimeMilliseconds())))
            prune.ExecuteNonQuery();
        // Looked up first, so a copy does not use up a number (a refused insert still takes one from the sequence).
        if (Existing(orgKey, r.ReportId) is { } known) return new TlsRptStored(known, true);
        using (var insert = Command($"""
            INSERT INTO tlsrpt_received(received_at, via, submitter, report_domain, organization, org_key, report_id, policy_domains,
              start_at, end_at, successful, failed, report, raw_json, raw_chars)
            VALUES(@received, @via, @submitter, @domain, @org, @orgkey, @rid, @domains, @start, @end, @ok, @failed, @report, @raw, @rawchars)
            ON CONFLICT(org_key, report_id) DO NOTHING
            RETURNING id
            """,
            ("@received", receivedAt.ToUnixTimeMilliseconds()), ("@via", origin.Via), ("@submitter", origin.Submitter), ("@domain", origin.ReportDomain),
            ("@org", r.OrganizationName), ("@orgkey", orgKey), ("@rid", r.ReportId), ("@domains", "," + string.Join(",", r.PolicyDomains) + ","),
            ("@start", r.Start.ToUnixTimeMilliseconds()), ("@end", r.End.ToUnixTimeMilliseconds()), ("@ok", r.SuccessfulSessions), ("@failed", r.FailedSessions),
            ("@report", JsonSerializer.Serialize(r, ModelJson)), ("@raw", parsed.Json.Length <= MaxRawJsonChars ? parsed.Json : null), ("@rawchars", (long)parsed.Json.Length)))
        {
            if (insert.ExecuteScalar() is { } id and not DBNull) return new TlsRptStored(Convert.ToInt64(id, CultureInfo.InvariantCulture), false);
        }
        // Another member stored it meanwhile.
        return new TlsRptStored(Existing(orgKey, r.ReportId) ?? throw new InvalidOperationException("a TLS report was neither added nor found"), true);
    });

    private long? Existing(string orgKey, string reportId)
    {
        using var cmd = Command("SELECT id FROM tlsrpt_received WHERE org_key = @orgkey AND report_id = @rid", ("@orgkey", orgKey), ("@rid", reportId));
        return cmd.ExecuteScalar() is { } id and not DBNull ? Convert.ToInt64(id, CultureInfo.InvariantCulture) : null;
    }

    public IReadOnlyList<TlsRptSummary> List(TlsRptQuery query) => Locked(() =>
    {
        var where = new List<string>();
        var parameters = new List<(string, object?)> { ("@limit", (long)Math.Clamp(query.Limit, 1, 10_000)) };
        if (query.PolicyDomain is { Length: > 0 } domain)
        {
            // The domains are stored ",a.example,b.example,": a whole-name match, with LIKE's wildcards escaped.
            where.Add(@"policy_domains LIKE @domain ESCAPE '\'");
            parameters.Add(("@domain", "%," + domain.ToLowerInvariant().Replace(@"\", @"\\").Replace("%", @"\%").Replace("_", @"\_") + ",%"));
        }
        if (query.Since is { } since)
        {
            where.Add("received_at >= @since");
            parameters.Add(("@since", since.ToUnixTimeMilliseconds()));
        }
        if (query.FailedOnly) where.Add("failed > 0");
        var filter = where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where);
        using var cmd = Command($"SELECT {SummaryColumns} FROM tlsrpt_received {filter} ORDER BY id DESC LIMIT @limit", parameters.ToArray());
        using var reader = cmd.ExecuteReader();
        var list = new List<TlsRptSummary>();
        while (reader.Read()) list.Add(Summary(reader));
        return list;
    });

    public StoredTlsReport? Get(long id) => Locked(() =>
    {
        using var cmd = Command($"SELECT {SummaryColumns}, report_domain, report, raw_json, raw_chars FROM tlsrpt_received WHERE id = @id", ("@id", id));
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        var report = JsonSerializer.Deserialize<ReceivedTlsReport>(r.GetString(12), ModelJson)!;
        return new StoredTlsReport(Summary(r), r.IsDBNull(11) ? null : r.GetString(11), report, r.IsDBNull(13) ? null : r.GetString(13), r.GetInt64(14));
    });

    private static TlsRptSummary Summary(DbDataReader r) => new(
        r.GetInt64(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1)), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
        r.GetString(4), r.GetString(5), r.GetString(6).Split(',', StringSplitOptions.RemoveEmptyEntries),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(8)), r.GetInt64(9), r.GetInt64(10));

    public abstract void Dispose();
}

/// <summary>The inbox of one machine: queue/tlsrpt-received.db in the data directory (0600).</summary>
public sealed class SqliteTlsRptInbox : TlsRptInboxSql
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "queue", "tlsrpt-received.db");

    public SqliteTlsRptInbox(string path)
    {
        _connection = SqliteFiles.OpenPrivate(path, """
            CREATE TABLE IF NOT EXISTS tlsrpt_received(
              id INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER NOT NULL, via TEXT NOT NULL, submitter TEXT, report_domain TEXT,
              organization TEXT NOT NULL, org_key TEXT NOT NULL, report_id TEXT NOT NULL, policy_domains TEXT NOT NULL,
              start_at INTEGER NOT NULL, end_at INTEGER NOT NULL, successful INTEGER NOT NULL, failed INTEGER NOT NULL,
              report TEXT NOT NULL, raw_json TEXT, raw_chars INTEGER NOT NULL,
              UNIQUE(org_key, report_id));
            CREATE INDEX IF NOT EXISTS tlsrpt_received_at ON tlsrpt_received(received_at);
            """);
    }

    protected override DbCommand Command(string sql)
    {
        var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    protected override T Locked<T>(Func<T> action)
    {
        lock (_gate) return action();
    }

    public override void Dispose() => _connection.Dispose();
}

/// <summary>
/// Takes received reports in, by whichever way they came (the report mailbox, POST /tlsrpt,
/// `postern tlsrpt import`): parse, store, and say so on the event stream.
/// </summary>
public sealed class TlsRptIntake(ITlsRptInbox inbox, MailEventStream? events, Func<DateTimeOffset> now)
{
    public ITlsRptInbox Inbox => inbox;

    public TlsRptStored Accept(ParsedTlsReport parsed, TlsRptOrigin origin)
    {
        var stored = inbox.Add(parsed, origin, now());
        var r = parsed.Report;
        events?.Publish(new TlsReportReceived(stored.Id, origin.Via, r.OrganizationName, r.ReportId, r.PolicyDomains, r.SuccessfulSessions, r.FailedSessions, stored.Duplicate));
        return stored;
    }

    /// <summary>True when the address is the report mailbox of this configuration (tlsReporting.mailbox, any case).</summary>
    public static bool IsMailbox(PosternConfig config, string address) =>
        config.TlsReporting.Mailbox is { Length: > 0 } mailbox && mailbox.Equals(address, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The outcome for recipients that are the report mailbox: the mail's report is stored
    /// (once, however many such recipients). A mail that holds no readable report is
    /// discarded with a warning, never bounced: report mail often has a null sender, and a
    /// bounce to a reporting robot could loop. Only a failing store defers (retried later).
    /// </summary>
    public IReadOnlyList<RecipientResult> DeliverToMailbox(QueuedMessage message, ReadOnlyMemory<byte> body, IReadOnlyList<QueuedRecipient> recipients)
    {
        var (outcome, status, detail) = (RecipientOutcome.Delivered, "2.0.0", "");
        try
        {
            var mail = TlsRptReader.FromMail(body);
            var stored = Accept(mail.Parsed, new TlsRptOrigin($"mail MID {message.Mid} from <{message.Sender}>", mail.ReportDomain, mail.Submitter));
            detail = stored.Duplicate ? $"TLS report {stored.Id} was stored before; this copy discarded" : $"stored as TLS report {stored.Id}";
        }
        catch (TlsRptParseException e)
        {
            detail = $"not a TLS report: {e.Message}, discarded";
            events?.Publish(new SystemWarning($"MID {message.Mid} to the TLS report mailbox: {detail}"));
        }
        catch (Exception e) when (e is DbException or IOException or InvalidOperationException)
        {
            (outcome, status, detail) = (RecipientOutcome.Deferred, "4.3.0", $"the TLS report store failed: {e.Message}");
        }
        // No success DSN either: NOTIFY=SUCCESS from a forged sender would make the mailbox a source of backscatter.
        return recipients.Select(r => new RecipientResult(r.Rid, outcome, status, detail, 0, null, PeerSupportsDsn: true)).ToList();
    }

    /// <summary>
    /// What keeps the receiving settings of a configuration from working: said at start, on the
    /// settings page and by `tlsrpt list`, so a setting that is stored but cannot take effect is not silent.
    /// </summary>
    public static IReadOnlyList<string> Warnings(PosternConfig config)
    {
        var settings = config.TlsReporting;
        var warnings = new List<string>();
        if (settings.Mailbox is { Length: > 0 } mailbox)
        {
            RatVerdict verdict;
            try { verdict = new RecipientAccessTable(config.RecipientAccessTable).Check(SmtpSyntax.DomainOf(mailbox), mailbox); }
            catch (ConfigException) { verdict = RatVerdict.Accept; }   // an unreadable recipients file is the preflight's to report
            if (!config.Listeners.Any(l => l.Type == ListenerType.Public))
                warnings.Add($"tlsReporting.mailbox {mailbox}: there is no public listener, so no report mail reaches it");
            else if (verdict != RatVerdict.Accept)
                warnings.Add($"tlsReporting.mailbox {mailbox}: the Recipient Access Table does not accept it, so report mail to it is refused at RCPT");
        }
        if (settings.HttpsEndpoint && !config.Web.Enabled)
            warnings.Add("tlsReporting.httpsEndpoint is on but the web interface is off (web.enabled), so nothing answers POST /tlsrpt");
        return warnings;
    }
}
