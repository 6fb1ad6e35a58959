using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Dns;
using Postern.Observability;
using Postern.Outbound;
using Postern.Policy;
using Postern.Security;

namespace Postern.Admin;

public sealed record StsCheckHost(string Host, int Preference, IReadOnlyList<string> Addresses, bool InPolicy, string? Tls, string? Certificate,
    bool? PkixVerified, string? Problem);

public sealed record StsCheckReport(string Domain, IReadOnlyList<string> TxtRecords, string? TxtId, string? TxtProblem, string? PolicyHostCertificate,
    string? PolicyText, string? Policy, string? PolicyProblem, IReadOnlyList<StsCheckHost> MxHosts, DaneCheckReport? Dane, string Verdict, bool SafeToEnforce);

/// <summary>
/// `postern sts list|show|refresh|flush` (the persistent policy cache) and `postern check
/// DOMAIN`: the built-in domain checker the appliance's manual sends administrators to outside
/// websites for. Both use the delivery path's resolver, fetcher and verifier.
/// </summary>
public static class StsCommands
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static object ToJson(StsCacheEntry e)
    {
        var policy = StsPolicy.Parse(e.PolicyText).Policy;
        return new
        {
            domain = e.Domain, id = e.Id, mode = policy?.Mode.ToString().ToLowerInvariant(), mx = policy?.Mx, maxAge = policy?.MaxAgeSeconds,
            fetchedAt = e.FetchedAt, expiresAt = e.ExpiresAt, lastUsed = e.LastUsed, policy = e.PolicyText,
        };
    }

    private static (MailEventStream Events, DnsResolver Dns, StsPolicyFetcher Fetcher) Machinery(PosternConfig config)
    {
        config = ConfigCommands.InForce(config);   // the trusted CA lists are part of the committed configuration
        var events = new MailEventStream();
        var dns = new DnsResolver(config.Dns, events);
        var options = new VerificationOptions(config.DestinationControls.RequireFqdnIdentities, config.DestinationControls.CheckSignatureAlgorithms);
        var roots = new TrustedAuthorities(config.CertificateAuthorities).Roots;
        return (events, dns, new StsPolicyFetcher(dns, () => roots, options, config.MtaSts));
    }

    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var sts = new Command("sts", "The MTA-STS policy cache");
        var domainArgument = new Argument<string>("domain") { Description = "Destination domain" };

        int WithCache(FileInfo? file, Func<PosternConfig, IStsPolicyCache, int> action)
        {
            var config = loadConfig(file);
            if (config is null) return 2;
            using var cache = Cluster.Stores.StsCache(config);
            return action(config, cache);
        }

        var list = new Command("list", "List cached policies") { configOption, jsonOption };
        list.SetAction(parse => WithCache(parse.GetValue(configOption), (_, cache) =>
        {
            var entries = cache.List();
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(entries.Select(ToJson), Json)); return 0; }
            if (entries.Count == 0) { Console.WriteLine("No MTA-STS policies are cached."); return 0; }
            foreach (var e in entries)
            {
                var p = StsPolicy.Parse(e.PolicyText).Policy;
                Console.WriteLine($"{e.Domain,-30} id {e.Id,-20} {p?.Describe() ?? "(invalid)"}; expires {e.ExpiresAt.UtcDateTime:u}; last used {e.LastUsed.UtcDateTime:u}");
            }
            return 0;
        }));

        var show = new Command("show", "Show one cached policy") { domainArgument, configOption, jsonOption };
        show.SetAction(parse => WithCache(parse.GetValue(configOption), (_, cache) =>
        {
            var e = cache.Get(parse.GetValue(domainArgument) ?? "");
            if (e is null) { Console.Error.WriteLine("postern: no cached MTA-STS policy for that domain"); return 1; }
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(ToJson(e), Json)); return 0; }
            Console.WriteLine($"{e.Domain}: id {e.Id}, fetched {e.FetchedAt.UtcDateTime:u}, expires {e.ExpiresAt.UtcDateTime:u}, last used {e.LastUsed.UtcDateTime:u}");
            Console.Write(e.PolicyText.EndsWith('\n') ? e.PolicyText : e.PolicyText + "\n");
            return 0;
        }));

        var flush = new Command("flush", "Forget one cached policy (the next delivery fetches it again)") { domainArgument, configOption };
        flush.SetAction(parse => WithCache(parse.GetValue(configOption), (_, cache) =>
        {
            var removed = cache.Remove(parse.GetValue(domainArgument) ?? "");
            Console.WriteLine(removed ? "Flushed." : "Nothing was cached for that domain.");
            return removed ? 0 : 1;
        }));

        var refresh = new Command("refresh", "Look up the TXT record and fetch the policy now") { domainArgument, configOption, jsonOption };
        refresh.SetAction(async (parse, ct) =>
        {
            var config = loadConfig(parse.GetValue(configOption));
            if (config is null) return 2;
            var domain = DomainNames.Normalize(parse.GetValue(domainArgument) ?? "");
            if (domain is null) { Console.Error.WriteLine("postern: not a domain name"); return 2; }
            var (events, dns, fetcher) = Machinery(config);
            var lines = new List<string>();
            events.Subscribe(e => { if (e is not DnsQueried) lock (lines) lines.Add(MailLog.Format(e)); });
            using var cache = Cluster.Stores.StsCache(config);
            var provider = new StsPolicyProvider(dns, cache, fetcher, events, () => DateTimeOffset.UtcNow);
            var policy = await provider.GetAsync(domain, ct, forceFetch: true);
            if (parse.GetValue(jsonOption))
                Console.WriteLine(JsonSerializer.Serialize(new { domain, policy = policy?.Describe(), cached = cache.Get(domain) is { } e ? ToJson(e) : null, log = lines }, Json));
            else
            {
                foreach (var l in lines) Console.WriteLine(l);
                Console.WriteLine(policy is null ? $"{domain}: no MTA-STS policy" : $"{domain}: {policy.Describe()}");
            }
            return policy is null ? 1 : 0;
        });

        sts.Subcommands.Add(list);
        sts.Subcommands.Add(show);
        sts.Subcommands.Add(refresh);
        sts.Subcommands.Add(flush);
        return sts;
    }

    /// <summary>`postern check DOMAIN`: is it safe to enforce MTA-STS for this destination?</summary>
    public static Command BuildCheck(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var domainArgument = new Argument<string>("domain") { Description = "Destination domain" };
        var check = new Command("check", "Check a destination's MTA-STS and DANE set-up before enabling them (TXT, policy, MX hosts, live STARTTLS)") { domainArgument, configOption, jsonOption };
        check.SetAction(async (parse, ct) =>
        {
            var config = loadConfig(parse.GetValue(configOption));
            if (config is null) return 2;
            var domain = DomainNames.Normalize(parse.GetValue(domainArgument) ?? "");
            if (domain is null) { Console.Error.WriteLine("postern: not a domain name"); return 2; }
            var report = await RunCheckAsync(config, domain, ct);
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(report, Json)); return report.SafeToEnforce ? 0 : 1; }
            Console.WriteLine($"{domain}");
            Console.WriteLine($"  TXT _mta-sts.{domain}: {(report.TxtRecords.Count == 0 ? "(none)" : string.Join(" | ", report.TxtRecords))}");
            Console.WriteLine($"    {(report.TxtId is not null ? "id " + report.TxtId : report.TxtProblem)}");
            Console.WriteLine($"  policy https://mta-sts.{domain}/.well-known/mta-sts.txt: {report.Policy ?? report.PolicyProblem}");
            if (report.PolicyHostCertificate is not null) Console.WriteLine($"    certificate: {report.PolicyHostCertificate}");
            foreach (var h in report.MxHosts)
                Console.WriteLine($"  MX {h.Preference} {h.Host} ({string.Join(", ", h.Addresses)}): {(h.InPolicy ? "in the policy" : "NOT in the policy")}; " +
                    $"{h.Tls ?? "no TLS"}; {h.Certificate}; PKIX {(h.PkixVerified == true ? "verified" : "NOT verified")}{(h.Problem is null ? "" : ": " + h.Problem)}");
            if (report.Dane is { } d) Console.WriteLine($"  DANE: {d.Verdict}");
            Console.WriteLine(report.Verdict);
            return report.SafeToEnforce ? 0 : 1;
        });
        return check;
    }

    public static async Task<StsCheckReport> RunCheckAsync(PosternConfig config, string domain, CancellationToken ct)
    {
        var (events, dns, fetcher) = Machinery(config);
        var txt = await dns.QueryTxtAsync($"_mta-sts.{domain}", ct);
        var (id, txtProblem) = txt.IsTemporaryFailure ? (null, $"TXT lookup failed: {txt.Error}") : StsTxt.Parse(txt.Records);
        var fetch = await fetcher.FetchAsync(domain, ct);
        StsPolicy? policy = null;
        string? policyProblem = fetch.Result == StsResult.Ok ? null : fetch.Detail;
        if (fetch.Text is not null)
        {
            var (p, error) = StsPolicy.Parse(fetch.Text);
            policy = p;
            policyProblem ??= error is null ? null : "invalid policy: " + error;
        }

        var routes = new RouteResolver(dns, [], config.Delivery.Port);
        var route = await routes.ResolveAsync(domain, IpPreference.IPv4Preferred, ct);
        var hosts = new List<StsCheckHost>();
        foreach (var group in route.Hops.GroupBy(h => h.Host))
        {
            var hop = group.First();
            // A probe as enforce would judge it: a verified certificate for this MX host name, TLS 1.2+.
            var destination = config.DestinationControls.Resolve(domain) with { Tls = TlsLevel.Preferred, Dane = DaneSupport.None, MtaSts = MtaStsSupport.On };
            var (failure, seen) = await SmtpProbe.RunAsync(config, hop, destination, fetcher.TrustedRoots, fetcher.Options, ct, null, StsHostKind.Testing);
            var tls = seen.OfType<DeliveryTlsNegotiated>().LastOrDefault();
            var problem = seen.OfType<StsHostFailed>().LastOrDefault();
            hosts.Add(new StsCheckHost(hop.Host, hop.Preference, group.Select(h => h.Address.ToString()).Distinct().ToList(),
                policy?.Allows(hop.Host) ?? false, tls is null ? null : $"{tls.Protocol} {tls.Cipher}", tls?.PeerIdentity,
                tls is not null && problem is null && failure is null, problem?.Reason ?? failure?.Reason));
        }
        var dane = await DaneCheckCommand.RunAsync(config, domain, probe: false, ct);

        string verdict;
        var safe = false;
        if (id is null) verdict = $"NOT READY: no usable MTA-STS TXT record ({txtProblem})";
        else if (policy is null) verdict = $"NOT READY: the policy cannot be used ({policyProblem})";
        else if (route.Outcome != RouteOutcome.Ok) verdict = $"NOT READY: no delivery route ({route.Reason})";
        else if (hosts.FirstOrDefault(h => !h.InPolicy) is { } outside) verdict = $"NOT READY: MX host {outside.Host} is not in the policy ({string.Join(", ", policy.Mx)})";
        else if (hosts.FirstOrDefault(h => h.PkixVerified != true) is { } bad) verdict = $"NOT READY: MX host {bad.Host} would fail enforcement: {bad.Problem ?? "no verified TLS"}";
        else
        {
            safe = true;
            verdict = $"SAFE to enable MTA-STS enforcement for {domain}: policy mode {policy.Mode.ToString().ToLowerInvariant()}, every MX host is in the policy and presents a verified certificate over TLS 1.2+"
                + (policy.Mode == StsMode.Enforce ? "" : $" (the domain publishes mode {policy.Mode.ToString().ToLowerInvariant()}: Postern enforces only what it publishes)");
        }
        return new StsCheckReport(domain, txt.Records, id, txtProblem, fetch.Certificate, fetch.Text, policy?.Describe(), policyProblem, hosts, dane, verdict, safe);
    }
}
