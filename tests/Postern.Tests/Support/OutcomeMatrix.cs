using Xunit;

namespace Postern.Tests.Support;

/// <summary>
/// One message per domain through one gateway, then for each: the log line that explains
/// the decision, and delivered (the mail arrived) or deferred (Postern recorded the deferral
/// before any message data was sent, and nothing arrived). All failures are reported together.
/// </summary>
public static class OutcomeMatrix
{
    public static async Task VerifyAsync(TestWorld world, RunningGateway gw, string tag, IReadOnlyList<(string Domain, bool Delivered, string LogText)> cases,
        Action<string, string>? onDelivered = null, Action<string>? onDeferred = null)
    {
        var recipients = cases.ToDictionary(c => c.Domain, c => TestWorld.Unique(tag) + "@" + c.Domain);
        foreach (var (_, rcpt) in recipients) await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, tag);
        var failures = new List<string>();
        foreach (var (domain, delivered, logText) in cases)
        {
            var rcpt = recipients[domain];
            try
            {
                gw.WaitForLogLine(logText);
                if (delivered) onDelivered?.Invoke(domain, world.WaitForMail(rcpt, TimeSpan.FromSeconds(20)));
                else
                {
                    onDeferred?.Invoke(gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>"));
                    Assert.Null(world.TryWaitForMail(rcpt, TimeSpan.Zero));
                }
            }
            catch (Exception e) when (e is TimeoutException or Xunit.Sdk.XunitException)
            {
                failures.Add($"{domain}: expected {(delivered ? "delivered" : "deferred")} with '{logText}': {e.Message.Split('\n')[0]}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- mail log ---\n" + gw.MailLogText());
    }

    public static IReadOnlyList<(string, bool, string)> Rows(TheoryData<string, bool, string> data) =>
        data.Select(row => ((string)row[0], (bool)row[1], (string)row[2])).ToList();
}
