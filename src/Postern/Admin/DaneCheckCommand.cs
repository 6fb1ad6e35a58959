using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Dns;
using Postern.Observability;
using Postern.Outbound;
using Postern.Policy;

namespace Postern.Admin;

public sealed record DaneCheckRecord(string Record, bool Usable, string? Unusable);

public sealed record DaneCheckHost(
    string Host, int Preference, string? CanonicalName, IReadOnlyList<string> Addresses, string AddressSecurity,
    string? TlsaName, string TlsaSecurity, IReadOnlyList<DaneCheckRecord> Tlsa, string Decision, string DecisionReason,
    string? Probe, bool? Matched, string? ProbeDetail);

public sealed record DaneCheckReport(string Domain, string MxSecurity, IReadOnlyList<DaneCheckHost> Hosts, string Verdict, bool Usable);

/// <summary>
/// `postern dane check DOMAIN`: per MX host the DNSSEC status of MX, address and TLSA
/// records, the TLSA records and their usability, the RFC 7672 decision, and a live STARTTLS
/// probe that matches the presented chain. The same resolver, decision function and SMTP
/// client as delivery, so the check shows what delivery would do.
/// </summary>
public static class DaneCheckCommand
{
    public static async Task<DaneCheckReport> RunAsync(PosternConfig config, string domain, bool probe, CancellationToken ct)
    {
        var dns = new DnsResolver(config.Dns, new MailEventStream());
        var routes = new RouteResolver(dns, [], config.Delivery.Port);
        var route = await routes.ResolveAsync(domain, IpPreference.IPv4Preferred, ct).ConfigureAwait(false);
        var mxSecurity = route.Outcome == RouteOutcome.Ok ? route.MxSecurity.ToString().ToLowerInvariant() : "failed";
        if (route.Outcome != RouteOutcome.Ok)
            return new DaneCheckReport(domain, mxSecurity, [], $"no delivery route: {route.Reason}", false);

        var hosts = new List<DaneCheckHost>();
        foreach (var group in route.Hops.GroupBy(h => h.Host))
        {
            var hop = group.First();
            var lookup = await DaneLookup.ForHostAsync(dns, DaneSupport.Opportunistic, route, hop, ct, showRecords: true).ConfigureAwait(false);
            var shown = lookup.Shown;
            var decision = lookup.Policy;

            string? probeResult = null, probeDetail = null;
            bool? matched = null;
            if (probe && decision.Kind != DaneHostKind.Unusable)
            {
                var destination = config.DestinationControls.Resolve(domain) with { Dane = DaneSupport.Opportunistic, Tls = TlsLevel.Preferred };
                var (failure, seen) = await SmtpProbe.RunAsync(config, hop, destination, () => new X509Certificate2Collection(), new VerificationOptions(), ct, decision).ConfigureAwait(false);
                var outcome = seen.OfType<DaneOutcome>().LastOrDefault();
                var tls = seen.OfType<DeliveryTlsNegotiated>().LastOrDefault();
                probeResult = failure is null ? $"connected to {hop.Address}:{hop.Port}" + (tls is null ? ", no TLS" : $", {tls.Protocol} {tls.Cipher}, {tls.PeerIdentity}") : $"failed: {failure.Reason}";
                if (outcome is not null)
                {
                    matched = outcome.Result switch { DaneResult.Authenticated => true, DaneResult.Failed => false, _ => null };
                    probeDetail = outcome.Reason;
                }
            }
            hosts.Add(new DaneCheckHost(hop.Host, hop.Preference, hop.CanonicalName, group.Select(h => h.Address.ToString()).Distinct().ToList(),
                hop.AddressSecurity.ToString().ToLowerInvariant(), shown?.Name, shown?.Security.ToString().ToLowerInvariant() ?? "not looked up",
                shown?.Records.Select(r => new DaneCheckRecord(r.ToString(), r.IsUsable, r.UnusableReason)).ToList() ?? [],
                decision.Kind.ToString(), decision.Reason, probeResult, matched, probeDetail));
        }

        var authenticated = hosts.Count(h => h.Matched == true);
        var failed = hosts.Count(h => h.Decision == nameof(DaneHostKind.Unusable) || h.Matched == false);
        var applies = hosts.Count(h => h.Decision is nameof(DaneHostKind.Authenticate) or nameof(DaneHostKind.EncryptOnly));
        var verdict = applies == 0 && failed == 0
            ? $"DANE does not apply to {domain}: {hosts.FirstOrDefault()?.DecisionReason ?? "no MX hosts"}"
            : failed == 0
                ? $"DANE OK for {domain}: {(probe ? $"{authenticated} of {hosts.Count} MX host(s) authenticated" : $"{applies} of {hosts.Count} MX host(s) publish usable TLSA records")}"
                : $"DANE FAILS for {failed} of {hosts.Count} MX host(s) of {domain}" + (failed == hosts.Count ? ": mail would be deferred" : "");
        return new DaneCheckReport(domain, mxSecurity, hosts, verdict, failed == 0);
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var dane = new Command("dane", "DANE (RFC 7672) tools");
        var domainArgument = new Argument<string>("domain") { Description = "Destination domain" };
        var noProbe = new Option<bool>("--no-probe") { Description = "DNS only: no STARTTLS connection to the MX hosts" };
        var check = new Command("check", "Show the DNSSEC status, TLSA records and DANE outcome for each MX host of a domain") { domainArgument, configOption, jsonOption, noProbe };
        check.SetAction(async (parse, ct) =>
        {
            var config = loadConfig(parse.GetValue(configOption));
            if (config is null) return 2;
            var domain = DomainNames.Normalize(parse.GetValue(domainArgument) ?? "");
            if (domain is null) { Console.Error.WriteLine("postern: not a domain name"); return 2; }
            var report = await RunAsync(config, domain, !parse.GetValue(noProbe), ct);
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(report, Json)); return report.Usable ? 0 : 1; }
            Console.WriteLine($"{domain}: MX records {report.MxSecurity}");
            foreach (var h in report.Hosts)
            {
                Console.WriteLine($"  MX {h.Preference} {h.Host}{(h.CanonicalName is null ? "" : $" (alias of {h.CanonicalName})")}: {string.Join(", ", h.Addresses)} ({h.AddressSecurity})");
                Console.WriteLine($"    TLSA _25._tcp.{h.TlsaName ?? h.Host}: {h.TlsaSecurity}");
                foreach (var r in h.Tlsa) Console.WriteLine($"      {r.Record}  {(r.Usable ? "usable" : "unusable: " + r.Unusable)}");
                Console.WriteLine($"    decision: {h.Decision}: {h.DecisionReason}");
                if (h.Probe is not null) Console.WriteLine($"    probe: {h.Probe}");
                if (h.ProbeDetail is not null) Console.WriteLine($"    DANE: {(h.Matched == true ? "authenticated" : h.Matched == false ? "FAILED" : "-")}: {h.ProbeDetail}");
            }
            Console.WriteLine(report.Verdict);
            return report.Usable ? 0 : 1;
        });
        dane.Subcommands.Add(check);
        return dane;
    }
}
