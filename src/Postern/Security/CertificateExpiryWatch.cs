using Postern.Admin;
using Postern.Observability;

namespace Postern.Security;

public sealed record CertificateExpiring(string Service, string Source, string Subject, DateTimeOffset NotAfter, int DaysLeft) : MailEvent
{
    public override string Level => "Warning";
    public override string LogText => DaysLeft < 0
        ? $"certificate {Source} ({Subject}) used by {Service} EXPIRED on {NotAfter:yyyy-MM-dd}"
        : $"certificate {Source} ({Subject}) used by {Service} expires on {NotAfter:yyyy-MM-dd} (in {DaysLeft} days)";
}

/// <summary>
/// Beyond the appliance: warns (mail log and a throttled alert) before a certificate in
/// service expires, at start-up and then every check interval.
/// </summary>
public sealed class CertificateExpiryWatch : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public CertificateExpiryWatch(PosternConfig config, CertificateProvider certificates, MailEventStream events, AlertService alerts)
    {
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var now = DateTimeOffset.UtcNow;
                foreach (var (service, source, cert) in certificates.InService())
                {
                    var left = cert.NotAfter.ToUniversalTime() - now.UtcDateTime;
                    if (left.TotalDays > config.Certificates.ExpiryWarningDays) continue;
                    var e = new CertificateExpiring(service, source, cert.Subject, cert.NotAfter, (int)Math.Floor(left.TotalDays));
                    events.Publish(e);
                    alerts.Raise(new Alert(AlertSeverity.Warning, AlertType.System, $"cert-expiry:{source}:{service}",
                        left < TimeSpan.Zero ? $"certificate {source} used by {service} has expired" : $"certificate {source} used by {service} expires in {e.DaysLeft} days",
                        e.LogText + ". Replace it with certconfig (create/upload/import, then assign)."));
                }
                try { await Task.Delay(TimeSpan.FromMinutes(config.Certificates.CheckIntervalMinutes), _stop.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
    }
}
