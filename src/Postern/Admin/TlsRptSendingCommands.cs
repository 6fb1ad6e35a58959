using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Postern.Observability;

namespace Postern.Admin;

/// <summary>Changes to the TLS reporting settings; null = unchanged. "none" clears an optional field.</summary>
public sealed record TlsReportingChanges(bool? Enabled = null, string? OrganizationName = null, string? Contact = null, string? From = null,
    int? SendHourUtc = null, int? MaxReportBytes = null, string? Mailbox = null, bool? HttpsEndpoint = null);

/// <summary>
/// `postern tlsrpt status` (what the sending side counted and sent) and `postern tlsrpt setup`
/// (the settings, staged for commit): added to the `tlsrpt` command beside the received reports.
/// </summary>
public static class TlsRptSendingCommands
{
    public static void AddTo(Command tlsrpt, Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var dayOption = new Option<string?>("--day") { HelpName = "YYYY-MM-DD", Description = "The UTC day whose session counts to show (default: today)" };
        var status = new Command("status", "Outbound TLS sessions counted per policy domain for a day, and the daily reports of the last week with their state") { dayOption, configOption, jsonOption };
        status.SetAction(async (p, ct) =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            DateOnly day;
            if (p.GetValue(dayOption) is { } text)
            {
                if (!DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day))
                {
                    Console.Error.WriteLine($"postern: --day '{text}' is not YYYY-MM-DD");
                    return 2;
                }
            }
            else day = DateOnly.FromDateTime(DateTime.UtcNow);
            config = ConfigCommands.InForce(config);
            using var store = Cluster.Stores.TlsRpt(config);
            var counts = await store.CountsAsync(day);
            var reports = await store.ReportsAsync(day.AddDays(-TlsRptReporter.CatchUpDays));
            var domains = counts.GroupBy(c => c.Policy.PolicyDomain).Select(g => new
            {
                domain = g.Key,
                policies = g.Select(c => c.Policy.Type).Distinct().Select(t => Policy.TlsRptNames.Of(t)).ToList(),
                successful = g.Where(c => c.Failure is null).Sum(c => c.Sessions),
                failed = g.Where(c => c.Failure is not null).Sum(c => c.Sessions),
                failures = g.Where(c => c.Failure is not null).Select(c => new
                {
                    resultType = Policy.TlsRptNames.Of(c.Failure!.Value), mxHost = c.MxHost, receivingIp = c.ReceivingIp, sendingIp = c.SendingIp, sessions = c.Sessions, detail = c.Detail,
                }).ToList(),
            }).ToList();
            if (p.GetValue(jsonOption))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    enabled = config.TlsReporting.Enabled, day = day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), domains,
                    reports = reports.Select(r => new { day = r.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), domain = r.Domain, reportId = r.ReportId, state = r.State.ToString(), attempts = r.Attempts, detail = r.Detail, member = r.Member }),
                }, PosternConfig.JsonOptions));
                return 0;
            }
            var settings = config.TlsReporting;
            Console.WriteLine(settings.Enabled
                ? $"TLS reporting is on: reports go out daily at {settings.SendHourUtc:00}:00 UTC as {settings.Organization(config.Hostname)} (contact {settings.ContactFor(config.Hostname)})."
                : "TLS reporting is off: no sessions are counted and no reports are sent (postern tlsrpt setup --enable on).");
            Console.WriteLine();
            Console.WriteLine($"Sessions on {day:yyyy-MM-dd} (UTC):");
            if (domains.Count == 0) Console.WriteLine("  none counted");
            foreach (var d in domains)
            {
                Console.WriteLine($"  {d.domain,-40} {string.Join("/", d.policies),-18} successful {d.successful,6}  failed {d.failed,6}");
                foreach (var f in d.failures)
                    Console.WriteLine($"      {f.resultType,-26} {f.sessions,5} x {f.mxHost} [{f.receivingIp}] from {f.sendingIp}{(f.detail.Length == 0 ? "" : ": " + f.detail)}");
            }
            Console.WriteLine();
            Console.WriteLine("Reports:");
            if (reports.Count == 0) Console.WriteLine("  none in the last week");
            foreach (var r in reports)
                Console.WriteLine($"  {r.Day:yyyy-MM-dd} {r.Domain,-40} {r.State,-12} {(r.Attempts > 0 ? $"attempts {r.Attempts} " : "")}{r.Detail}");
            return 0;
        });

        var enable = new Option<string?>("--enable") { HelpName = "on|off", Description = "on | off: count sessions and send the daily reports" };
        var organization = new Option<string?>("--organization") { Description = "organization-name in reports (none = the hostname)" };
        var contact = new Option<string?>("--contact") { Description = "contact-info in reports (none = postmaster@hostname)" };
        var from = new Option<string?>("--from") { Description = "Sender address of report mail (none = noreply-smtp-tls-reporting@hostname)" };
        var hour = new Option<int?>("--send-hour") { HelpName = "0-23", Description = "UTC hour at which the previous day's reports are sent" };
        var maxBytes = new Option<int?>("--max-report-bytes") { Description = "A gzipped report larger than this is not sent" };
        var mailbox = new Option<string?>("--mailbox") { HelpName = "ADDRESS|none", Description = "Mail to this address is stored as received TLS reports" };
        var https = new Option<string?>("--https-endpoint") { HelpName = "on|off", Description = "on | off: accept reports by HTTPS POST at /tlsrpt on the web interface" };
        var setup = new Command("setup", "Change the TLS reporting settings (staged; postern commit applies them)") { enable, organization, contact, from, hour, maxBytes, mailbox, https, configOption };
        setup.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
        {
            var warnings = new TlsReportingService(service, config).Setup(new TlsReportingChanges(
                OnOff(p.GetValue(enable), "--enable"), p.GetValue(organization), p.GetValue(contact), p.GetValue(from),
                p.GetValue(hour), p.GetValue(maxBytes), p.GetValue(mailbox), OnOff(p.GetValue(https), "--https-endpoint")));
            foreach (var w in warnings) Console.WriteLine($"warning: {w}");
            Console.WriteLine("TLS reporting settings changed. Changes are staged: postern commit applies them, postern clearchanges discards them.");
            return 0;
        }));
        tlsrpt.Subcommands.Add(status);
        tlsrpt.Subcommands.Add(setup);
    }

    private static bool? OnOff(string? value, string name) => value switch
    {
        null => null,
        _ when value.Equals("on", StringComparison.OrdinalIgnoreCase) => true,
        _ when value.Equals("off", StringComparison.OrdinalIgnoreCase) => false,
        _ => throw new ConfigException($"{name} '{value}' is not on or off"),
    };
}
