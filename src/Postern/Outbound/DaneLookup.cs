using Postern.Admin;
using Postern.Dns;
using Postern.Policy;

namespace Postern.Outbound;

/// <param name="Expanded">TLSA at the name the host's CNAME chain ends at, when it is an alias and it was looked up.</param>
/// <param name="Own">TLSA at the host name itself, when it was looked up.</param>
public sealed record DaneLookupResult(DaneHostPolicy Policy, TlsaLookup? Expanded, TlsaLookup? Own)
{
    /// <summary>The lookup whose records apply (for display): the expanded name's when it has records.</summary>
    public TlsaLookup? Shown => Expanded is { Records.Count: > 0 } || Own is null ? Expanded : Own;
}

/// <summary>
/// The DNS side of DANE for one host, for delivery and `dane check` alike: TLSA at the
/// expanded name first, then at the host (RFC 7672 §2.2.2), and the decision of
/// <see cref="DanePolicy"/>. No TLSA lookup unless the MX and address answers are secure (DANE
/// could not apply anyway), except when a report wants to show the records.
/// </summary>
public static class DaneLookup
{
    public static async Task<DaneLookupResult> ForHostAsync(IDnsResolver dns, DaneSupport mode, Route route, NextHop hop, CancellationToken ct, bool showRecords = false)
    {
        if (mode is DaneSupport.None or DaneSupport.Default) return new(new(DaneHostKind.NotApplicable, [], "DANE is off for this destination"), null, null);
        var addressSecurity = hop.IsIpLiteral ? DnsSecurity.Insecure : hop.AddressSecurity;
        TlsaLookup? expanded = null, own = null;
        if (!hop.IsIpLiteral && (showRecords || route.MxSecurity == DnsSecurity.Secure && addressSecurity == DnsSecurity.Secure))
        {
            if (hop.CanonicalName is { } canonical) expanded = await TlsaAsync(dns, canonical, ct).ConfigureAwait(false);
            if (expanded is null || expanded is { Security: DnsSecurity.Secure, Records.Count: 0 } or { Security: DnsSecurity.Insecure })
                own = await TlsaAsync(dns, hop.Host, ct).ConfigureAwait(false);
        }
        return new(DanePolicy.ForHost(mode, hop.Host, route.MxSecurity, addressSecurity, hop.CanonicalName, expanded, own), expanded, own);
    }

    private static async Task<TlsaLookup> TlsaAsync(IDnsResolver dns, string name, CancellationToken ct)
    {
        var answer = await dns.QueryTlsaAsync($"_25._tcp.{name}", ct).ConfigureAwait(false);
        return new TlsaLookup(name, answer.Security, answer.Outcome, answer.Records, answer.Error);
    }
}
