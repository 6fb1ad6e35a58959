using Postern.Admin;
using Postern.Observability;

namespace Postern.Dns;

/// <summary>
/// Looks up a signed name (dns.dnssecProbe, Postfix's dnssec_probe) at start and every hour
/// while some destination uses DANE, and says in the log whether the resolver validates:
/// without the AD bit from a trusted resolver DANE can never apply, which must not pass
/// unnoticed.
/// </summary>
public sealed class DnssecProbe : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public DnssecProbe(PosternConfig config, DnsResolver dns, MailEventStream events)
    {
        _loop = Task.Run(async () =>
        {
            var probe = config.Dns.DnssecProbe;
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    var answer = await dns.ProbeAsync(probe, _stop.Token).ConfigureAwait(false);
                    if (answer.Security == DnsSecurity.Secure)
                        events.Publish(new SystemNotice($"DNSSEC probe {probe}: validated (AD from trusted resolver {answer.Records.FirstOrDefault()})"));
                    else
                        events.Publish(new SystemWarning($"DNSSEC probe {probe}: not validated ({(answer.IsTemporaryFailure ? answer.Error : "no AD bit from a trusted resolver")}); " +
                            "DANE cannot apply until the resolver validates DNSSEC"));
                    await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) { break; }
            }
        });
    }

    public static bool Wanted(PosternConfig config) =>
        config.Dns.DnssecProbe.Length > 0 && config.DestinationControls.Entries.Prepend(config.DestinationControls.Default)
            .Any(e => e.Dane is DaneSupport.Opportunistic or DaneSupport.Mandatory);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
