using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MimeKit;
using MimeKit.Utils;
using Postern.Admin;
using Postern.Dns;
using Postern.Inbound;
using Postern.Outbound;
using Postern.Policy;
using Postern.Queue;

namespace Postern.Observability;

/// <summary>A daily report was sent (by mail through the queue, by HTTPS POST, or both).</summary>
public sealed record TlsReportSent(DateOnly Day, string Domain, string ReportId, long Successful, long Failed, string How) : MailEvent
{
    public override string LogText => $"TLS report for {Domain} ({Day:yyyy-MM-dd}, report-id {ReportId}): {Successful} successful and {Failed} failed session(s); {How}";
}

/// <summary>A daily report was not sent, or not yet: the domain asks for none, a lookup or a POST failed, it is too large.</summary>
public sealed record TlsReportNotSent(DateOnly Day, string Domain, TlsRptReportState State, string Reason) : MailEvent
{
    public override string Level => State is TlsRptReportState.Failed or TlsRptReportState.TooLarge or TlsRptReportState.Retry ? "Warning" : "Info";
    public override string LogText => $"TLS report for {Domain} ({Day:yyyy-MM-dd}) {Describe(State)}: {Reason}";

    private static string Describe(TlsRptReportState s) => s switch
    {
        TlsRptReportState.NotRequested => "not sent",
        TlsRptReportState.Retry => "to be retried",
        TlsRptReportState.TooLarge => "not sent (too large)",
        _ => "given up",
    };
}

/// <summary>
/// Turns the session events of the stream into counts in the store (RFC 8460 §4: per policy
/// domain and UTC day). Counts gather in memory and are added every few seconds and at
/// shutdown; the pending set is bounded (a full set is written at once).
/// </summary>
public sealed class TlsRptCollector : IAsyncDisposable
{
    public static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(2);
    public const int MaxPending = 10_000;
    /// <summary>While the store is slow, kinds beyond this many wait nowhere: their sessions are dropped and the log says how many.</summary>
    public const int HardCap = 4 * MaxPending;
    private long _dropped;

    private readonly ITlsRptStore _store;
    private readonly MailEventStream _events;
    private readonly Lock _gate = new();
    private Dictionary<CountKey, TlsRptCount> _pending = new();
    private readonly SemaphoreSlim _full = new(0, 1);

