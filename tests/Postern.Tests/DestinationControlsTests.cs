using System.Text.RegularExpressions;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>Limits, IP preference, SMTP routes, bounce profiles and TLS alerts against the real peers.</summary>
public sealed class DestinationControlsTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static Task SubmitAsync(System.Net.IPEndPoint listener, string sender, string recipient, string subject = "dc") =>
        RawSmtp.SubmitAsync(listener, sender, recipient, subject);

    [Fact]
    public async Task Receiver_sees_at_most_the_connection_limit_and_messages_per_connection_under_200_messages()
    {
        // A source address of its own lets this test pick its connections out of Postfix's log.
        const string source = "127.0.5.7";
        var config = _world.NewConfig("limits", c =>
        {
            c.Delivery.SourceAddress = source;
            c.LogLevel = LogLevel.Info;
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "good.test", ConcurrentConnections = 3, MaxMessagesPerConnection = 10 });
        });
        await using var gw = RunningGateway.Start(config);
        var maillog = Path.Combine(_world.WorldDirectory, "postfix-good", "maillog");
        var logStart = new FileInfo(maillog).Length;
        var prefix = TestWorld.Unique("load");

        // 200 messages over 10 parallel sessions of 20 each.
        await Task.WhenAll(Enumerable.Range(0, 10).Select(async s =>
        {
            await using var c = await RawSmtp.ConnectAsync(gw.Private);
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            for (var i = 0; i < 20; i++)
            {
                await c.CommandAsync("MAIL FROM:<load@sender.test>");
                await c.CommandAsync($"RCPT TO:<{prefix}-{s}-{i}@good.test>");
                await c.CommandAsync("DATA");
                Assert.StartsWith("250", await c.CommandAsync("Subject: load\r\n\r\nx\r\n."));
            }
        }));
        TestWorld.WaitUntil(() => Regex.Matches(gw.MailLogText(), "Message finished MID \\d+ done").Count >= 200, TimeSpan.FromSeconds(120), "200 deliveries");

        // Count at the receiver: connects and disconnects from our address, in log order.
        string[] lines = [];
        TestWorld.WaitUntil(() =>
        {
            using var f = new FileStream(maillog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            f.Seek(logStart, SeekOrigin.Begin);
            lines = new StreamReader(f).ReadToEnd().Split('\n').Where(l => l.Contains($"[{source}]")).ToArray();
            return lines.Count(l => l.Contains(" disconnect from ")) == lines.Count(l => l.Contains(" connect from "));
        }, TimeSpan.FromSeconds(30), "the receiver to log every disconnect");
        int open = 0, peak = 0, messages = 0, connections = 0;
        foreach (var line in lines)
        {
            if (line.Contains(" connect from ")) { open++; connections++; peak = Math.Max(peak, open); }
            else if (line.Contains(" disconnect from "))
            {
                open--;
                var m = Regex.Match(line, @" (?:bdat|data)=(\d+)");
                var n = m.Success ? int.Parse(m.Groups[1].Value) : 0;
                Assert.InRange(n, 0, 10);
                messages += n;
            }
        }
        Assert.Equal(200, messages);
        Assert.InRange(connections, 20, 200);
        // Concurrency is counted where it is decided: Postfix's log comes through postlogd from
        // one process per session, so its connect/disconnect order is not causal (a session
        // Postern has already closed can be logged as disconnected after the next one's
        // connect). The receiver's view is a sanity bound; Postern's own peak is the assertion.
        Assert.InRange(gw.Gateway.Delivery.PeakConnections("good.test"), 1, 3);
        Assert.InRange(peak, 1, 4);
    }

    [Fact]
    public async Task Recipient_rate_limit_holds_back_the_excess_without_counting_attempts()
    {
        var config = _world.NewConfig("ratelimit", c =>
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "good.test", RecipientLimit = new RecipientLimit { Recipients = 3, Minutes = 1 } }));
        await using var gw = RunningGateway.Start(config);
        var recipients = Enumerable.Range(0, 5).Select(i => TestWorld.Unique($"rate{i}") + "@good.test").ToList();
        foreach (var r in recipients) await SubmitAsync(gw.Private, "s@sender.test", r);
        TestWorld.WaitUntil(() => recipients.Count(r => _world.TryWaitForMail(r, TimeSpan.Zero) is not null) == 3
            && gw.MailLogText().Split('\n').Count(l => l.Contains("recipient limit for good.test reached (3 per 1 min)")) >= 2,
            TimeSpan.FromSeconds(30), "three delivered and two held back");
        // The log line is published before the store commits the new state: poll the store.
        List<Queue.QueuedRecipient> held = [];
        TestWorld.WaitUntil(() =>
        {
            held = gw.Gateway.Store.ListAsync().GetAwaiter().GetResult().SelectMany(m => m.Recipients).ToList();
            return held.Count == 2 && held.All(r => r.LastResponse is not null);
        }, TimeSpan.FromSeconds(10), "both held recipients stored");
        Assert.All(held, r => Assert.Equal(0, r.Attempts));
        Assert.All(held, r => Assert.InRange(r.NextAttempt, DateTimeOffset.UtcNow.AddSeconds(20), DateTimeOffset.UtcNow.AddSeconds(61)));
    }

    [Fact]
    public async Task IP_preference_required_IPv6_defers_a_domain_with_only_IPv4()
    {
        var config = _world.NewConfig("ipv6", c =>
        {
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "good.test", IpPreference = IpPreference.IPv6Required });
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "implicit.test", IpPreference = IpPreference.IPv4Required });
        });
        await using var gw = RunningGateway.Start(config);
        var v6 = TestWorld.Unique("v6") + "@good.test";
        var v4 = TestWorld.Unique("v4") + "@implicit.test";
        await SubmitAsync(gw.Private, "s@sender.test", v6);
        await SubmitAsync(gw.Private, "s@sender.test", v4);
        _world.WaitForMail(v4);
        gw.WaitForLogLine("Delayed:", $"To:<{v6}>", "4.4.4", "no IPv6 address records");
        Assert.DoesNotContain("Q(mx1.good.test, 'A')", gw.MailLogText().Split('\n').Where(l => l.Contains("good.test")).LastOrDefault() ?? "");
    }

    [Fact]
    public async Task IPv6_is_used_by_preference_and_when_it_is_the_only_address()
    {
        var config = _world.NewConfig("ipv6pref", c =>
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "dual.test", IpPreference = IpPreference.IPv6Preferred }));
        await using var gw = RunningGateway.Start(config);
        var dual = TestWorld.Unique("dual") + "@dual.test";
        var v6only = TestWorld.Unique("v6") + "@v6only.test";
        await SubmitAsync(gw.Private, "s@sender.test", dual);
        await SubmitAsync(gw.Private, "s@sender.test", v6only);
        Assert.Contains("by mx1.good.test (Postfix) with ESMTPS", _world.WaitForMail(dual));
        _world.WaitForMail(v6only);
        gw.WaitForLogLine("address ::1 port 25 (MX mx.dual.test for dual.test)");
        // IPv4 preferred (the Default entry) still reaches a host that has only IPv6.
        gw.WaitForLogLine("address ::1 port 25 (MX mx.v6only.test for v6only.test)");
    }

    [Fact]
    public async Task SMTP_routes_replace_MX_lookup()
    {
        var config = _world.NewConfig("routes", c =>
        {
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "routed.test", Hosts = { new SmtpRouteHost { Host = "dead.fallback.test", Priority = 0 }, new SmtpRouteHost { Host = "mx.mxname.test", Priority = 10 } } });
            c.SmtpRoutes.Add(new SmtpRoute { Domain = ".routed.test", Hosts = { new SmtpRouteHost { Host = "127.0.4.2", Port = 25 } } });
            c.DestinationControls.Default.Tls = TlsLevel.RequiredVerify;
            c.CertificateAuthorities.CustomListEnabled = true;
            c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        });
        await using var gw = RunningGateway.Start(config);
        var rcpt = TestWorld.Unique("route") + "@routed.test";
        await SubmitAsync(gw.Private, "s@sender.test", rcpt);
        var mail = _world.WaitForMail(rcpt);
        Assert.Contains("by mx.tls.test (Postfix) with ESMTPS", mail);
        // The route's first host is dead; the second one (by priority) is used, verified by its name.
        gw.WaitForLogLine("Connection Error", "domain: routed.test", "IP: 127.0.1.99");
        gw.WaitForLogLine("address 127.0.4.1 port 25 (MX mx.mxname.test for routed.test)");
        Assert.DoesNotContain("Q(routed.test, 'MX')", gw.MailLogText());

        // An IP-literal route: no host name, so the certificate must name the domain (it names domainonly.test: deferred).
        var sub = TestWorld.Unique("ip") + "@sub.routed.test";
        await SubmitAsync(gw.Private, "s@sender.test", sub);
        gw.WaitForLogLine("address 127.0.4.2 port 25 (MX 127.0.4.2 for sub.routed.test)");
        gw.WaitForLogLine("Delayed:", $"To:<{sub}>", "peer cert does not match domain sub.routed.test");
    }

    [Fact]
    public async Task The_global_outbound_client_certificate_is_presented_to_receivers_that_ask()
    {
        var certs = Path.Combine(_world.WorldDirectory, "certs");
        var withCert = _world.NewConfig("clientcert", c =>
        {
            c.DestinationControls.ClientCertificateFile = Path.Combine(certs, "postern-client.crt");
            c.DestinationControls.ClientPrivateKeyFile = Path.Combine(certs, "postern-client.key");
        });
        await using (var gw = RunningGateway.Start(withCert))
        {
            var rcpt = TestWorld.Unique("cc") + "@clientcert.test";
            await SubmitAsync(gw.Private, "s@sender.test", rcpt);
            var mail = _world.WaitForMail(rcpt).Replace("\n\t", " ").Replace("\n ", " ");
            Assert.Contains("Client CN \"postern.test\", Issuer \"Postern Test Root CA\" (verified OK)", mail);
        }
        await using (var gw = RunningGateway.Start(_world.NewConfig("noclientcert")))
        {
            var rcpt = TestWorld.Unique("nocc") + "@clientcert.test";
            await SubmitAsync(gw.Private, "s@sender.test", rcpt);
            gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>", "No client certificate presented");
        }
    }

    [Fact]
    public async Task Bounce_profiles_apply_per_destination()
    {
        var config = _world.NewConfig("profiles", c =>
        {
            c.BounceProfiles["quick"] = new BounceProfile { InitialRetrySeconds = 1, MaxRetrySeconds = 1, MaxTimeInQueueSeconds = 2 };
            c.BounceProfiles["silent"] = new BounceProfile { InitialRetrySeconds = 1, MaxRetrySeconds = 1, MaxTimeInQueueSeconds = 2, SendBounces = false };
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "down.test", BounceProfile = "quick" });
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "good.test", BounceProfile = "silent" });
        });
        await using var gw = RunningGateway.Start(config);
        var quickSender = TestWorld.Unique("quick") + "@sender.test";
        var silentSender = TestWorld.Unique("silent") + "@sender.test";
        await SubmitAsync(gw.Private, quickSender, "x@down.test");
        await SubmitAsync(gw.Private, silentSender, TestWorld.Unique("tempfail") + "@good.test");
        var dsn = _world.WaitForMail(quickSender, TimeSpan.FromSeconds(40));
        Assert.Contains("delivery time expired", dsn);
        var bounced = gw.WaitForLogLine(TimeSpan.FromSeconds(40), "Bounced:", $"From:<{silentSender}>", "delivery time expired");
        var mid = bounced.Split("MID ")[1].Split(' ')[0];
        // The DSN decision is published with the outcome: once the message is finished, a DSN
        // would already have been logged as generated. None was, so none can arrive.
        gw.WaitForLogLine($"Message finished MID {mid} bounced");
        Assert.DoesNotContain($"generated for bounce of MID {mid}", gw.MailLogText());
        gw.WaitForLogLine($"MID {mid} no bounce sent", "bounce profile");
    }

    [Fact]
    public async Task A_required_TLS_failure_sends_one_alert_per_throttle_window()
    {
        var admin = TestWorld.Unique("admin") + "@sender.test";
        var config = _world.NewConfig("alerts", c =>
        {
            c.DestinationControls.AlertOnRequiredTlsFailure = true;
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "notls.test", Tls = TlsLevel.Required });
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "selfsigned.test", Tls = TlsLevel.RequiredVerify });
            c.Alerts.Recipients.Add(new AlertRecipient { Address = admin, Severities = { AlertSeverity.Warning }, Types = { AlertType.System } });
            c.Alerts.Recipients.Add(new AlertRecipient { Address = "nobody@sender.test", Severities = { AlertSeverity.Critical } });
            c.Alerts.ThrottleSeconds = 3600;
        });
        await using var gw = RunningGateway.Start(config);
        for (var i = 0; i < 3; i++) await SubmitAsync(gw.Private, "s@sender.test", TestWorld.Unique($"a{i}") + "@notls.test");
        await SubmitAsync(gw.Private, "s@sender.test", TestWorld.Unique("b") + "@selfsigned.test");

        var first = _world.WaitForMail(admin, TimeSpan.FromSeconds(30), m => m.Contains("notls.test")).Replace("\n ", " ");   // unfold headers
        Assert.Contains("Subject: Warning <System> postern.test: TLS required for domain notls.test failed", first);
        Assert.Contains("STARTTLS not advertised", first);
        var second = _world.WaitForMail(admin, TimeSpan.FromSeconds(30), m => m.Contains("selfsigned.test"));
        Assert.Contains("self signed certificate", second);
        // Retries (every 2 s here) fail again and again; the throttle keeps it to one alert per domain.
        TestWorld.WaitUntil(() => gw.MailLogText().Split('\n').Count(l => l.Contains("Delayed:") && l.Contains("notls.test")) >= 6,
            TimeSpan.FromSeconds(30), "repeated failures");
        gw.WaitForLogLine("alert not sent (throttled until", "notls.test");
        var alertsForNotls = Directory.GetFiles(Path.Combine(_world.MailDirectory, "sender.test", "new"))
            .Select(f => File.ReadAllText(f).Replace("\n ", " ")).Count(t => t.Contains($"Delivered-To: {admin}") && t.Contains("domain notls.test failed"));
        Assert.Equal(1, alertsForNotls);
        // The critical-only recipient was never an addressee: every alert went to one recipient.
        var sent = gw.MailLogText().Split('\n').Where(l => l.Contains(" alert (Warning/System) to ")).ToList();
        Assert.NotEmpty(sent);
        Assert.All(sent, l => Assert.Contains("to 1 recipient(s)", l));
    }
}
