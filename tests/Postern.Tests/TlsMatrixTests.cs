using Postern.Admin;
using Postern.Policy;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// Every TLS level against real Postfix receivers presenting good and broken certificates
/// (testworld: 127.0.4.1-9). Each cell: delivered encrypted, delivered in clear, or deferred,
/// and the mail log line that explains it.
/// </summary>
public sealed class TlsMatrixTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    public enum Outcome { Encrypted, Clear, Deferred }

    private static readonly string[] Receivers = ["mxname", "domainonly", "wild", "cnonly", "expired", "selfsigned", "untrusted", "intermediate", "notls"];

    private static readonly Dictionary<string, string> Broken = new()
    {
        ["expired"] = "certificate has expired",
        ["selfsigned"] = "self signed certificate",
        ["untrusted"] = "unable to get local issuer certificate",
        ["cnonly"] = "peer cert does not match domain cnonly.test",
    };

    private static Outcome Expected(TlsLevel level, string receiver)
    {
        var noTls = receiver == "notls";
        return level switch
        {
            TlsLevel.No => Outcome.Clear,
            TlsLevel.Preferred or TlsLevel.PreferredVerify => noTls ? Outcome.Clear : Outcome.Encrypted,
            TlsLevel.Required => noTls ? Outcome.Deferred : Outcome.Encrypted,
            TlsLevel.RequiredVerify => noTls || receiver is "expired" or "selfsigned" or "untrusted" ? Outcome.Deferred : Outcome.Encrypted,
            TlsLevel.RequiredVerifyHostedDomains => noTls || receiver is "expired" or "selfsigned" or "untrusted" or "cnonly" ? Outcome.Deferred : Outcome.Encrypted,
            _ => throw new ArgumentOutOfRangeException(nameof(level)),
        };
    }

    private PosternConfig MatrixConfig(string name, TlsLevel level) => _world.NewConfig(name, c =>
    {
        c.DestinationControls.Default.Tls = level;
        c.CertificateAuthorities.CustomListEnabled = true;
        c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        c.DefaultBounceProfile.InitialRetrySeconds = 60;
        c.DefaultBounceProfile.MaxRetrySeconds = 60;
    });

    [Theory]
    [InlineData(TlsLevel.No)]
    [InlineData(TlsLevel.Preferred)]
    [InlineData(TlsLevel.Required)]
    [InlineData(TlsLevel.PreferredVerify)]
    [InlineData(TlsLevel.RequiredVerify)]
    [InlineData(TlsLevel.RequiredVerifyHostedDomains)]
    public async Task Every_receiver_at_this_level(TlsLevel level)
    {
        await using var gw = RunningGateway.Start(MatrixConfig("matrix-" + level, level));
        var recipients = Receivers.ToDictionary(r => r, r => TestWorld.Unique(r) + $"@{r}.test");
        foreach (var (_, rcpt) in recipients) await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, $"matrix {level}");

        var levelName = EffectiveDestination.LevelName(level);
        var failures = new List<string>();
        foreach (var receiver in Receivers)
        {
            var rcpt = recipients[receiver];
            var expected = Expected(level, receiver);
            try
            {
                var dcidLine = gw.WaitForLogLine("New SMTP DCID", $"for {receiver}.test)");
                var dcid = "DCID " + dcidLine.Split("DCID ")[1].Split(' ')[0] + " ";
                gw.WaitForLogLine(dcid, $"Destination Controls for domain ({receiver}.test): TLS {levelName} (Default entry)");
                switch (expected)
                {
                    case Outcome.Encrypted:
                        var mail = _world.WaitForMail(rcpt, TimeSpan.FromSeconds(20));
                        Assert.Contains("by mx.tls.test (Postfix) with ESMTPS", mail);
                        gw.WaitForLogLine(dcid, "TLS success protocol TLSv1.");
                        if (level is TlsLevel.RequiredVerify or TlsLevel.RequiredVerifyHostedDomains)
                            gw.WaitForLogLine(dcid, "TLS certificate verified");
                        // Level 4 accepts a matching CN, as level 5 does; only level 6 takes SAN names first.
                        if (level == TlsLevel.PreferredVerify && receiver != "cnonly" && Broken.TryGetValue(receiver, out var why))
                            gw.WaitForLogLine(dcid, $"verify error: {why}", "delivering encrypted");
                        else if (level == TlsLevel.PreferredVerify)
                            gw.WaitForLogLine(dcid, "TLS certificate verified");
                        break;
                    case Outcome.Clear:
                        var clear = _world.WaitForMail(rcpt, TimeSpan.FromSeconds(20));
                        Assert.Contains("by mx.tls.test (Postfix) with ESMTP id", clear);
                        if (level != TlsLevel.No) gw.WaitForLogLine(dcid, "TLS not possible: STARTTLS not advertised; continuing in clear");
                        Assert.DoesNotContain(gw.MailLogText().Split('\n'), l => l.Contains(dcid) && l.Contains("TLS success"));
                        break;
                    case Outcome.Deferred:
                        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>");
                        gw.WaitForLogLine(dcid, "TLS was required but could not be successfully negotiated");
                        if (receiver == "notls") gw.WaitForLogLine(dcid, "TLS not possible: STARTTLS not advertised");
                        else gw.WaitForLogLine(dcid, $"TLS deferring: verify error: {Broken[receiver]}");
                        Assert.Null(_world.TryWaitForMail(rcpt, TimeSpan.Zero));
                        break;
                }
            }
            catch (Exception e) when (e is TimeoutException or Xunit.Sdk.XunitException)
            {
                failures.Add($"{level} x {receiver}: expected {expected}: {e.Message.Split('\n')[0]}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- mail log ---\n" + gw.MailLogText());
    }

    [Fact]
    public async Task A_required_level_failure_bounces_after_the_time_in_queue_with_the_reason()
    {
        var config = MatrixConfig("tls-bounce", TlsLevel.RequiredVerify);
        config.DefaultBounceProfile.InitialRetrySeconds = 1;
        config.DefaultBounceProfile.MaxRetrySeconds = 1;
        config.DefaultBounceProfile.MaxTimeInQueueSeconds = 3;
        await using var gw = RunningGateway.Start(config);
        var sender = TestWorld.Unique("tlsb") + "@sender.test";
        await RawSmtp.SubmitAsync(gw.Private, sender, "someone@untrusted.test", "will bounce");
        var dsn = _world.WaitForMail(sender, TimeSpan.FromSeconds(40));
        Assert.Contains("Action: failed", dsn);
        Assert.Contains("Status: 4.7.5", dsn);
        Assert.Contains("unable to get local issuer certificate", dsn);
    }

    [Fact]
    public async Task Per_domain_entries_override_the_Default_entry()
    {
        var config = MatrixConfig("tls-entries", TlsLevel.Preferred);
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = "selfsigned.test", Tls = TlsLevel.RequiredVerify });
        config.DestinationControls.Entries.Add(new DestinationEntry { Domain = ".test", Tls = TlsLevel.No });
        await using var gw = RunningGateway.Start(config);
        var deferred = TestWorld.Unique("ss") + "@selfsigned.test";
        var clear = TestWorld.Unique("mx") + "@mxname.test";
        foreach (var rcpt in new[] { deferred, clear }) await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "entries");
        Assert.Contains("with ESMTP id", _world.WaitForMail(clear));
        gw.WaitForLogLine("Destination Controls for domain (mxname.test): TLS No (.test entry)");
        gw.WaitForLogLine("Destination Controls for domain (selfsigned.test): TLS Required (Verify) (selfsigned.test entry)");
        gw.WaitForLogLine("Delayed:", $"To:<{deferred}>", "self signed certificate");
    }

    [Theory]
    [InlineData(ScriptedPeer.Behaviour.NoEsmtp, TlsLevel.Preferred, true, "TLS not possible: peer without ESMTP (EHLO not understood); continuing in clear")]
    [InlineData(ScriptedPeer.Behaviour.NoEsmtp, TlsLevel.Required, false, "TLS not possible: peer without ESMTP (EHLO not understood)")]
    [InlineData(ScriptedPeer.Behaviour.StartTlsRefused, TlsLevel.Preferred, true, "TLS not possible: STARTTLS answered with an error: 454 4.7.0 TLS not available due to local problem; continuing in clear")]
    [InlineData(ScriptedPeer.Behaviour.StartTlsRefused, TlsLevel.PreferredVerify, true, "STARTTLS answered with an error")]
    [InlineData(ScriptedPeer.Behaviour.StartTlsRefused, TlsLevel.Required, false, "TLS not possible: STARTTLS answered with an error")]
    [InlineData(ScriptedPeer.Behaviour.HandshakeFails, TlsLevel.Preferred, false, "TLS failed: handshake with 127.0.6.1 failed: Cannot determine the frame size or a corrupted frame was received")]
    // The peer's alert is in the log, not ".NET Authentication failed, see inner exception".
    [InlineData(ScriptedPeer.Behaviour.SendsTlsAlert, TlsLevel.Required, false, "alert handshake failure")]
    public async Task Misbehaving_peers(ScriptedPeer.Behaviour behaviour, TlsLevel level, bool delivered, string logText)
    {
        await using var peer = new ScriptedPeer(behaviour);
        var config = _world.NewConfig("scripted-" + behaviour + level, c =>
        {
            c.DestinationControls.Default.Tls = level;
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.1", Port = peer.EndPoint.Port } } });
        });
        await using var gw = RunningGateway.Start(config);
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "u@scripted.test", "scripted");
        gw.WaitForLogLine(logText);
        if (delivered)
        {
            gw.WaitForLogLine("Message finished MID");
            Assert.Single(peer.Messages);
        }
        else
        {
            gw.WaitForLogLine("Delayed:", "To:<u@scripted.test>");
            if (OutboundTlsPolicy.RequiresTls(level)) gw.WaitForLogLine("TLS was required but could not be successfully negotiated");
            // Never a fall-back to clear text after a failed handshake or a required level.
            Assert.Empty(peer.Messages);
        }
    }
}
