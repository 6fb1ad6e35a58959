using System.Text;
using System.Threading.Channels;
using MimeKit;
using MimeKit.Utils;
using Postern.Admin;
using Postern.Dns;
using Postern.Inbound;
using Postern.Queue;

namespace Postern.Observability;

/// <summary>An alert to mail to the recipients who want its severity and type.</summary>
public sealed record Alert(AlertSeverity Severity, AlertType Type, string ThrottleKey, string Summary, string Detail);

public sealed record AlertSent(long Mid, AlertSeverity Severity, AlertType Type, string Summary, int Recipients) : MailEvent
{
    public override string LogText => $"MID {Mid} alert ({Severity}/{Type}) to {Recipients} recipient(s): {Summary}";
}

public sealed record AlertThrottled(string Summary, DateTimeOffset Until) : MailEvent
{
    public override string LogText => $"alert not sent (throttled until {Until.ToLocalTime():HH:mm:ss}): {Summary}";
}

/// <summary>
/// Turns events into alert mail, sent through Postern's own queue. The same kind of alert
/// for the same subject (a destination domain) is sent at most once per throttle window,
/// so a failing domain cannot flood the recipients.
/// </summary>
/// <summary>Decides whether an alert of a kind may go now: null = yes (and the send is recorded), else when the last one went.</summary>
public interface IAlertThrottle
{
    Task<DateTimeOffset?> TryPassAsync(string key, DateTimeOffset now, TimeSpan window);
}

/// <summary>One machine's throttle: in memory (a restart may send a kind again).</summary>
public sealed class MemoryAlertThrottle : IAlertThrottle
{
    private readonly Dictionary<string, DateTimeOffset> _lastSent = new();

    public Task<DateTimeOffset?> TryPassAsync(string key, DateTimeOffset now, TimeSpan window)
    {
        lock (_lastSent)
        {
            if (_lastSent.TryGetValue(key, out var last) && now - last < window) return Task.FromResult<DateTimeOffset?>(last);
            _lastSent[key] = now;
            return Task.FromResult<DateTimeOffset?>(null);
        }
    }
}

public sealed class AlertService : IAsyncDisposable
{
    /// <summary>The throttle: in memory on one machine, shared by the members of a cluster.</summary>
    public IAlertThrottle Throttle { get; init; } = new MemoryAlertThrottle();
    private readonly PosternConfig _initial;
    /// <summary>The configuration in force (alert recipients and the throttle follow committed versions).</summary>
    public Func<PosternConfig>? Live { get; init; }
    private PosternConfig _config => Live?.Invoke() ?? _initial;
    private readonly IQueueStore _store;
    private readonly MailEventStream _events;
    private readonly Action _wake;
    /// <summary>Bounded: past this many alerts waiting, new ones are dropped (they are throttled per kind anyway).</summary>
    private readonly Channel<Alert> _alerts = Channel.CreateBounded<Alert>(new BoundedChannelOptions(1000) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Dictionary<string, DateTimeOffset> _lastSent = new();
    private readonly Task _loop;

    public AlertService(PosternConfig config, IQueueStore store, MailEventStream events, Action wake)
    {
        _initial = config;
        _store = store;
        _events = events;
        _wake = wake;
        events.Subscribe(OnEvent);
        _loop = Task.Run(LoopAsync);
    }

    private void OnEvent(MailEvent e)
    {
        if (e is DaneFailedForDomain d)
            Raise(new Alert(AlertSeverity.Warning, AlertType.MessageDelivery, "dane:" + d.Domain,
                $"DANE failed for every MX host of {d.Domain}",
                $"No MX host of {d.Domain} passed DANE (RFC 7672) verification: {d.Reason}. " +
                "Messages for this domain stay queued and are retried; they bounce when their time in queue runs out."));
        if (e is TlsRequiredFailed t && _config.DestinationControls.AlertOnRequiredTlsFailure)
            Raise(new Alert(AlertSeverity.Warning, AlertType.System, "tls-required:" + t.Domain,
                $"TLS required for domain {t.Domain} failed",
                $"Delivery to {t.Domain} requires TLS, but it could not be negotiated with {t.MxHost} (DCID {t.Dcid}): {t.Reason}. " +
                "Messages for this domain stay queued and are retried; they bounce when their time in queue runs out."));
    }

    public void Raise(Alert alert) => _alerts.Writer.TryWrite(alert);

    private async Task LoopAsync()
    {
        await foreach (var alert in _alerts.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try { await SendAsync(alert).ConfigureAwait(false); }
            catch (Exception e) { _events.Publish(new SystemWarning($"alert could not be queued: {e.Message}")); }
        }
    }

    private async Task SendAsync(Alert alert)
    {
        var now = DateTimeOffset.UtcNow;
        var window = TimeSpan.FromSeconds(_config.Alerts.ThrottleSeconds);
        var recipients = _config.Alerts.Recipients.Where(r => r.Wants(alert.Severity, alert.Type)).Select(r => r.Address).ToList();
        if (recipients.Count == 0) return;
        if (await Throttle.TryPassAsync(alert.ThrottleKey, now, window).ConfigureAwait(false) is { } last)
        {
            _events.Publish(new AlertThrottled(alert.Summary, last + window));
            return;
        }

        var hostname = _config.Hostname;
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(_config.Alerts.From ?? $"alert@{hostname}"));
        foreach (var r in recipients) message.To.Add(MailboxAddress.Parse(r));
        message.Subject = $"{alert.Severity} <{alert.Type}> {hostname}: {alert.Summary}";
        message.Date = now;
        message.MessageId = MimeUtils.GenerateMessageId(hostname);
        message.Headers.Add("Auto-Submitted", "auto-generated");
        message.Body = new TextPart("plain")
        {
            Text = new StringBuilder()
                .Append($"The {alert.Severity} message is:\n\n{alert.Detail}\n\n")
                .Append($"Hostname: {hostname}\nTimestamp: {MailLog.Timestamp(now)}\nSeverity: {alert.Severity}\nType: {alert.Type}\n")
                .ToString(),
        };
        using var body = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, body);
        var mid = await _store.NextIdAsync(IdKind.Message).ConfigureAwait(false);
        var queued = new QueuedMessage
        {
            // Null reverse-path: an undeliverable alert must not bounce back into the gateway.
            Mid = mid, Sender = "", ReceivedAt = now, Size = body.Length, BodyType = "7BIT", Listener = "alerts",
            Recipients = recipients.Select((address, i) => new QueuedRecipient
            {
                Rid = i, Address = address, Domain = DomainNames.Normalize(SmtpSyntax.DomainOf(address)) ?? "",
                Notify = DsnNotify.Never, NextAttempt = now,
            }).ToList(),
        };
        await _store.EnqueueAsync(queued, body.ToArray()).ConfigureAwait(false);
        _events.Publish(new AlertSent(mid, alert.Severity, alert.Type, alert.Summary, recipients.Count));
        _events.Publish(new MessageQueued(mid));
        _wake();
    }

    public async ValueTask DisposeAsync()
    {
        _alerts.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }
}
