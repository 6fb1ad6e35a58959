using System.Net;
using Postern.Admin;
using Postern.Dns;

namespace Postern.Outbound;

public enum RouteOutcome { Ok, Temporary, Permanent }

/// <param name="AddressSecurity">The DNSSEC status of the address answer this hop came from (Insecure for an IP literal).</param>
/// <param name="CanonicalName">When Host is an alias: the name its CNAME chain ends at.</param>
public sealed record NextHop(string Host, IPAddress Address, int Preference, int Port = 25, Dns.DnsSecurity AddressSecurity = Dns.DnsSecurity.Insecure, string? CanonicalName = null)
{
    /// <summary>An SMTP route given as an IP address: there is no host name to verify.</summary>
    public bool IsIpLiteral => IPAddress.TryParse(Host, out _);
}

/// <param name="ViaSmtpRoute">The hops come from a configured SMTP route, not from MX records (MTA-STS does not apply).</param>
/// <param name="MxSecurity">The DNSSEC status of the MX answer (for an implicit MX, of the denial); Secure for an SMTP route (the administrator named it).</param>
public sealed record Route(RouteOutcome Outcome, IReadOnlyList<NextHop> Hops, string Status, string Reason, Dns.DnsSecurity MxSecurity, bool ViaSmtpRoute = false)
{
    public static Route Fail(RouteOutcome outcome, string status, string reason) => new(outcome, [], status, reason, Dns.DnsSecurity.Indeterminate);
}

/// <summary>
/// Next-hop selection: a configured SMTP route when one matches the domain, else RFC 5321
/// §5.1 (MX by preference with equal preferences shuffled, implicit MX, RFC 7505 null MX),
/// then addresses per host in the order the destination's IP preference asks for.
/// </summary>
public sealed class RouteResolver(IDnsResolver dns, IReadOnlyList<SmtpRoute> routes, int defaultPort)
{
    public RouteResolver(IDnsResolver dns) : this(dns, [], 25) { }

    /// <summary>The configuration in force (SMTP routes and the delivery port follow committed versions).</summary>
    public Func<PosternConfig>? Live { get; init; }
    private IReadOnlyList<SmtpRoute> Routes => Live?.Invoke().SmtpRoutes ?? routes;
    private int DefaultPort => Live?.Invoke().Delivery.Port ?? defaultPort;

    /// <summary>The resolver behind the routes (the DANE engine asks it for TLSA records).</summary>
    public IDnsResolver Resolver => dns;

    /// <summary>The SMTP route for a domain: the exact entry, else the most specific ".parent" one.</summary>
    public SmtpRoute? RouteFor(string domain) =>
        Routes.Where(r => DomainNames.MatchesPattern(domain, r.Domain))
            .OrderByDescending(r => DomainNames.PatternSpecificity(r.Domain))
            .FirstOrDefault();

    public static bool[] AddressFamilies(IpPreference preference) => preference switch
    {
        IpPreference.IPv4Required => [false],
        IpPreference.IPv6Required => [true],
        IpPreference.IPv6Preferred => [true, false],
        _ => [false, true],
    };

