using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Postern.Admin;
using Postern.Observability;

namespace Postern.Dns;

public enum DnsOutcome { Ok, NoData, NxDomain, TemporaryFailure }

/// <summary>
/// The DNSSEC status of an answer (RFC 4035 §4.3): Secure only with the AD bit from a
/// resolver the administrator trusts; Bogus or Indeterminate when the lookup failed (a
/// validating resolver answers SERVFAIL for both, so they are told apart only by the error).
/// </summary>
public enum DnsSecurity { Secure, Insecure, Bogus, Indeterminate }

/// <summary>
/// A DNS answer with its DNSSEC status (the AD bit of a resolver the administrator trusts)
/// and, when the name is an alias, the name its CNAME chain ends at.
/// </summary>
public sealed record DnsAnswer<T>(DnsOutcome Outcome, IReadOnlyList<T> Records, DnsSecurity Security, string? Error = null, string? CanonicalName = null)
{
    /// <summary>The smallest TTL of the answer's records, where the caller caches by it; null = unknown.</summary>
    public TimeSpan? Ttl { get; init; }
    public bool IsTemporaryFailure => Outcome == DnsOutcome.TemporaryFailure;
    public bool Authenticated => Security == DnsSecurity.Secure;
}

public sealed record MxHost(int Preference, string Host);

public interface IDnsResolver
{
    Task<DnsAnswer<MxHost>> QueryMxAsync(string domain, CancellationToken ct);
    Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string host, bool ipv6, CancellationToken ct);
    Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken ct);
    /// <summary>TLSA records at the given owner name ("_25._tcp.mx.example.com").</summary>
    Task<DnsAnswer<Policy.TlsaRecord>> QueryTlsaAsync(string owner, CancellationToken ct);
    /// <summary>TXT records, each the concatenation of its character-strings.</summary>
    Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken ct);
}

public sealed class DnsResolver : IDnsResolver
{
    private static string DescribeShort(DnsHeaderResponseCode code, DnsSecurity security) =>
        code == DnsHeaderResponseCode.ServerFailure ? "bogus or unreachable" : security == DnsSecurity.Secure ? "secure" : "insecure";

    private readonly LookupClient _client;
    private readonly MailEventStream _events;
    private readonly Func<IPAddress, bool> _trusted;
    /// <summary>Some configured resolver is trusted to validate: an answer from another one is then indeterminate, never "insecure".</summary>
    private readonly bool _expectValidation;

    /// <summary>The resolvers queries go to (the configured ones, else the system's).</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; }

    /// <summary>Whether the AD bit from this resolver is believed: listed ones, or loopback ones when none are listed.</summary>
    public static Func<IPAddress, bool> TrustRule(DnsSettings settings)
    {
        if (settings.TrustedResolvers is { } list)
        {
            var set = list.Select(IPAddress.Parse).ToHashSet();
            return a => set.Contains(a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a);
        }
        return IPAddress.IsLoopback;
    }

    public DnsResolver(DnsSettings settings, MailEventStream events)
    {
        _events = events;
        _trusted = TrustRule(settings);
        var servers = settings.Servers.Select(s =>
        {
            var ep = IPEndPoint.Parse(s);
            if (ep.Port == 0) ep.Port = 53;
            return new NameServer(ep);
        }).ToArray();
        var options = servers.Length > 0 ? new LookupClientOptions(servers) : new LookupClientOptions();
        options.UseCache = true;
        // Always the first resolver first (the next only when it fails): answers must not come
        // at random from a trusted validating resolver or from an untrusted fallback.
        options.UseRandomNameServer = false;
        options.Timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
        options.Retries = 2;
        options.RequestDnsSecRecords = true;   // DO bit, so the resolver reports validation (AD)
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;    // SERVFAIL from the resolver must not be papered over
        options.ContinueOnEmptyResponse = false;
        options.UseTcpFallback = true;
        _client = new LookupClient(options);
        Servers = _client.NameServers.Select(n => new IPEndPoint(IPAddress.Parse(n.Address), n.Port)).ToList();
        _expectValidation = Servers.Any(s => _trusted(s.Address));
    }

    public async Task<DnsAnswer<MxHost>> QueryMxAsync(string domain, CancellationToken ct)
    {
        var (status, response) = await QueryAsync(domain, QueryType.MX, ct).ConfigureAwait(false);
        var records = response?.Answers.MxRecords()
            .Select(mx => new MxHost(mx.Preference, mx.Exchange.Value.TrimEnd('.').ToLowerInvariant()))
            .ToList() ?? [];
        return status.With(records);
    }

