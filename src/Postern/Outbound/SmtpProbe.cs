using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Observability;
using Postern.Policy;

namespace Postern.Outbound;

/// <summary>
/// One connection made exactly as delivery makes it (greeting, EHLO, STARTTLS under the given
/// DANE and MTA-STS requirements), closed with QUIT, and the typed events it produced: what
/// `dane check` and `check` report.
/// </summary>
public static class SmtpProbe
{
    public static async Task<(ConnectFailure? Failure, IReadOnlyList<MailEvent> Events)> RunAsync(PosternConfig config, NextHop hop, EffectiveDestination destination,
        Func<X509Certificate2Collection> trustedRoots, VerificationOptions options, CancellationToken ct, DaneHostPolicy? dane = null, StsHostKind sts = StsHostKind.NotApplicable)
    {
        var events = new MailEventStream();
        var seen = new List<MailEvent>();
        events.Subscribe(e => { lock (seen) seen.Add(e); });
        var context = new OutboundContext(config, events, trustedRoots, () => null, options, () => DateTimeOffset.UtcNow);
        var (connection, failure) = await SmtpClientConnection.OpenAsync(hop, destination, 0, context, ct, dane, sts).ConfigureAwait(false);
        if (connection is not null) await connection.CloseAsync("probe").ConfigureAwait(false);
        lock (seen) return (failure, seen.ToList());
    }
}
