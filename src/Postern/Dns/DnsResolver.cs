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
/// A DNS answer with its DNSSEC status: Authenticated is the AD bit of a validating
/// resolver (the DANE engine will need it; the spine only carries it).
/// </summary>
public sealed record DnsAnswer<T>(DnsOutcome Outcome, IReadOnlyList<T> Records, bool Authenticated, string? Error = null)
{
    public bool IsTemporaryFailure => Outcome == DnsOutcome.TemporaryFailure;
}

public sealed record MxHost(int Preference, string Host);

public interface IDnsResolver
{
    Task<DnsAnswer<MxHost>> QueryMxAsync(string domain, CancellationToken ct);
    Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string host, bool ipv6, CancellationToken ct);
    Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken ct);
}

public sealed class DnsResolver : IDnsResolver
{
    private readonly LookupClient _client;
    private readonly MailEventStream _events;

    public DnsResolver(DnsSettings settings, MailEventStream events)
    {
        _events = events;
        var servers = settings.Servers.Select(s =>
        {
            var ep = IPEndPoint.Parse(s);
            if (ep.Port == 0) ep.Port = 53;
            return new NameServer(ep);
        }).ToArray();
        var options = servers.Length > 0 ? new LookupClientOptions(servers) : new LookupClientOptions();
        options.UseCache = true;
        options.Timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
        options.Retries = 2;
        options.RequestDnsSecRecords = true;   // DO bit, so the resolver reports validation (AD)
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;    // SERVFAIL from the resolver must not be papered over
        options.ContinueOnEmptyResponse = false;
        options.UseTcpFallback = true;
        _client = new LookupClient(options);
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
        return status.With(records);
    }

    public async Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken ct)
    {
        var name = address.GetArpaName();
        var (status, response) = await QueryAsync(name, QueryType.PTR, ct).ConfigureAwait(false);
        var records = response?.Answers.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.').ToLowerInvariant()).ToList() ?? [];
        return status.With(records);
    }

    private readonly record struct Status(DnsOutcome Outcome, bool Authenticated, string? Error)
    {
        public DnsAnswer<T> With<T>(List<T> records) =>
            new(Outcome == DnsOutcome.Ok && records.Count == 0 ? DnsOutcome.NoData : Outcome, records, Authenticated, Error);
    }

    private async Task<(Status Status, IDnsQueryResponse? Response)> QueryAsync(string name, QueryType type, CancellationToken ct)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, type, QueryClass.IN, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DnsResponseException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            _events.Publish(new DnsQueried(name, type.ToString(), "failed: " + e.Message));
            return (new(DnsOutcome.TemporaryFailure, false, e.Message), null);
        }
        var code = response.Header.ResponseCode;
        var ad = response.Header.IsAuthenticData;
        _events.Publish(new DnsQueried(name, type.ToString(), $"{code}{(ad ? " AD" : "")} {response.Answers.Count} answers"));
        return code switch
        {
            DnsHeaderResponseCode.NoError => (new(DnsOutcome.Ok, ad, null), response),
            DnsHeaderResponseCode.NotExistentDomain => (new(DnsOutcome.NxDomain, ad, "NXDOMAIN"), null),
            _ => (new(DnsOutcome.TemporaryFailure, false, code.ToString()), null),
        };
    }
}
