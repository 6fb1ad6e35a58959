using Postern.Dns;
using Postern.Policy;

namespace Postern.Observability;

/// <summary>
/// Where a policy domain wants its TLS reports (RFC 8460 §3): the TXT records at
/// _smtp._tls.&lt;domain&gt;, read through Postern's resolver. A lookup that failed is not
/// "no record": it says so, and the report waits for a later lookup instead of being dropped.
/// </summary>
public static class TlsRptDiscovery
{
    public static async Task<TlsRptRecord> LookupAsync(IDnsResolver dns, string policyDomain, CancellationToken ct) =>
        (await LookupWithTtlAsync(dns, policyDomain, ct).ConfigureAwait(false)).Record;

    /// <summary>The record and the answer's TTL (for the caller's cache; null when the answer had no records).</summary>
    public static async Task<(TlsRptRecord Record, TimeSpan? Ttl)> LookupWithTtlAsync(IDnsResolver dns, string policyDomain, CancellationToken ct)
    {
        var name = "_smtp._tls." + policyDomain.TrimEnd('.');
        var answer = await dns.QueryTxtAsync(name, ct).ConfigureAwait(false);
        return (FromAnswer(answer, name), answer.Ttl);
    }

    private static TlsRptRecord FromAnswer(DnsAnswer<string> answer, string name) => answer.Outcome switch
    {
        DnsOutcome.Ok => TlsRptRecord.Parse(answer.Records),
        DnsOutcome.NoData or DnsOutcome.NxDomain => new TlsRptRecord(TlsRptRecordKind.NoRecord, [], $"no TXT record at {name}"),
        _ => new TlsRptRecord(TlsRptRecordKind.LookupFailed, [], $"lookup of {name} failed: {answer.Error ?? "temporary DNS failure"}"),
    };
}
