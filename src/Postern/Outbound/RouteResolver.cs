using System.Net;
using Postern.Dns;

namespace Postern.Outbound;

public enum RouteOutcome { Ok, Temporary, Permanent }

public sealed record NextHop(string Host, IPAddress Address, int Preference);

public sealed record Route(RouteOutcome Outcome, IReadOnlyList<NextHop> Hops, string Status, string Reason, bool MxAuthenticated)
{
    public static Route Fail(RouteOutcome outcome, string status, string reason) => new(outcome, [], status, reason, false);
}

/// <summary>
/// RFC 5321 §5.1 next-hop selection: MX records by preference (equal preferences shuffled),
/// implicit MX when there are none, RFC 7505 null MX, then addresses per host.
/// </summary>
public sealed class RouteResolver(IDnsResolver dns)
{
    public async Task<Route> ResolveAsync(string domain, bool preferIPv6, CancellationToken ct)
    {
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

        var hops = new List<NextHop>();
        var temporary = new List<string>();
        foreach (var host in hosts)
        {
            var families = preferIPv6 ? new[] { true, false } : new[] { false, true };
            foreach (var v6 in families)
            {
                var a = await dns.QueryAddressesAsync(host.Host, v6, ct).ConfigureAwait(false);
                if (a.IsTemporaryFailure) temporary.Add($"{host.Host}/{(v6 ? "AAAA" : "A")}: {a.Error}");
                hops.AddRange(a.Records.Select(ip => new NextHop(host.Host, ip, host.Preference)));
            }
        }
        if (hops.Count > 0) return new Route(RouteOutcome.Ok, hops, "2.0.0", "", mx.Authenticated);
        if (temporary.Count > 0)
            return Route.Fail(RouteOutcome.Temporary, "4.4.3", "DNS lookup of mail host addresses failed: " + string.Join("; ", temporary));
        return Route.Fail(RouteOutcome.Permanent, "5.4.4",
            $"no address records for the mail hosts of {domain} ({string.Join(", ", hosts.Select(h => h.Host))})");
    }

    /// <summary>Ascending preference; hosts of equal preference in random order (RFC 5321 §5.1).</summary>
    public static IReadOnlyList<MxHost> OrderByPreference(IEnumerable<MxHost> hosts) =>
        hosts.GroupBy(h => h.Preference).OrderBy(g => g.Key)
            .SelectMany(g => g.OrderBy(_ => Random.Shared.Next()))
            .ToList();
}