    public async Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string host, bool ipv6, CancellationToken ct)
    {
        var (status, response) = await QueryAsync(host, ipv6 ? QueryType.AAAA : QueryType.A, ct).ConfigureAwait(false);
        List<IPAddress> records = response is null ? []
            : ipv6 ? response.Answers.AaaaRecords().Select(r => r.Address).ToList()
            : response.Answers.ARecords().Select(r => r.Address).ToList();
        return status.With(records, CanonicalName(host, response));
    }

    public async Task<DnsAnswer<Policy.TlsaRecord>> QueryTlsaAsync(string owner, CancellationToken ct)
    {
        var (status, response) = await QueryAsync(owner, QueryType.TLSA, ct).ConfigureAwait(false);
        var records = response?.Answers.OfType<TlsaRecord>()
            .Select(t => new Policy.TlsaRecord((byte)t.CertificateUsage, (byte)t.Selector, (byte)t.MatchingType, t.CertificateAssociationData.ToArray()))
            .ToList() ?? [];
        foreach (var r in records) _events.Publish(new DnsQueried(owner, "TLSA", $"record {r}{(r.IsUsable ? "" : $" (unusable: {r.UnusableReason})")}"));
        return status.With(records, CanonicalName(owner, response));
    }

    public async Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken ct)
    {
        var (status, response) = await QueryAsync(name, QueryType.TXT, ct).ConfigureAwait(false);
        var txt = response?.Answers.TxtRecords().ToList() ?? [];
        var records = txt.Select(t => string.Concat(t.Text)).ToList();
        return status.With(records, CanonicalName(name, response)) with
        {
            Ttl = txt.Count == 0 ? null : TimeSpan.FromSeconds(txt.Min(t => t.InitialTimeToLive)),
        };
    }

    /// <summary>Looks up "type:name" (the DNSSEC probe) and reports how it came back.</summary>
    public async Task<DnsAnswer<string>> ProbeAsync(string probe, CancellationToken ct)
    {
        var colon = probe.IndexOf(':');
        if (colon < 0 || !Enum.TryParse<QueryType>(probe[..colon], ignoreCase: true, out var type))
            return new DnsAnswer<string>(DnsOutcome.TemporaryFailure, [], DnsSecurity.Indeterminate, $"'{probe}' is not type:name");
        var (status, response) = await QueryAsync(probe[(colon + 1)..], type, ct).ConfigureAwait(false);
        var server = response?.NameServer.Address;
        return status.With(server is null ? [] : new List<string> { server });
    }

    /// <summary>Where the CNAME chain in the answer ends, when the name is an alias.</summary>
    private static string? CanonicalName(string name, IDnsQueryResponse? response)
    {
        if (response is null) return null;
        var current = name.TrimEnd('.').ToLowerInvariant();
        string? result = null;
        for (var i = 0; i < 16; i++)   // bounded: a CNAME loop ends here
        {
            var next = response.Answers.CnameRecords().FirstOrDefault(c => c.DomainName.Value.TrimEnd('.').Equals(current, StringComparison.OrdinalIgnoreCase));
            if (next is null) break;
            current = next.CanonicalName.Value.TrimEnd('.').ToLowerInvariant();
            result = current;
        }
        return result;
    }

    public async Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken ct)
    {
        var name = address.GetArpaName();
        var (status, response) = await QueryAsync(name, QueryType.PTR, ct).ConfigureAwait(false);
        var records = response?.Answers.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.').ToLowerInvariant()).ToList() ?? [];
        return status.With(records);
    }

    private readonly record struct Status(DnsOutcome Outcome, DnsSecurity Security, string? Error)
    {
        public DnsAnswer<T> With<T>(List<T> records, string? canonicalName = null) =>
            new(Outcome == DnsOutcome.Ok && records.Count == 0 ? DnsOutcome.NoData : Outcome, records, Security, Error, canonicalName);
    }

    private async Task<(Status Status, IDnsQueryResponse? Response)> QueryAsync(string name, QueryType type, CancellationToken ct)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, type, QueryClass.IN, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DnsResponseException or System.Net.Sockets.SocketException or TimeoutException or ArgumentException
            or OperationCanceledException && !ct.IsCancellationRequested)
        {
            _events.Publish(new DnsQueried(name, type.ToString(), "failed: " + e.Message));
            return (new(DnsOutcome.TemporaryFailure, DnsSecurity.Indeterminate, e.Message), null);
        }
        catch (DnsResponseException) when (ct.IsCancellationRequested)
        {
            // DnsClient reports our own cancellation as a response error: it is a cancellation.
            throw new OperationCanceledException(ct);
        }
        var code = response.Header.ResponseCode;
        // The AD bit means something only from a validating resolver we trust (on the path to it, nobody can set it).
        var fromTrusted = IPAddress.TryParse(response.NameServer.Address, out var server) && _trusted(server);
        var ad = response.Header.IsAuthenticData && fromTrusted;
        // An untrusted fallback's answer cannot say "not signed": with a validating resolver configured, it says nothing.
        var security = ad ? DnsSecurity.Secure : fromTrusted || !_expectValidation ? DnsSecurity.Insecure : DnsSecurity.Indeterminate;
        _events.Publish(new DnsQueried(name, type.ToString(), $"{code}{(ad ? " AD" : "")} {response.Answers.Count} answers ({DescribeShort(code, security)})"));
        return code switch
        {
            DnsHeaderResponseCode.NoError => (new(DnsOutcome.Ok, security, null), response),
            DnsHeaderResponseCode.NotExistentDomain => (new(DnsOutcome.NxDomain, security, "NXDOMAIN"), null),
            // A validating resolver answers SERVFAIL for bogus data and for unreachable servers alike.
            DnsHeaderResponseCode.ServerFailure => (new(DnsOutcome.TemporaryFailure, DnsSecurity.Bogus, "ServerFailure"), null),
            _ => (new(DnsOutcome.TemporaryFailure, DnsSecurity.Indeterminate, code.ToString()), null),
        };
    }
}
