using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Postern.Admin;
using Postern.Dns;
using Postern.Observability;
using Postern.Policy;
using Postern.Security;

namespace Postern.Outbound;

/// <summary>The outcome of one policy fetch.</summary>
public sealed record StsFetch(string? Text, StsResult Result, string Detail, string? Certificate = null);

/// <summary>
/// Fetches https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt (RFC 8461 §3.3): Postern's
/// resolver, SNI for that name, a certificate for it under the enabled CA lists, TLS 1.2+,
/// no redirects, 200 only, text/plain only, at most 64 KB, a bounded time, optional proxy.
/// </summary>
public sealed class StsPolicyFetcher(IDnsResolver dns, Func<X509Certificate2Collection> trustedRoots, VerificationOptions options, MtaStsSettings settings)
{
    public const int MaxBody = 64 * 1024;

    public Func<X509Certificate2Collection> TrustedRoots => trustedRoots;
    /// <summary>The configured proxy, named in the log of every fetch through it.</summary>
    public string? Proxy => settings.Proxy;
    public VerificationOptions Options => options;

    public async Task<StsFetch> FetchAsync(string domain, CancellationToken ct)
    {
        var host = "mta-sts." + domain;
        CertificateCheck? check = null;
        string? presented = null;
        using var handler = VerifiedHttps.Handler(dns, host, trustedRoots, options, settings.Proxy, (c, p) => (check, presented) = (c, p));
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(settings.FetchTimeoutSeconds));
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{host}/.well-known/mta-sts.txt");
            request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Postern", "1"));
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                var where = response.Headers.Location is { } location ? $" (to {location})" : "";
                return new(null, StsResult.PolicyFetchError, $"HTTP status {(int)response.StatusCode}{where}; only 200 is accepted, redirects are not followed", presented);
            }
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (!string.Equals(mediaType, "text/plain", StringComparison.OrdinalIgnoreCase))
                return new(null, StsResult.PolicyInvalid, $"media type {mediaType ?? "(none)"} is not text/plain", presented);
            if (response.Content.Headers.ContentLength > MaxBody)
                return new(null, StsResult.PolicyInvalid, $"policy of {response.Content.Headers.ContentLength} bytes is over the limit of {MaxBody}", presented);
            await using var body = await response.Content.ReadAsStreamAsync(deadline.Token).ConfigureAwait(false);
            var buffer = new byte[MaxBody + 1];
            var total = 0;
            int n;
            while (total < buffer.Length && (n = await body.ReadAsync(buffer.AsMemory(total), deadline.Token).ConfigureAwait(false)) > 0) total += n;
            if (total > MaxBody) return new(null, StsResult.PolicyInvalid, $"policy body over the limit of {MaxBody} bytes", presented);
            string text;
            try { text = new UTF8Encoding(false, true).GetString(buffer, 0, total); }
            catch (DecoderFallbackException) { return new(null, StsResult.PolicyInvalid, "policy is not UTF-8 text", presented); }
            return new(text, StsResult.Ok, "fetched", presented);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new(null, StsResult.PolicyFetchError, "a connection timeout.", presented);
        }
        catch (HttpRequestException e) when (check is { Verified: false })
        {
            return new(null, StsResult.WebPkiInvalid, $"certificate of {host}: {check.Reason} ({e.Message})", presented);
        }
        catch (Exception e) when (e is not HttpRequestException && !ct.IsCancellationRequested)
        {
            // A body cut short (HttpIOException), a reset mid-transfer, anything else: a fetch error, never a crash.
            return new(null, StsResult.PolicyFetchError, $"{e.GetType().Name}: {e.Message}", presented);
        }
        catch (HttpRequestException e)
        {
            return new(null, StsResult.PolicyFetchError, VerifiedHttps.Describe(e), presented);
        }
    }
}

/// <summary>
/// The MTA-STS policy for a domain: TXT discovery, the persistent cache (a TXT id equal to
/// the cached one keeps the cached policy; a new id fetches; a failed fetch keeps an
/// unexpired cached policy, RFC 8461 §5.1), and the SPEC §7 log lines.
/// </summary>
public sealed class StsPolicyProvider(IDnsResolver dns, IStsPolicyCache cache, StsPolicyFetcher fetcher, MailEventStream events, Func<DateTimeOffset> now)
{
    /// <summary>Fetches of one domain are serialised: a burst of mail to it causes one fetch (striped locks, a fixed number).</summary>
    private readonly SemaphoreSlim[] _locks = Enumerable.Range(0, 64).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public IStsPolicyCache Cache => cache;

    /// <summary>Domains whose policy could not be fetched (and none was cached): TLS reports say so. Bounded; cleared by a fetch that works.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (StsResult Result, string Reason)> _unavailable = new(StringComparer.OrdinalIgnoreCase);
    private const int MaxUnavailable = 10_000;

    /// <summary>Why the last lookup of the domain's policy found a record but no policy to apply; null when it had one or the domain publishes none.</summary>
    public (StsResult Result, string Reason)? Unavailable(string domain) => _unavailable.TryGetValue(domain, out var u) ? u : null;

    public async Task<StsPolicy?> GetAsync(string domain, CancellationToken ct, bool forceFetch = false)
    {
        var gate = _locks[(StringComparer.OrdinalIgnoreCase.GetHashCode(domain) & 0x7fffffff) % _locks.Length];
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try { return await ResolveAsync(domain, ct, forceFetch).ConfigureAwait(false); }
        finally { gate.Release(); }
    }