    public async Task<Route> ResolveAsync(string domain, IpPreference preference, CancellationToken ct)
    {
        var route = RouteFor(domain);
        if (route is not null) return await ResolveRouteAsync(domain, route, preference, ct).ConfigureAwait(false);

        var mx = await dns.QueryMxAsync(domain, ct).ConfigureAwait(false);
        switch (mx.Outcome)
        {
            case DnsOutcome.TemporaryFailure:
                return Route.Fail(RouteOutcome.Temporary, "4.4.3", $"DNS lookup of MX for {domain} failed: {mx.Error}");
            case DnsOutcome.NxDomain:
                return Route.Fail(RouteOutcome.Permanent, "5.1.2", $"domain {domain} does not exist (NXDOMAIN)");
        }
        IReadOnlyList<MxHost> hosts;
        if (mx.Outcome == DnsOutcome.NoData)
        {
            hosts = [new MxHost(0, domain)];   // implicit MX (RFC 5321 §5.1)
        }
        else
        {
            var real = mx.Records.Where(r => r.Host.Length > 0).ToList();
            if (real.Count == 0)
                return Route.Fail(RouteOutcome.Permanent, "5.1.10", $"domain {domain} does not accept mail (null MX, RFC 7505)");
            hosts = OrderByPreference(real);
        }
        var (hops, temporary) = await AddressesAsync(hosts.Select(h => (h.Host, h.Preference, DefaultPort)), preference, ct).ConfigureAwait(false);
        if (hops.Count > 0) return new Route(RouteOutcome.Ok, hops, "2.0.0", "", mx.Security);
        if (temporary.Count > 0)
            return Route.Fail(RouteOutcome.Temporary, "4.4.3", "DNS lookup of mail host addresses failed: " + string.Join("; ", temporary));
        // With a required address family the administrator's setting may be what is wrong: retry, do not bounce at once.
        var required = preference is IpPreference.IPv4Required or IpPreference.IPv6Required;
        return Route.Fail(required ? RouteOutcome.Temporary : RouteOutcome.Permanent, required ? "4.4.4" : "5.4.4",
            $"no {FamilyText(preference)} address records for the mail hosts of {domain} ({string.Join(", ", hosts.Select(h => h.Host))})");
    }

    private async Task<Route> ResolveRouteAsync(string domain, SmtpRoute route, IpPreference preference, CancellationToken ct)
    {
        var ordered = OrderByPreference(route.Hosts, h => h.Priority);
        var (hops, temporary) = await AddressesAsync(ordered.Select(h => (h.Host, h.Priority, h.Port)), preference, ct).ConfigureAwait(false);
        if (hops.Count > 0) return new Route(RouteOutcome.Ok, hops, "2.0.0", "", Dns.DnsSecurity.Secure, ViaSmtpRoute: true);
        // A configured route that does not resolve is the administrator's to fix: retry, never bounce.
        return Route.Fail(RouteOutcome.Temporary, "4.4.3",
            $"SMTP route for {route.Domain} has no usable {FamilyText(preference)} address" + (temporary.Count > 0 ? ": " + string.Join("; ", temporary) : ""));
    }

    private async Task<(List<NextHop> Hops, List<string> Temporary)> AddressesAsync(IEnumerable<(string Host, int Preference, int Port)> hosts, IpPreference preference, CancellationToken ct)
    {
        var hops = new List<NextHop>();
        var temporary = new List<string>();
        var families = AddressFamilies(preference);
        foreach (var (host, pref, port) in hosts)
        {
            if (IPAddress.TryParse(host, out var literal))
            {
                if (families.Contains(literal.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6))
                    hops.Add(new NextHop(host, literal, pref, port));
                continue;
            }
            foreach (var v6 in families)
            {
                var a = await dns.QueryAddressesAsync(host, v6, ct).ConfigureAwait(false);
                if (a.IsTemporaryFailure) temporary.Add($"{host}/{(v6 ? "AAAA" : "A")}: {a.Error}");
                hops.AddRange(a.Records.Select(ip => new NextHop(host, ip, pref, port, a.Security, a.CanonicalName)));
            }
        }
        return (hops, temporary);
    }

    private static string FamilyText(IpPreference p) => p switch
    {
        IpPreference.IPv4Required => "IPv4",
        IpPreference.IPv6Required => "IPv6",
        _ => "IPv4 or IPv6",
    };

    /// <summary>Ascending preference; hosts of equal preference in random order (RFC 5321 §5.1).</summary>
    public static IReadOnlyList<MxHost> OrderByPreference(IEnumerable<MxHost> hosts) => OrderByPreference(hosts, h => h.Preference);

    /// <summary>The same rule for SMTP route hosts (priority) and MX hosts (preference).</summary>
    public static IReadOnlyList<T> OrderByPreference<T>(IEnumerable<T> items, Func<T, int> preference) =>
        items.GroupBy(preference).OrderBy(g => g.Key)
            .SelectMany(g => g.OrderBy(_ => Random.Shared.Next()))
            .ToList();
}
