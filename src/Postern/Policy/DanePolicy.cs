using Postern.Admin;
using Postern.Dns;

namespace Postern.Policy;

/// <summary>What DANE asks of one MX host (RFC 7672 §2).</summary>
public enum DaneHostKind
{
    /// <summary>DANE does not apply: the destination's TLS level decides.</summary>
    NotApplicable,
    /// <summary>Usable TLSA records: TLS is mandatory and the certificate must match them.</summary>
    Authenticate,
    /// <summary>A secure TLSA RRset with no usable record: TLS is mandatory, without authentication (§2.2).</summary>
    EncryptOnly,
    /// <summary>This host cannot be used now (a DNS fault in a signed zone, or Mandatory without DANE): next MX, else defer.</summary>
    Unusable,
}

/// <summary>Why a host is unusable under DANE (TLS reports name it: RFC 8460 §4.3.2.1).</summary>
public enum DaneUnusableCause { None, DnssecInvalid, NoUsableTlsa, DaneRequired }

/// <param name="Records">The TLSA records: the usable ones to authenticate with; all of them when none is usable (what TLS reports name); none otherwise.</param>
/// <param name="TlsaBase">The TLSA base domain (the name whose TLSA records apply), for SNI and logs.</param>
/// <param name="ReferenceIdentifiers">Names a DANE-TA certificate must carry (RFC 7672 §3.2.3).</param>
public sealed record DaneHostPolicy(DaneHostKind Kind, IReadOnlyList<TlsaRecord> Records, string Reason, string? TlsaBase = null, IReadOnlyList<string>? ReferenceIdentifiers = null,
    DaneUnusableCause Cause = DaneUnusableCause.None)
{
    public bool RequiresTls => Kind is DaneHostKind.Authenticate or DaneHostKind.EncryptOnly;
}

/// <summary>The answer to one TLSA query at _25._tcp.&lt;name&gt;.</summary>
public sealed record TlsaLookup(string Name, DnsSecurity Security, DnsOutcome Outcome, IReadOnlyList<TlsaRecord> Records, string? Error = null);

/// <summary>
/// The RFC 7672 §2 decision for one MX host as a pure function of the destination's DANE
/// mode and the DNS facts (with their DNSSEC status). Opportunistic: DANE wherever usable
/// TLSA exist, else the TLS level; Mandatory: no delivery without DANE authentication. A
/// DNS fault in a signed zone never downgrades: the host is unusable.
/// </summary>
public static class DanePolicy
{
    /// <param name="host">The MX host name as the MX record gives it.</param>
    /// <param name="expanded">The name its CNAME chain ends at, when it is an alias.</param>
    /// <param name="expandedTlsa">TLSA at the expanded name (looked up first, §2.2.2), when there is one.</param>
    /// <param name="hostTlsa">TLSA at the host name itself.</param>
    public static DaneHostPolicy ForHost(DaneSupport mode, string host, DnsSecurity mxSecurity, DnsSecurity addressSecurity,
        string? expanded, TlsaLookup? expandedTlsa, TlsaLookup? hostTlsa)
    {
        var mandatory = mode == DaneSupport.Mandatory;
        DaneHostPolicy Without(string reason) => mandatory
            ? new(DaneHostKind.Unusable, [], $"DANE is mandatory, but {reason}", Cause: DaneUnusableCause.DaneRequired)
            : new(DaneHostKind.NotApplicable, [], reason);

        if (mode is DaneSupport.None or DaneSupport.Default) return new(DaneHostKind.NotApplicable, [], "DANE is off for this destination");
        if (System.Net.IPAddress.TryParse(host, out _)) return Without("the SMTP route names an IP address (no TLSA base domain)");
        if (mxSecurity is DnsSecurity.Bogus or DnsSecurity.Indeterminate) return new(DaneHostKind.Unusable, [], $"the MX records are {Describe(mxSecurity)}", Cause: DaneUnusableCause.DnssecInvalid);
        if (mxSecurity != DnsSecurity.Secure) return Without($"the MX records are {Describe(mxSecurity)}");
        if (addressSecurity is DnsSecurity.Bogus or DnsSecurity.Indeterminate)
            return new(DaneHostKind.Unusable, [], $"the address records of {host} are {Describe(addressSecurity)}", Cause: DaneUnusableCause.DnssecInvalid);
        if (addressSecurity != DnsSecurity.Secure) return Without($"the address records of {host} are {Describe(addressSecurity)}");

        // An alias: the expanded name's TLSA records first, then the alias's own (§2.2.2).
        var candidates = new List<(TlsaLookup Lookup, IReadOnlyList<string> References)>();
        if (expanded is not null && expandedTlsa is not null) candidates.Add((expandedTlsa, [expanded, host]));
        if (hostTlsa is not null) candidates.Add((hostTlsa, [host]));
        foreach (var (lookup, references) in candidates)
        {
            switch (lookup.Security)
            {
                case DnsSecurity.Bogus or DnsSecurity.Indeterminate:
                    return new(DaneHostKind.Unusable, [], $"the TLSA lookup at _25._tcp.{lookup.Name} is {Describe(lookup.Security)}{(lookup.Error is null ? "" : $" ({lookup.Error})")}", Cause: DaneUnusableCause.DnssecInvalid);
                case DnsSecurity.Insecure when lookup != candidates[^1].Lookup:
                    continue;   // the expanded name's TLSA are unsigned: the alias's own are looked at next (as Postfix does)
                case DnsSecurity.Insecure:
                    return Without($"the TLSA records at _25._tcp.{lookup.Name} are {Describe(lookup.Security)}");
            }
            if (lookup.Records.Count == 0) continue;   // secure denial: try the next name
            var usable = lookup.Records.Where(r => r.IsUsable).ToList();
            if (usable.Count > 0)
                return new(DaneHostKind.Authenticate, usable, $"{usable.Count} usable TLSA record(s) at _25._tcp.{lookup.Name}", lookup.Name, references);
            var why = string.Join("; ", lookup.Records.Select(r => $"{r}: {r.UnusableReason}"));
            return mandatory
                ? new(DaneHostKind.Unusable, lookup.Records, $"DANE is mandatory, but no TLSA record at _25._tcp.{lookup.Name} is usable ({why})", lookup.Name, Cause: DaneUnusableCause.NoUsableTlsa)
                : new(DaneHostKind.EncryptOnly, lookup.Records, $"no usable TLSA record at _25._tcp.{lookup.Name} ({why}): TLS without authentication", lookup.Name, references);
        }
        return Without($"there are no TLSA records for {host}");
    }

    public static string Describe(DnsSecurity s) => s switch
    {
        DnsSecurity.Secure => "DNSSEC-validated (secure)",
        DnsSecurity.Insecure => "not DNSSEC-signed (insecure)",
        DnsSecurity.Bogus => "bogus (DNSSEC validation failed)",
        _ => "indeterminate (the lookup failed)",
    };
}
