using System.Text;
using MimeKit;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>End to end: swaks submits to Postern, Postern resolves MX through unbound and delivers to Postfix.</summary>
public sealed class DeliveryTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static (int ExitCode, string Output) Swaks(System.Net.IPEndPoint server, string from, string to, params string[] extra)
    {
        var args = new List<string> { "--server", server.Address.ToString(), "--port", server.Port.ToString(), "--from", from, "--to", to, "--helo", "client.test" };
        args.AddRange(extra);
        return TestWorld.Run("swaks", args, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Message_submitted_with_STARTTLS_arrives_at_Postfix_over_TLS_with_identical_body()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("e2e"));
        var rcpt = TestWorld.Unique("e2e") + "@good.test";
        var body = new StringBuilder();
        body.Append("Line one\r\n.leading dot survives\r\n\r\nTrailing spaces   \r\n");
        for (var i = 0; i < 2000; i++) body.Append("0123456789 abcdefghijklmnopqrstuvwxyz ").Append(i).Append("\r\n");
        var messageId = $"<{Guid.NewGuid():N}@client.test>";
        var original = $"From: s@sender.test\r\nTo: {rcpt}\r\nSubject: end to end\r\nDate: Thu, 26 Sep 2024 15:23:39 +0000\r\nMessage-ID: {messageId}\r\n\r\n{body}";
        // A raw client, so the bytes submitted are exactly known (swaks adds a line ending).
        await using (var c = await RawSmtp.ConnectAsync(gw.Private))
        {
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            Assert.StartsWith("220", await c.CommandAsync("STARTTLS"));
            await c.StartTlsAsync();
            await c.CommandAsync("EHLO client.test");
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<s@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{rcpt}>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            var stuffed = original.Replace("\r\n.", "\r\n..");
            Assert.StartsWith("250 2.0.0 Ok: Message", await c.CommandAsync(stuffed + "."));
        }

        var delivered = _world.WaitForMail(rcpt);
        // Postfix prepends its own trace headers; everything Postern received follows unchanged.
        Assert.EndsWith(original.Replace("\r\n", "\n"), delivered);
        Assert.Contains("by postern.test (Postern) with ESMTPS", delivered);
        Assert.Contains("by mx1.good.test (Postfix) with ESMTPS", delivered);   // Postern -> Postfix leg was TLS

        var mid = gw.WaitForLogLine("Message-ID '" + messageId + "'").Split("MID ")[1].Split(' ')[0];
        gw.WaitForLogLine($"MID {mid} queued for delivery");
        gw.WaitForLogLine("TLS success protocol TLSv1.3", "subjectAltName:dNSName=mx1.good.test");
        gw.WaitForLogLine($"Delivery start DCID", $"MID {mid} to RID [0]");
        gw.WaitForLogLine($"Message finished MID {mid} done");
    }

    [Fact]
    public async Task Rejected_recipient_gets_a_DSN_in_the_senders_mailbox_and_others_are_delivered()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("dsn"));
        var sender = TestWorld.Unique("sender") + "@sender.test";
        var good = TestWorld.Unique("ok") + "@good.test";
        var bad = TestWorld.Unique("reject") + "@good.test";
        var (code, output) = Swaks(gw.Private, sender, $"{good},{bad}", "--header", "Subject: partly bounced");
        Assert.True(code == 0, output);
        _world.WaitForMail(good);
        var dsnText = _world.WaitForMail(sender);
        Assert.Contains("Return-Path: <>", dsnText);
        var dsn = MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(dsnText)));
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        var status = Assert.Single(report.OfType<MessageDeliveryStatus>());
        var recipientGroup = status.StatusGroups[1];
        Assert.Equal($"rfc822; {bad}", recipientGroup["Final-Recipient"]);
        Assert.Equal("failed", recipientGroup["Action"]);
        Assert.Equal("5.1.1", recipientGroup["Status"]);
        Assert.StartsWith("smtp; 550 5.1.1", recipientGroup["Diagnostic-Code"]);
        Assert.Equal(2, status.StatusGroups.Count(g => g.Count > 0));   // the delivered recipient is not reported
        Assert.Single(report.OfType<MessagePart>(), p => p.Message?.Subject == "partly bounced");
        gw.WaitForLogLine("Bounced: DCID", $"To:<{bad}>", "5.1.1");
        gw.WaitForLogLine("was generated for bounce of MID");
    }

    [Fact]
    public async Task Null_MX_and_nonexistent_domains_bounce_without_delivery_attempts()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("nullmx"));
        var sender = TestWorld.Unique("nmx") + "@sender.test";
        var (code, output) = Swaks(gw.Private, sender, "x@nullmx.test,y@nonexistent.test");
        Assert.True(code == 0, output);
        var dsn = _world.WaitForMail(sender);
        Assert.Contains("Status: 5.1.10", dsn);
        Assert.Contains("null MX", dsn);
        Assert.Contains("Status: 5.1.2", dsn);
        Assert.Contains("NXDOMAIN", dsn);
        gw.WaitForLogLine("Bounced:", "To:<x@nullmx.test>", "5.1.10");
    }

    [Fact]
    public async Task Implicit_MX_and_MX_fallback_deliver()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("mxrules"));
        var implicitRcpt = TestWorld.Unique("impl") + "@implicit.test";
        var fallbackRcpt = TestWorld.Unique("fb") + "@fallback.test";
        Assert.Equal(0, Swaks(gw.Private, "s@sender.test", implicitRcpt).ExitCode);
        Assert.Equal(0, Swaks(gw.Private, "s@sender.test", fallbackRcpt).ExitCode);
        _world.WaitForMail(implicitRcpt);
        _world.WaitForMail(fallbackRcpt);
        // The preference-10 MX is dead; Postern logged the failure and moved to preference 20.
        gw.WaitForLogLine("Connection Error", "domain: fallback.test", "IP: 127.0.1.99");
    }

    [Fact]
    public async Task Temporary_failures_are_retried_then_bounced_when_the_queue_time_runs_out()
    {
        var config = _world.NewConfig("retry", c =>
        {
            c.DefaultBounceProfile.InitialRetrySeconds = 1;
            c.DefaultBounceProfile.MaxRetrySeconds = 1;
            c.DefaultBounceProfile.MaxTimeInQueueSeconds = 4;
        });
        await using var gw = RunningGateway.Start(config);
        var sender = TestWorld.Unique("tf") + "@sender.test";
        var rcpt = TestWorld.Unique("tempfail") + "@good.test";
        Assert.Equal(0, Swaks(gw.Private, sender, rcpt).ExitCode);
        gw.WaitForLogLine("Delayed: DCID", $"To:<{rcpt}>", "4.2.0");
        var dsn = _world.WaitForMail(sender, TimeSpan.FromSeconds(40));
        Assert.Contains("delivery time expired", dsn);
        Assert.Contains("Action: failed", dsn);
        Assert.True(gw.MailLogText().Split('\n').Count(l => l.Contains("Delayed:") && l.Contains(rcpt)) >= 2, "retried at least twice");
    }

    [Fact]
    public async Task Connections_are_reused_up_to_the_limit_and_capped_per_destination()
    {
        var config = _world.NewConfig("reuse", c =>
        {
            c.DestinationControls.Default.MaxMessagesPerConnection = 3;
            c.DestinationControls.Default.ConcurrentConnections = 2;
        });
        await using var gw = RunningGateway.Start(config);
        var recipients = Enumerable.Range(0, 12).Select(i => TestWorld.Unique($"reuse{i}") + "@good.test").ToList();
        await Task.WhenAll(recipients.Select(rcpt => RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "reuse")));
        foreach (var rcpt in recipients) _world.WaitForMail(rcpt);
        TestWorld.WaitUntil(() => gw.MailLogText().Split('\n').Count(l => l.Contains("Message finished MID")) == 12, TimeSpan.FromSeconds(30), "12 finished messages");

        // From the mail log: deliveries per DCID and the most DCIDs open at once for good.test.
        var open = new HashSet<string>();
        var peak = 0;
        var perConnection = new Dictionary<string, int>();
        foreach (var line in gw.MailLogText().Split('\n'))
        {
            if (line.Contains("New SMTP DCID") && line.Contains("for good.test")) { open.Add(Word(line, "DCID")); peak = Math.Max(peak, open.Count); }
            else if (line.Contains("Delivery start DCID")) { var d = Word(line, "DCID"); perConnection[d] = perConnection.GetValueOrDefault(d) + 1; }
            else if (line.Contains(" close") && line.Contains("Info: DCID")) open.Remove(Word(line, "DCID"));
        }
        Assert.InRange(peak, 1, 2);
        Assert.All(perConnection.Values, n => Assert.InRange(n, 1, 3));
        Assert.Equal(12, perConnection.Values.Sum());
        Assert.True(perConnection.Values.Any(n => n > 1), "at least one connection carried several messages");
        Assert.True(gw.Gateway.Delivery.PeakConnections("good.test") <= 2);
    }

    [Fact]
    public async Task An_idle_connection_carries_the_next_message_without_a_new_session()
    {
        var config = _world.NewConfig("idlecache", c => c.Delivery.ConnectionCacheSeconds = 120);
        await using var gw = RunningGateway.Start(config);
        var first = TestWorld.Unique("cache1") + "@good.test";
        var second = TestWorld.Unique("cache2") + "@good.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", first, "cache");
        gw.WaitForLogLine("Message finished MID", " done");   // the connection is idle now
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", second, "cache");
        _world.WaitForMail(first);
        _world.WaitForMail(second);
        TestWorld.WaitUntil(() => gw.MailLogText().Split('\n').Count(l => l.Contains("Message finished MID")) == 2, TimeSpan.FromSeconds(30), "2 finished messages");
        var log = gw.MailLogText().Split('\n');
        var starts = log.Where(l => l.Contains("Delivery start DCID")).Select(l => Word(l, "DCID")).ToList();
        Assert.Equal(2, starts.Count);
        Assert.Equal(starts[0], starts[1]);
        Assert.Single(log, l => l.Contains("New SMTP DCID") && l.Contains("for good.test"));
        Assert.DoesNotContain(log, l => l.Contains($"DCID {starts[0]} close"));   // still cached
    }

    [Fact]
    public async Task An_idle_connection_the_peer_closed_is_not_used_and_the_message_loses_no_attempt()
    {
        await using var peer = new ScriptedPeer(ScriptedPeer.Behaviour.HangsUpAfterEachMessage);
        await using var gw = RunningGateway.Start(_world.NewConfig("idlehangup", c =>
        {
            c.Delivery.ConnectionCacheSeconds = 120;
            c.DestinationControls.Default.Tls = TlsLevel.No;
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.1", Port = peer.EndPoint.Port } } });
        }));
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "one@scripted.test", "hangup");
        // The definite answer first: the peer took the message and hung up on the idle session.
        TestWorld.WaitUntil(() => Volatile.Read(ref peer.HangUps) == 1, TimeSpan.FromSeconds(30), "the peer's hang-up");
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "two@scripted.test", "hangup");
        TestWorld.WaitUntil(() => peer.Messages.Count == 2, TimeSpan.FromSeconds(30), "the second message at the peer");
        TestWorld.WaitUntil(() => gw.MailLogText().Split('\n').Count(l => l.Contains("Message finished MID") && l.Contains(" done")) == 2, TimeSpan.FromSeconds(30), "2 finished messages");
        var log = gw.MailLogText();
        Assert.Contains("close (idle connection not reused: closed by the peer)", log);
        Assert.Equal(2, peer.Connections);
        Assert.DoesNotContain("Delayed:", log);
    }

    private static string Word(string line, string after)
    {
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words[Array.IndexOf(words, after) + 1];
    }

    [Fact]
    public async Task A_bounce_that_cannot_be_delivered_is_never_bounced()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("noloop"));
        // Null reverse-path message to a recipient that rejects: dropped, no DSN, no loop.
        var rcpt = TestWorld.Unique("reject") + "@good.test";
        var (code, output) = Swaks(gw.Private, "<>", rcpt);
        Assert.True(code == 0, output);
        gw.WaitForLogLine("no bounce sent: null reverse-path");
        Assert.DoesNotContain("generated for bounce", gw.MailLogText());
    }

    [Fact]
    public async Task Unreachable_destination_is_deferred_and_kept_in_the_queue()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("down"));
        Assert.Equal(0, Swaks(gw.Private, "s@sender.test", "x@down.test").ExitCode);
        gw.WaitForLogLine("Delayed: DCID", "To:<x@down.test>", "all mail hosts of down.test failed");
        // The log line is published before the store commits the new state: poll the store.
        Queue.QueuedMessage? queued = null;
        TestWorld.WaitUntil(() =>
        {
            queued = gw.Gateway.Store.ListAsync().GetAwaiter().GetResult().SingleOrDefault();
            return queued?.Recipients[0].LastResponse is not null;
        }, TimeSpan.FromSeconds(10), "the deferral to be stored");
        Assert.Equal(Queue.RecipientState.Pending, queued!.Recipients[0].State);
        Assert.Contains("connection refused", queued.Recipients[0].LastResponse);
    }

    [Fact]
    public async Task Broken_DNSSEC_defers_and_never_bounces_or_delivers()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("bogusdns"));
        var sender = TestWorld.Unique("bogus") + "@sender.test";
        var rcpt = TestWorld.Unique("x") + "@bogus.test";
        await RawSmtp.SubmitAsync(gw.Private, sender, rcpt);
        gw.WaitForLogLine("DNS query: Q(bogus.test, 'MX') ServerFailure");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>", "4.4.3", "DNS lookup of MX for bogus.test failed: ServerFailure");
        // The definite answer is the stored decision: still pending, with the DNS failure as
        // its reason. Nothing was delivered and no DSN was generated (that would be final).
        Queue.QueuedMessage? queued = null;
        TestWorld.WaitUntil(() => (queued = gw.Gateway.Store.ListAsync().GetAwaiter().GetResult().SingleOrDefault())?.Recipients[0].LastResponse is not null,
            TimeSpan.FromSeconds(10), "the deferral to be stored");
        Assert.Equal(Queue.RecipientState.Pending, queued!.Recipients[0].State);
        Assert.Contains("4.4.3", queued.Recipients[0].LastResponse);
        Assert.DoesNotContain("Bounced:", gw.MailLogText());
        Assert.DoesNotContain("generated for bounce", gw.MailLogText());
    }

    [Fact]
    public void Serve_refuses_a_bad_configuration_with_a_clear_error()
    {
        var dir = Directory.CreateTempSubdirectory("postern-badconfig").FullName;
        var file = Path.Combine(dir, "bad.json");
        File.WriteAllText(file, """
            { "hostname": "not a hostname", "listeners": [ { "name": "In", "port": 99999 } ],
              "destinationControls": { "entries": [ { "domain": "x.example", "concurrentConnections": 5000 } ] } }
            """);
        var (code, output) = PosternProcess.Cli("serve", "--config", file);
        Assert.Equal(2, code);
        Assert.Contains("invalid configuration", output);
        Assert.Contains("hostname 'not a hostname'", output);
        Assert.Contains("port 99999 is out of range", output);
        Assert.Contains("'x.example': concurrentConnections must be 1-1000", output);
        File.WriteAllText(file, "{ not json");
        var (code2, output2) = PosternProcess.Cli("config", "check", "--config", file);
        Assert.Equal(2, code2);
        Assert.Contains("is not valid", output2);
    }

    [Fact]
    public async Task A_real_Postfix_relays_through_Postern_to_a_real_Postfix()
    {
        var config = _world.NewConfig("postfix-sender", c =>
        {
            c.Listeners[1].Address = "127.0.2.9";
            c.Listeners[1].Port = 2525;
            c.MailFlowPolicies["RELAYED"].Tls = InboundTls.Required;
        });
        await using var gw = RunningGateway.Start(config);
        var rcpt = TestWorld.Unique("viapf") + "@good.test";
        var (code, output) = TestWorld.Run("swaks", ["--server", "127.0.7.1", "--from", "origin@sender.test", "--to", rcpt,
            "--header", "Subject: postfix to postern to postfix", "--helo", "client.test"], TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        var mail = _world.WaitForMail(rcpt, TimeSpan.FromSeconds(60));
        // Postfix → Postern over STARTTLS (the listener requires it), Postern → Postfix over STARTTLS.
        Assert.Contains("by postern.test (Postern) with ESMTPS", mail);
        Assert.Contains("by postfix-sender.test (Postfix) with ESMTP", mail);
        Assert.Contains("by mx1.good.test (Postfix) with ESMTPS", mail);
        gw.WaitForLogLine("interface OutgoingMail (127.0.2.9)");
        gw.WaitForLogLine("TLS success protocol TLSv1.3");
    }
}