    private async Task<StsPolicy?> ResolveAsync(string domain, CancellationToken ct, bool forceFetch)
    {
        var t = now();
        var cached = cache.Get(domain);
        var usable = cached is not null && !cached.IsExpired(t) ? cached : null;
        var txt = await dns.QueryTxtAsync($"_mta-sts.{domain}", ct).ConfigureAwait(false);
        string? id = null;
        if (txt.IsTemporaryFailure) events.Publish(new StsNoPolicy(domain, $"TXT lookup of _mta-sts.{domain} failed: {txt.Error}"));
        else
        {
            var (parsed, error) = StsTxt.Parse(txt.Records);
            if (parsed is null) events.Publish(new StsNoPolicy(domain, $"_mta-sts.{domain}: {error}"));
            else { id = parsed; events.Publish(new StsTxtFetched(domain, id)); }
        }
        if (id is null)
        {
            _unavailable.TryRemove(domain, out _);
            // No (usable) record: a policy already cached keeps applying until it expires.
            if (usable is null) return null;
            events.Publish(new StsCachedPolicyKept(domain, usable.ExpiresAt));
            return Use(usable, t);
        }
        if (usable is not null && usable.Id == id && !forceFetch)
        {
            events.Publish(new StsCacheValid(domain));
            return Use(usable, t);
        }
        events.Publish(new StsFetchStarted(domain));
        var fetch = await fetcher.FetchAsync(domain, ct).ConfigureAwait(false);
        StsPolicy? policy = null;
        var result = fetch.Result;
        var reason = fetch.Detail;
        if (fetch.Text is not null)
        {
            var (p, error) = StsPolicy.Parse(fetch.Text);
            if (p is null) { result = StsResult.PolicyInvalid; reason = "invalid policy: " + error; }
            else policy = p;
        }
        if (policy is null)
        {
            events.Publish(new StsFetchFailed(domain, result, reason));
            events.Publish(new StsFetchFailureDetail(domain, fetcher.Proxy is null ? reason : $"{reason} (via proxy {fetcher.Proxy})"));
            if (usable is null)
            {
                if (_unavailable.Count >= MaxUnavailable) _unavailable.Clear();
                _unavailable[domain] = (result, reason);
                return null;
            }
            events.Publish(new StsCachedPolicyKept(domain, usable.ExpiresAt));
            return Use(usable, t);
        }
        _unavailable.TryRemove(domain, out _);
        events.Publish(new StsPolicyFetched(domain, id, policy.Describe(), fetch.Certificate ?? "?", fetcher.Proxy));
        cache.Put(new StsCacheEntry(domain, id, fetch.Text!, t, t.AddSeconds(policy.MaxAgeSeconds), t));
        return policy;
    }

    private StsPolicy? Use(StsCacheEntry entry, DateTimeOffset t)
    {
        // "Recent traffic" needs hour precision, not a synced write per delivery.
        if (t - entry.LastUsed > TimeSpan.FromHours(1)) cache.Touch(entry.Domain, t);
        return StsPolicy.Parse(entry.PolicyText).Policy;
    }
}

/// <summary>
/// Refreshes cached MTA-STS policies before they expire, but only for domains that had
/// mail recently: a domain that receives nothing is never fetched for nothing. Runs at
/// start and then every hour.
/// </summary>
public sealed class StsRefresher : IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);
    /// <summary>Traffic within this window counts as recent.</summary>
    public static readonly TimeSpan RecentTraffic = TimeSpan.FromDays(1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public StsRefresher(StsPolicyProvider provider, MailEventStream events, Func<DateTimeOffset> now)
    {
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    var t = now();
                    var refreshed = 0;
                    var idle = 0;
                    foreach (var entry in provider.Cache.List())
                    {
                        var maxAge = entry.ExpiresAt - entry.FetchedAt;
                        // Due: less than half its lifetime, and at most a day, left.
                        var threshold = maxAge / 2 < TimeSpan.FromDays(1) ? maxAge / 2 : TimeSpan.FromDays(1);
                        var due = entry.ExpiresAt - t < threshold;
                        if (!due) continue;
                        if (t - entry.LastUsed > RecentTraffic) { idle++; continue; }
                        events.Publish(new SystemNotice($"MTA-STS proactive refresh of the policy for the domain ({entry.Domain}), expiring {entry.ExpiresAt:u}"));
                        try
                        {
                            await provider.GetAsync(entry.Domain, _stop.Token, forceFetch: true).ConfigureAwait(false);
                            refreshed++;
                        }
                        catch (Exception e) when (e is not OperationCanceledException)
                        {
                            events.Publish(new SystemWarning($"MTA-STS proactive refresh of {entry.Domain} failed: {e.Message}"));
                        }
                    }
                    events.Publish(new SystemNotice($"MTA-STS proactive refresh: {refreshed} polic{(refreshed == 1 ? "y" : "ies")} refreshed, {idle} expiring without recent traffic left alone"));
                    await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) { break; }
                catch (Exception e)
                {
                    events.Publish(new SystemWarning("MTA-STS proactive refresh failed: " + e.Message));
                    try { await Task.Delay(Interval, _stop.Token).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
                }
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
