namespace Postern.Observability;

/// <summary>
/// A TLS report (RFC 8460) from another organisation was stored, or was a copy of one stored
/// before: who sent it, by which way, for which of our domains, and how its sessions went.
/// Its text is the sender's, escaped here like all peer text.
/// </summary>
public sealed record TlsReportReceived(long Id, string Via, string Organization, string ReportId, IReadOnlyList<string> PolicyDomains,
    long SuccessfulSessions, long FailedSessions, bool Duplicate) : MailEvent
{
    public override string LogText => Duplicate
        ? $"TLS report {Id} received again via {Clean(Via)} (report-id {Clean(ReportId)} from {Clean(Organization)}): stored once, this copy discarded"
        : $"TLS report {Id} received via {Clean(Via)}: {Clean(Organization)} report-id {Clean(ReportId)} for {string.Join(", ", PolicyDomains.Select(Clean))}: " +
          $"{SuccessfulSessions} successful, {FailedSessions} failed sessions";

    private static string Clean(string text) => TrackingText.Clean(text, 120);
}