    /// <summary>What sessions are summed by: the store's key of a count.</summary>
    private readonly record struct CountKey(DateOnly Day, string Domain, string PolicyKey, string Result, string SendingIp, string MxHost, string ReceivingIp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public TlsRptCollector(ITlsRptStore store, MailEventStream events)
    {
        _store = store;
        _events = events;
        events.Subscribe(On);
        _loop = Task.Run(LoopAsync);
    }

    private void On(MailEvent e)
    {
        if (e is not TlsSessionReported s) return;
        var day = DateOnly.FromDateTime(s.Time.UtcDateTime);
        var failure = s.Failure is { } f ? TlsRptNames.Of(f) : "";
        // Successes are counted per policy only; failures per result type and hosts (RFC 8460 §4.4 "failure-details").
        var (sending, mx, receiving) = s.Failure is null ? ("", "", "") : (s.SendingIp ?? "", s.MxHost.ToLowerInvariant(), s.ReceivingIp ?? "");
        var key = new CountKey(day, s.Policy.PolicyDomain, s.Policy.Key, failure, sending, mx, receiving);
        lock (_gate)
        {
            if (_pending.Count >= HardCap && !_pending.ContainsKey(key))
            {
                _dropped++;
                return;
            }
            _pending[key] = _pending.TryGetValue(key, out var c) ? c with { Sessions = c.Sessions + 1 }
                : new TlsRptCount(day, s.Policy with { Failure = null, FailureDetail = "" }, s.Failure, sending, mx, receiving, 1,
                    s.Failure is null ? "" : TrackingText.Clean(s.Detail, 200));
            if (_pending.Count >= MaxPending && _full.CurrentCount == 0) _full.Release();
        }
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try { await _full.WaitAsync(FlushInterval, _stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
            await FlushAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Adds what has gathered to the store (tests call it to see counts at once).</summary>
    public async Task FlushAsync()
    {
        Dictionary<CountKey, TlsRptCount> batch;
        long dropped;
        lock (_gate)
        {
            (dropped, _dropped) = (_dropped, 0);
            (batch, _pending) = (_pending, new());
        }
        if (dropped > 0) _events.Publish(new SystemWarning($"TLS reporting: {dropped} session(s) not counted: {HardCap} kinds were waiting for the store"));
        if (batch.Count == 0) return;
        try { await _store.AddAsync(batch.Values).ConfigureAwait(false); }
        catch (Exception e)
        {
            // Kept for the next flush (within the hard cap); the log says so.
            var kept = 0L;
            lock (_gate)
                foreach (var (key, count) in batch)
                {
                    if (_pending.TryGetValue(key, out var c)) _pending[key] = c with { Sessions = c.Sessions + count.Sessions };
                    else if (_pending.Count < HardCap) _pending[key] = count;
                    else { _dropped += count.Sessions; continue; }
                    kept += count.Sessions;
                }
            _events.Publish(new SystemWarning($"TLS reporting: {kept} session count(s) could not be stored now and are kept for the next try: {e.Message}"));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
    }
}

/// <summary>
/// Once a day, at the configured UTC hour, sends each policy domain that had traffic the day
/// before (and any earlier day not yet reported, up to a week back) its aggregate report
/// (RFC 8460 §4.4), to every address its _smtp._tls record names: mailto: through Postern's
/// own queue, https: by POST. A failed lookup or POST is retried with backoff, a few times.
/// </summary>
public sealed class TlsRptReporter : IAsyncDisposable
{
    /// <summary>The listener name report mail is queued under: delivery knows it by this and never counts its sessions.</summary>
    public const string QueueListener = "tlsrpt";
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMinutes(1);
    /// <summary>Days not yet reported are caught up this far back; counts are kept a little longer, then pruned.</summary>
    public const int CatchUpDays = 7;
    public const int KeepDays = 40;
    public const int MaxAttempts = 6;
    /// <summary>At most this many mailto: and this many https: addresses of a record are used.</summary>
    public const int MaxAddressesPerScheme = 5;
    private static readonly TimeSpan[] Backoff = [TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), TimeSpan.FromHours(3), TimeSpan.FromHours(6)];
    public static readonly TimeSpan PostTimeout = TimeSpan.FromSeconds(30);
    /// <summary>A report still "sending" this long after it was taken was abandoned by its sender.</summary>
    public static readonly TimeSpan StalledAfter = TimeSpan.FromHours(1);
    private const int MaxCachedRecords = 10_000;

    private readonly Func<PosternConfig> _config;
    private readonly ITlsRptStore _store;
    private readonly IQueueStore _queue;
    private readonly IDnsResolver _dns;
    private readonly MailEventStream _events;
    private readonly Action _wake;
    private readonly Func<X509Certificate2Collection> _trustedRoots;
    private readonly VerificationOptions _options;
    private readonly Func<DateTimeOffset> _now;
    private readonly string _member;
    private readonly Dictionary<string, (TlsRptRecord Record, DateTimeOffset Until)> _records = new(StringComparer.OrdinalIgnoreCase);
    private readonly SemaphoreSlim _running = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private DateOnly _pruned;

    public ITlsRptStore Store => _store;

    public TlsRptReporter(Func<PosternConfig> config, ITlsRptStore store, IQueueStore queue, IDnsResolver dns, MailEventStream events, Action wake,
        Func<X509Certificate2Collection> trustedRoots, VerificationOptions options, Func<DateTimeOffset> now, string member, bool background = true)
    {
        (_config, _store, _queue, _dns, _events, _wake, _trustedRoots, _options, _now, _member) = (config, store, queue, dns, events, wake, trustedRoots, options, now, member);
        _loop = background ? Task.Run(LoopAsync) : Task.CompletedTask;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try { await RunAsync(_now(), _stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested) { break; }
            catch (Exception e) { _events.Publish(new SystemWarning($"TLS reporting run failed: {e.GetType().Name}: {e.Message}")); }
            try { await Task.Delay(CheckInterval, _stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>
    /// One run as at <paramref name="at"/>: the days before it that are due (from the send hour
    /// on), then the retries that are due. Returns the reports it moved on.
    /// </summary>
    public async Task<IReadOnlyList<TlsRptOutgoing>> RunAsync(DateTimeOffset at, CancellationToken ct)
    {
        var settings = _config().TlsReporting;
        if (!settings.Enabled) return [];
        await _running.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var done = new List<TlsRptOutgoing>();
            var today = DateOnly.FromDateTime(at.UtcDateTime);
            if (at.UtcDateTime.Hour >= settings.SendHourUtc)
                foreach (var (day, domain) in await _store.UnreportedAsync(today.AddDays(-CatchUpDays), today).ConfigureAwait(false))
                {
                    ct.ThrowIfCancellationRequested();
                    var claimed = new TlsRptOutgoing(day, domain, ReportId(day, domain), _member, TlsRptReportState.Sending, "", 1, at, null, [], Moment(at));
                    if (!await _store.ClaimAsync(claimed).ConfigureAwait(false)) continue;   // another member has it
                    done.Add(await SendAsync(claimed, at, ct).ConfigureAwait(false));
                }
            foreach (var due in await _store.ReportsAsync(today.AddDays(-KeepDays)).ConfigureAwait(false))
            {
                ct.ThrowIfCancellationRequested();
                if (due.State is TlsRptReportState.Retry or TlsRptReportState.Sending && due.Day < today.AddDays(-CatchUpDays - 1))
                {
                    // Left unfinished while Postern was down longer than the catch-up window: given up, and said so.
                    var old = due with { State = TlsRptReportState.Failed, Payload = null, Detail = $"{due.Detail} (given up: more than {CatchUpDays} days old)".TrimStart(), Updated = Moment(at) };
                    if (await _store.UpdateAsync(old, due.Attempts).ConfigureAwait(false)) _events.Publish(new TlsReportNotSent(old.Day, old.Domain, old.State, old.Detail));
                    continue;
                }
                // Due retries, and reports whose sender stopped mid-way (a crash, a kill): the mail may then go twice, never not at all.
                var isDue = due.State == TlsRptReportState.Retry && due.NextAttempt <= at
                    || due.State == TlsRptReportState.Sending && due.Updated < Moment(at) - StalledAfter;
                if (!isDue) continue;
                // Taken by counting the attempt; a member that saw the same count loses the race.
                var taken = due with { Member = _member, State = TlsRptReportState.Sending, Attempts = due.Attempts + 1, Updated = Moment(at) };
                if (!await _store.UpdateAsync(taken, due.Attempts).ConfigureAwait(false)) continue;
                done.Add(await SendAsync(taken, at, ct).ConfigureAwait(false));
            }
            if (_pruned != today)
            {
                await _store.PruneAsync(today.AddDays(-KeepDays)).ConfigureAwait(false);
                _pruned = today;
            }
            return done;
        }
        finally { _running.Release(); }
    }

    private string ReportId(DateOnly day, string domain) =>
        $"{day:yyyyMMdd}.{domain}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}@{_config().Hostname}";

    /// <summary>Sends (or re-sends) one report and records where it stands.</summary>
    private async Task<TlsRptOutgoing> SendAsync(TlsRptOutgoing report, DateTimeOffset at, CancellationToken ct)
    {
        var attempts = report.Attempts;
        TlsRptOutgoing next;
        try { next = await AttemptAsync(report, at, ct).ConfigureAwait(false); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            next = Retry(report, at, $"{e.GetType().Name}: {e.Message}");
        }
        await _store.UpdateAsync(next, attempts).ConfigureAwait(false);
        if (next.State == TlsRptReportState.Sent)
        {
            var counts = await _store.CountsAsync(next.Day, next.Domain).ConfigureAwait(false);
            _events.Publish(new TlsReportSent(next.Day, next.Domain, next.ReportId, counts.Where(c => c.Failure is null).Sum(c => c.Sessions),
                counts.Where(c => c.Failure is not null).Sum(c => c.Sessions), next.Detail));
        }
        else _events.Publish(new TlsReportNotSent(next.Day, next.Domain, next.State, next.Detail));
        return next;
    }

    /// <summary>
    /// The time a report's state is stamped with: the clock, or the run's time when a run is
    /// made for a later moment (tests). Not the run's start: a long run must not make what it
    /// claimed late look abandoned to another member.
    /// </summary>
    private DateTimeOffset Moment(DateTimeOffset at) => _now() is var clock && clock > at ? clock : at;

    /// <summary>After a failed attempt (the report's Attempts counts it): the next one after a backoff, or given up.</summary>
    private TlsRptOutgoing Retry(TlsRptOutgoing report, DateTimeOffset at, string reason) =>
        report.Attempts >= MaxAttempts
            ? report with { State = TlsRptReportState.Failed, Detail = $"{reason} (after {report.Attempts} attempts)", Updated = Moment(at) }
            : report with { State = TlsRptReportState.Retry, NextAttempt = Moment(at) + Backoff[Math.Clamp(report.Attempts - 1, 0, Backoff.Length - 1)], Detail = reason, Updated = Moment(at) };

    private async Task<TlsRptOutgoing> AttemptAsync(TlsRptOutgoing report, DateTimeOffset at, CancellationToken ct)
    {
        var config = _config();
        var payload = report.Payload;
        var postTo = report.PostTo;
        var how = new List<string>();
        if (payload is null)
        {
            // First attempt (or a lookup that failed before): where does the domain want reports?
            var record = await RecordAsync(report.Domain, at, ct).ConfigureAwait(false);
            if (record.Kind == TlsRptRecordKind.LookupFailed) return Retry(report, at, record.Reason);
            if (record.Kind != TlsRptRecordKind.Found)
                return report with { State = TlsRptReportState.NotRequested, Detail = record.Reason, Updated = Moment(at) };
            var counts = await _store.CountsAsync(report.Day, report.Domain).ConfigureAwait(false);
            var built = Build(config, report, counts);
            payload = Gzip(built.ToJson());
            if (payload.Length > config.TlsReporting.MaxReportBytes)
                return report with { State = TlsRptReportState.TooLarge, Detail = $"{payload.Length} bytes gzipped, over tlsReporting.maxReportBytes ({config.TlsReporting.MaxReportBytes})", Updated = Moment(at) };
            // The receiving domain chooses the addresses: a few of each kind, so a record listing hundreds cannot turn us into an amplifier.
            var mailtoAll = record.ReportTo.Where(u => u.Scheme == Uri.UriSchemeMailto).Select(u => $"{Uri.UnescapeDataString(u.UserInfo)}@{u.Host}")
                .Where(SmtpSyntax.IsValidMailbox).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            var httpsAll = record.ReportTo.Where(u => u.Scheme == Uri.UriSchemeHttps).Select(u => u.AbsoluteUri).Distinct().ToList();
            if (mailtoAll.Count > MaxAddressesPerScheme || httpsAll.Count > MaxAddressesPerScheme)
                how.Add($"only the first {MaxAddressesPerScheme} mailto: and https: addresses used ({mailtoAll.Count} and {httpsAll.Count} listed)");
            // One message per address: no recipient sees the others.
            foreach (var address in mailtoAll.Take(MaxAddressesPerScheme))
            {
                // Queued as of the clock, not of the run's day: the mail is due now.
                var mid = await EnqueueMailAsync(config, report, built, payload, [address], _now()).ConfigureAwait(false);
                how.Add($"mail MID {mid} to {address}");
            }
            postTo = httpsAll.Take(MaxAddressesPerScheme).ToList();
        }
        var failed = new List<string>();
        var reasons = new List<string>();
        foreach (var url in postTo)
        {
            var outcome = await PostAsync(new Uri(url), payload, ct).ConfigureAwait(false);
            if (outcome is null) how.Add($"POST {url} accepted");
            else { failed.Add(url); reasons.Add($"POST {url}: {outcome}"); }
        }
        if (failed.Count == 0) return report with { State = TlsRptReportState.Sent, Detail = string.Join("; ", how), Payload = null, PostTo = [], Updated = Moment(at) };
        // The mail (if any) is queued and the queue retries it; only the POSTs that failed are tried again, with the same report.
        var retry = Retry(report with { Payload = payload, PostTo = failed }, at, string.Join("; ", [.. how, .. reasons]));
        return retry.State == TlsRptReportState.Failed ? retry with { Payload = null } : retry;
    }

    /// <summary>The domain's TLSRPT record, cached for its DNS TTL (at least a minute, at most a day); failed lookups are not cached.</summary>
    private async Task<TlsRptRecord> RecordAsync(string domain, DateTimeOffset at, CancellationToken ct)
    {
        lock (_records)
            if (_records.TryGetValue(domain, out var cached) && cached.Until > at) return cached.Record;
        var (record, answerTtl) = await TlsRptDiscovery.LookupWithTtlAsync(_dns, domain, ct).ConfigureAwait(false);
        if (record.Kind != TlsRptRecordKind.LookupFailed)
        {
            var ttl = answerTtl ?? TimeSpan.FromHours(1);
            ttl = ttl < TimeSpan.FromMinutes(1) ? TimeSpan.FromMinutes(1) : ttl > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : ttl;
            lock (_records)
            {
                if (_records.Count >= MaxCachedRecords) _records.Clear();
                _records[domain] = (record, at + ttl);
            }
        }
        return record;
    }

    /// <summary>The report of one domain and day from its counts: one entry per policy, failures per result type and hosts.</summary>
    public static TlsRptReport Build(PosternConfig config, TlsRptOutgoing report, IReadOnlyList<TlsRptCount> counts)
    {
        var start = new DateTimeOffset(report.Day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var policies = counts.GroupBy(c => c.Policy.Key).Select(g =>
        {
            var policy = g.First().Policy;
            var failures = g.Where(c => c.Failure is not null)
                .Select(c => new TlsRptFailure(c.Failure!.Value, NullIfEmpty(c.SendingIp), NullIfEmpty(c.MxHost), NullIfEmpty(c.ReceivingIp), c.Sessions, NullIfEmpty(c.Detail)))
                .ToList();
            return new TlsRptPolicyResult(policy.Type, policy.Strings, policy.PolicyDomain, policy.MxHosts,
                g.Where(c => c.Failure is null).Sum(c => c.Sessions), failures.Sum(f => f.FailedSessionCount), failures);
        }).ToList();
        var settings = config.TlsReporting;
        return new TlsRptReport(settings.Organization(config.Hostname), start, start.AddDays(1).AddSeconds(-1), settings.ContactFor(config.Hostname), report.ReportId, policies);
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    public static byte[] Gzip(string json)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal, leaveOpen: true))
            gzip.Write(System.Text.Encoding.UTF8.GetBytes(json));
        return buffer.ToArray();
    }

    /// <summary>
    /// The report mail (RFC 8460 §5.3): multipart/report of type tlsrpt, a short text, the
    /// gzipped JSON as application/tlsrpt+gzip named sender!domain!start!end!id.json.gz, the
    /// TLS-Report-Domain and TLS-Report-Submitter headers and the subject the RFC gives. Queued
    /// with a null reverse-path, like alerts: a report that cannot be delivered must not bounce.
    /// </summary>
    private async Task<long> EnqueueMailAsync(PosternConfig config, TlsRptOutgoing report, TlsRptReport built, byte[] payload, IReadOnlyList<string> to, DateTimeOffset at)
    {
        var settings = config.TlsReporting;
        var from = settings.FromFor(config.Hostname);
        var submitter = SmtpSyntax.DomainOf(from);
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(settings.Organization(config.Hostname), from));
        foreach (var address in to) message.To.Add(MailboxAddress.Parse(address));
        message.Subject = $"Report Domain: {report.Domain} Submitter: {submitter} Report-ID: <{report.ReportId}>";
        message.Date = at;
        message.MessageId = MimeUtils.GenerateMessageId(config.Hostname);
        message.Headers.Add("TLS-Report-Domain", report.Domain);
        message.Headers.Add("TLS-Report-Submitter", submitter);
        message.Headers.Add("Auto-Submitted", "auto-generated");
        var start = built.Start.ToUnixTimeSeconds();
        var end = built.End.ToUnixTimeSeconds();
        var text = new TextPart("plain")
        {
            Text = $"This is an aggregate TLS report (RFC 8460) from {settings.Organization(config.Hostname)} for {report.Domain}, " +
                   $"covering {report.Day:yyyy-MM-dd} (UTC): {built.Policies.Sum(p => p.SuccessfulSessions)} successful and " +
                   $"{built.Policies.Sum(p => p.FailedSessions)} failed session(s).\n",
        };
        var attachment = new MimePart("application", "tlsrpt+gzip")
        {
            Content = new MimeContent(new MemoryStream(payload)),
            ContentDisposition = new ContentDisposition(ContentDisposition.Attachment),
            ContentTransferEncoding = ContentEncoding.Base64,
            // RFC 8460 §5.3: unique-id is letters and digits only: the report-id's random part.
            FileName = $"{submitter}!{report.Domain}!{start}!{end}!{report.ReportId.Split('@')[0].Split('.')[^1]}.json.gz",
        };
        var multipart = new Multipart("report") { text, attachment };
        multipart.ContentType.Parameters.Add("report-type", "tlsrpt");
        message.Body = multipart;
        using var body = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, body);
        var mid = await _queue.NextIdAsync(IdKind.Message).ConfigureAwait(false);
        await _queue.EnqueueAsync(new QueuedMessage
        {
            Mid = mid, Sender = "", ReceivedAt = at, Size = body.Length, BodyType = "7BIT", Listener = QueueListener,
            Recipients = to.Select((address, i) => new QueuedRecipient
            {
                Rid = i, Address = address, Domain = DomainNames.Normalize(SmtpSyntax.DomainOf(address)) ?? "",
                Notify = DsnNotify.Never, NextAttempt = at,
            }).ToList(),
        }, body.ToArray()).ConfigureAwait(false);
        _events.Publish(new MessageQueued(mid));
        _wake();
        return mid;
    }

    /// <summary>POSTs the gzipped report (RFC 8460 §5.2); null when the endpoint took it (2xx), else why not.</summary>
    private async Task<string?> PostAsync(Uri url, byte[] payload, CancellationToken ct)
    {
        CertificateCheck? check = null;
        using var handler = VerifiedHttps.Handler(_dns, url.IdnHost, _trustedRoots, _options, _config().MtaSts.Proxy, (c, _) => check = c);
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        deadline.CancelAfter(PostTimeout);
        try
        {
            using var content = new ByteArrayContent(payload);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/tlsrpt+gzip");
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
            request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Postern", "1"));
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
            return (int)response.StatusCode is >= 200 and < 300 ? null : $"HTTP status {(int)response.StatusCode}";
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return $"no answer within {PostTimeout.TotalSeconds} s";
        }
        catch (HttpRequestException e)
        {
            return check is { Verified: false } ? $"certificate of {url.Host}: {check.Reason}" : VerifiedHttps.Describe(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
    }
}
