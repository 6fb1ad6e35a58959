using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Postern.Observability;

namespace Postern.Admin;

/// <summary>Stages changes to the TLS reporting settings (the web form), validated the way commit will validate them.</summary>
/// <param name="who">Who the change is staged as (the web interface's user); null = the user running the CLI.</param>
public sealed class TlsReportingService(ConfigService config, PosternConfig fallback, string? who = null)
{
    public PosternConfig Working => config.Working(fallback);

    public void Change(Action<TlsReportingSettings> change)
    {
        var c = Working;
        change(c.TlsReporting);
        c.Validate();
        config.Stage(c, who);
    }

    /// <summary>The CLI's form: only the given settings change ("none" clears an optional one); returns the warnings that apply to the result.</summary>
    public IReadOnlyList<string> Setup(TlsReportingChanges x)
    {
        static string? Optional(string value) => value.Length == 0 || value.Equals("none", StringComparison.OrdinalIgnoreCase) ? null : value;
        Change(t =>
        {
            if (x.Enabled is { } enabled) t.Enabled = enabled;
            if (x.OrganizationName is { } org) t.OrganizationName = Optional(org) ?? "";
            if (x.Contact is { } contact) t.Contact = Optional(contact) ?? "";
            if (x.From is { } from) t.From = Optional(from);
            if (x.SendHourUtc is { } hour) t.SendHourUtc = hour;
            if (x.MaxReportBytes is { } max) t.MaxReportBytes = max;
            if (x.Mailbox is { } mailbox) t.Mailbox = Optional(mailbox);
            if (x.HttpsEndpoint is { } https) t.HttpsEndpoint = https;
        });
        return TlsRptIntake.Warnings(Working);
    }
}

/// <summary>
/// `postern tlsrpt list|show|import`: the TLS reports other organisations sent us (RFC 8460),
/// from the inbox the gateway fills (report mailbox, POST /tlsrpt); a cluster member reads the
/// cluster's database. Everything a sender wrote is printed escaped.
/// </summary>
public static class TlsRptCommands
{
    private static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
    /// <summary>A mail file may hold a report and its base64 overhead, and some text besides.</summary>
    private const long MaxImportBytes = 2L * TlsRptReader.MaxPayloadBytes;

    /// <summary>The `tlsrpt` command with the receiving side's subcommands; more may be added to what it returns.</summary>
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var tlsrpt = new Command("tlsrpt", "SMTP TLS reports (RFC 8460): the reports other organisations sent about mail to our domains");
        tlsrpt.Subcommands.Add(BuildList(configOption, jsonOption, loadConfig));
        tlsrpt.Subcommands.Add(BuildShow(configOption, jsonOption, loadConfig));
        tlsrpt.Subcommands.Add(BuildImport(configOption, loadConfig));
        return tlsrpt;
    }

    private static int WithInbox(FileInfo? file, Func<FileInfo?, PosternConfig?> loadConfig, Func<PosternConfig, ITlsRptInbox, int> action)
    {
        var config = loadConfig(file);
        if (config is null) return 2;
        try
        {
            using var inbox = Cluster.Stores.TlsRptInbox(config);
            return action(config, inbox);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"postern: {e.Message}");
            return 2;
        }
    }

    private static Command BuildList(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var domain = new Option<string?>("--domain") { Description = "Only reports about this policy domain (one of ours)" };
        var since = new Option<string?>("--since") { Description = "Received at or after TIME: 2025-06-01, 2025-06-01T14:30 (UTC unless an offset is given), or 90m, 12h, 7d ago" };
        var failed = new Option<bool>("--failed") { Description = "Only reports with failed sessions" };
        var limit = new Option<int>("--limit") { Description = "At most this many reports, newest first (1-10000)", DefaultValueFactory = _ => 50 };
        var list = new Command("list", "List received TLS reports, newest first: who sent each, for which domains, how many sessions succeeded and failed")
        {
            domain, since, failed, limit, configOption, jsonOption,
        };
        list.SetAction(parse =>
        {
            DateTimeOffset? from = null;
            try { if (parse.GetValue(since) is { } s) from = TrackCommands.ParseTime(s, DateTimeOffset.UtcNow); }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"postern: {e.Message}");
                return 2;
            }
            var limitValue = parse.GetValue(limit);
            if (limitValue is < 1 or > 10_000) { Console.Error.WriteLine("postern: --limit must be 1-10000"); return 2; }
            string? domainValue = null;
            if (parse.GetValue(domain) is { } d && (domainValue = Dns.DomainNames.Normalize(d)) is null)
            {
                Console.Error.WriteLine("postern: --domain is not a domain name");
                return 2;
            }
            return WithInbox(parse.GetValue(configOption), loadConfig, (config, inbox) =>
            {
                var found = inbox.List(new TlsRptQuery(limitValue, domainValue, from, parse.GetValue(failed)));
                foreach (var warning in TlsRptIntake.Warnings(ConfigCommands.InForce(config))) Console.Error.WriteLine($"warning: {warning}");
                if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(found, JsonOut)); return 0; }
                if (found.Count == 0) { Console.WriteLine("No TLS reports have been received."); return 0; }
                Console.WriteLine($"{"ID",-6} {"Received (UTC)",-19} {"Organization",-28} {"Policy domains",-30} {"Date range (UTC)",-33} {"Successful",10} {"Failed",8}");
                foreach (var r in found)
                    Console.WriteLine($"{r.Id,-6} {r.ReceivedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} {Cell(r.Organization, 28),-28} {Cell(string.Join(",", r.PolicyDomains), 30),-30} " +
                        $"{Range(r.Start, r.End),-33} {r.SuccessfulSessions,10} {r.FailedSessions,8}");
                Console.WriteLine($"{found.Count} report(s){(found.Count == limitValue ? $" (the newest {limitValue}; --limit shows more)" : "")}");
                return 0;
            });
        });
        return list;
    }

    private static Command BuildShow(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var id = new Argument<long>("id") { Description = "The report's number (postern tlsrpt list)" };
        var show = new Command("show", "Show one received TLS report: per policy its domain, policy, MX hosts, session counts and every failure") { id, configOption, jsonOption };
        show.SetAction(parse => WithInbox(parse.GetValue(configOption), loadConfig, (_, inbox) =>
        {
            if (inbox.Get(parse.GetValue(id)) is not { } stored) { Console.Error.WriteLine("postern: no received TLS report has that number"); return 1; }
            if (parse.GetValue(jsonOption))
            {
                if (stored.RawJson is { } raw) Console.WriteLine(TerminalSafeJson(raw));
                else
                {
                    Console.Error.WriteLine($"postern: the report's JSON ({stored.RawJsonChars} characters) was over {TlsRptInboxSql.MaxRawJsonChars} and not kept; this is the report as read");
                    Console.WriteLine(JsonSerializer.Serialize(stored.Report, JsonOut));
                }
                return 0;
            }
            Console.Write(Describe(stored));
            return 0;
        }));
        return show;
    }

    private static Command BuildImport(Option<FileInfo?> configOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var file = new Argument<FileInfo>("file") { Description = "A report (.json or .json.gz) or a mail carrying one (.eml)" };
        var import = new Command("import", "Store a TLS report received elsewhere: a .json or .json.gz file, or a mail (.eml) carrying one") { file, configOption };
        import.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            byte[] bytes;
            try
            {
                if (path.Length > MaxImportBytes) { Console.Error.WriteLine($"postern: {path.Name} is larger than {MaxImportBytes} bytes"); return 1; }
                bytes = File.ReadAllBytes(path.FullName);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"postern: cannot read {path.FullName}: {e.Message}");
                return 1;
            }
            return WithInbox(parse.GetValue(configOption), loadConfig, (_, inbox) =>
            {
                TlsRptStored stored;
                try
                {
                    var origin = new TlsRptOrigin($"import of {path.Name}");
                    var intake = new TlsRptIntake(inbox, null, () => DateTimeOffset.UtcNow);
                    if (IsMail(path.Name, bytes))
                    {
                        var mail = TlsRptReader.FromMail(bytes);
                        stored = intake.Accept(mail.Parsed, origin with { ReportDomain = mail.ReportDomain, Submitter = mail.Submitter });
                    }
                    else stored = intake.Accept(TlsRptReader.Parse(bytes), origin);
                }
                catch (TlsRptParseException e)
                {
                    Console.Error.WriteLine($"postern: {Cell(path.Name, 100)} is not a TLS report: {e.Message}");
                    return 1;
                }
                Console.WriteLine(stored.Duplicate
                    ? $"Already stored as TLS report {stored.Id} (the same report-id from the same organisation); nothing added."
                    : $"Stored as TLS report {stored.Id}.");
                return 0;
            });
        });
        return import;
    }

    /// <summary>A mail: named .eml, or neither gzip nor a JSON object.</summary>
    private static bool IsMail(string name, byte[] bytes)
    {
        if (name.EndsWith(".eml", StringComparison.OrdinalIgnoreCase)) return true;
        if (TlsRptReader.IsGzip(bytes)) return false;
        var first = bytes.SkipWhile(b => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0xEF or 0xBB or 0xBF).Take(1).ToArray();
        return first.Length == 1 && first[0] != (byte)'{';
    }

    /// <summary>The whole report as `show` prints it, every sender's string escaped.</summary>
    public static string Describe(StoredTlsReport stored)
    {
        var s = stored.Summary;
        var r = stored.Report;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"TLS report {s.Id}, received {s.ReceivedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC via {Cell(s.Via, 200)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  Organization: {Cell(r.OrganizationName, 200)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  Contact:      {Cell(r.ContactInfo, 200)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  Report-ID:    {Cell(r.ReportId, 200)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  Date range:   {Range(r.Start, r.End)} UTC\n");
        if (s.Submitter is { } submitter) sb.Append(CultureInfo.InvariantCulture, $"  TLS-Report-Submitter: {Cell(submitter, 200)}\n");
        if (stored.ReportDomain is { } domain) sb.Append(CultureInfo.InvariantCulture, $"  TLS-Report-Domain:    {Cell(domain, 200)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  Sessions:     {r.SuccessfulSessions} successful, {r.FailedSessions} failed\n");
        foreach (var p in r.Policies)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  Policy {Cell(p.PolicyType, 20)} for {Cell(p.PolicyDomain, 200)}: {p.SuccessfulSessions} successful, {p.FailedSessions} failed sessions\n");
            if (p.PolicyStrings.Count > 0) sb.Append(CultureInfo.InvariantCulture, $"    policy:  {string.Join(" | ", p.PolicyStrings.Select(x => Cell(x, 200)))}\n");
            if (p.MxHosts.Count > 0) sb.Append(CultureInfo.InvariantCulture, $"    mx-host: {string.Join(", ", p.MxHosts.Select(x => Cell(x, 200)))}\n");
            foreach (var f in p.Failures)
            {
                sb.Append(CultureInfo.InvariantCulture, $"    failure {Cell(f.ResultType, 60)}: {f.FailedSessionCount} session(s); sending MTA {Cell(f.SendingMtaIp ?? "-", 60)}, " +
                    $"receiving MX {Cell(f.ReceivingMxHostname ?? "-", 200)}, receiving IP {Cell(f.ReceivingIp ?? "-", 60)}");
                if (f.ReceivingMxHelo is { } helo) sb.Append(CultureInfo.InvariantCulture, $", HELO {Cell(helo, 200)}");
                if (f.FailureReasonCode is { } code) sb.Append(CultureInfo.InvariantCulture, $", reason code {Cell(code, 200)}");
                if (f.AdditionalInformation is { } info) sb.Append(CultureInfo.InvariantCulture, $", more: {Cell(info, 300)}");
                sb.Append('\n');
            }
        }
        return sb.ToString();
    }

    private static string Cell(string text, int width) => TrackingText.Clean(text, width - 1);

    private static string Range(DateTimeOffset start, DateTimeOffset end) =>
        $"{start.UtcDateTime:yyyy-MM-dd HH:mm:ss} to {end.UtcDateTime:yyyy-MM-dd HH:mm:ss}";

    /// <summary>
    /// The stored JSON with the characters that could act on a terminal (C1 controls, line and
    /// bidirectional marks) written as \uXXXX: the same JSON, as valid JSON allows them only inside strings.
    /// </summary>
    private static string TerminalSafeJson(string json)
    {
        var sb = new StringBuilder(json.Length);
        foreach (var c in json)
            if (c is >= '\u007F' and <= '\u009F' or '\u2028' or '\u2029' or >= '\u200B' and <= '\u200F' or >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069' or '\uFEFF')
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            else sb.Append(c);
        return sb.ToString();
    }
}
