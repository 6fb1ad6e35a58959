using System.Text;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The SMTP server's protocol behaviour, driven over raw sockets. Delivery is held back
/// (HoldingConfig), so "nothing was queued" and "one message was queued" can be asserted.
/// </summary>
public sealed class InboundProtocolTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static async Task<RawSmtp> GreetedAsync(System.Net.IPEndPoint endpoint, string ehlo = "client.test")
    {
        var c = await RawSmtp.ConnectAsync(endpoint);
        Assert.StartsWith("220 ", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.CommandAsync($"EHLO {ehlo}"));
        return c;
    }

    [Fact]
    public async Task Ehlo_advertises_the_extensions()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("ehlo"));
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        Assert.Equal("220 postern.test ESMTP Postern", await c.ReadReplyAsync());
        var ehlo = await c.CommandAsync("EHLO client.test");
        foreach (var ext in new[] { "PIPELINING", "SIZE 20971520", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "DSN", "SMTPUTF8", "CHUNKING" })
            Assert.Contains(ext, ehlo);
        Assert.StartsWith("252", await c.CommandAsync("VRFY someone"));
        Assert.StartsWith("214", await c.CommandAsync("HELP"));
        Assert.StartsWith("250", await c.CommandAsync("NOOP"));
        Assert.StartsWith("502", await c.CommandAsync("FROB"));
        Assert.StartsWith("503", await c.CommandAsync("RCPT TO:<a@good.test>"));
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:a@b.test"));
        Assert.StartsWith("555", await c.CommandAsync("MAIL FROM:<a@b.test> FOO=BAR"));
        Assert.StartsWith("221", await c.CommandAsync("QUIT"));
    }

    [Fact]
    public async Task Tls_required_answers_530_to_everything_but_NOOP_EHLO_QUIT_until_STARTTLS()
    {
        var config = _world.HoldingConfig("tlsreq", c => c.MailFlowPolicies["ACCEPTED"].Tls = InboundTls.Required);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        const string mustTls = "530 5.7.0 Must issue a STARTTLS command first";
        Assert.Equal(mustTls, await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.Equal(mustTls, await c.CommandAsync("RCPT TO:<u@good.test>"));
        Assert.Equal(mustTls, await c.CommandAsync("DATA"));
        Assert.Equal(mustTls, await c.CommandAsync("HELO client.test"));
        Assert.Equal(mustTls, await c.CommandAsync("RSET"));
        Assert.Equal(mustTls, await c.CommandAsync("VRFY u"));
        Assert.StartsWith("250", await c.CommandAsync("NOOP"));
        Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
        Assert.StartsWith("220", await c.CommandAsync("STARTTLS"));
        await c.StartTlsAsync();
        var ehlo = await c.CommandAsync("EHLO client.test");
        Assert.DoesNotContain("STARTTLS", ehlo);
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
        Assert.StartsWith("221", await c.CommandAsync("QUIT"));
        gw.WaitForLogLine("TLS was required but the client sent MAIL before STARTTLS");
        gw.WaitForLogLine("TLS success protocol TLSv1.");
    }

    [Fact]
    public async Task A_listener_presents_its_own_certificate_and_the_default_one_the_demo_certificate()
    {
        var certs = Path.Combine(_world.WorldDirectory, "certs");
        var config = _world.HoldingConfig("listenercert", c =>
        {
            c.Listeners[0].CertificateFile = Path.Combine(certs, "mx1.good.test.crt");
            c.Listeners[0].PrivateKeyFile = Path.Combine(certs, "mx1.good.test.key");
        });
        await using var gw = RunningGateway.Start(config);
        await using (var c = await GreetedAsync(gw.Public))
        {
            Assert.StartsWith("220", await c.CommandAsync("STARTTLS"));
            await c.StartTlsAsync();
            Assert.Equal("CN=mx1.good.test", c.RemoteCertificate!.Subject);
        }
        await using (var c = await GreetedAsync(gw.Private))
        {
            Assert.StartsWith("220", await c.CommandAsync("STARTTLS"));
            await c.StartTlsAsync();
            Assert.Contains("Postern demo certificate", c.RemoteCertificate!.Subject);
        }
        gw.WaitForLogLine("Warning: listener OutgoingMail uses the demo certificate");
        Assert.DoesNotContain("listener IncomingMail uses the demo certificate", gw.MailLogText());
        var key = Path.Combine(gw.Gateway.DataDirectory, "certs", "demo.key.pem");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
    }

    [Fact]
    public async Task Tls_no_does_not_offer_STARTTLS()
    {
        var config = _world.HoldingConfig("tlsno", c => c.MailFlowPolicies["ACCEPTED"].Tls = InboundTls.No);
        await using var gw = RunningGateway.Start(config);
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        await c.ReadReplyAsync();
        Assert.DoesNotContain("STARTTLS", await c.CommandAsync("EHLO client.test"));
        Assert.StartsWith("454", await c.CommandAsync("STARTTLS"));
    }

    [Fact]
    public async Task Plaintext_pipelined_after_STARTTLS_is_refused()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("pipetls"));
        await using var c = await GreetedAsync(gw.Public);
        await c.SendAsync("STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\n");
        Assert.StartsWith("220", await c.ReadReplyAsync());
        Assert.Null(await c.ReadReplyAsync());   // closed, no TLS offered to the injected bytes
        gw.WaitForLogLine("command pipelining after STARTTLS");
    }

    [Fact]
    public async Task Public_listener_refuses_relaying_to_foreign_domains()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("rat"));
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.Equal("550 5.7.1 <victim@elsewhere.test>: Relay access denied", await c.CommandAsync("RCPT TO:<victim@elsewhere.test>"));
        Assert.StartsWith("550 5.7.1", await c.CommandAsync("RCPT TO:<victim@sender.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<user@good.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<user@sub.good.test>"));
        Assert.StartsWith("550 5.7.1", await c.CommandAsync("RCPT TO:<user@evilgood.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<Postmaster>"));   // RFC 5321 §4.5.1
        gw.WaitForLogLine("To: <postmaster@good.test>");
        gw.WaitForLogLine("To: <victim@elsewhere.test> Rejected by RAT");
    }

    [Fact]
    public async Task Private_listener_refuses_hosts_outside_its_relay_groups()
    {
        var config = _world.HoldingConfig("norelay", c =>
            c.Listeners[1].SenderGroups[0].Senders = ["10.99.0.0/16"]);
        await using var gw = RunningGateway.Start(config);
        await using var c = await RawSmtp.ConnectAsync(gw.Private);
        Assert.StartsWith("554 5.7.1", await c.ReadReplyAsync());
        Assert.StartsWith("503", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("503", await c.CommandAsync("RCPT TO:<x@elsewhere.test>"));
        Assert.StartsWith("221", await c.CommandAsync("QUIT"));
        gw.WaitForLogLine("REJECT SG ALL match default policy BLOCKED");
    }

    [Fact]
    public async Task HAT_host_name_patterns_use_forward_confirmed_reverse_DNS()
    {
        var config = _world.HoldingConfig("fcrdns", c =>
            c.Listeners[1].SenderGroups[0].Senders = [".good.test"]);
        await using var gw = RunningGateway.Start(config);
        // 127.0.3.5 → relay-host.good.test → 127.0.3.5: verified, matches .good.test, may relay.
        await using (var c = await RawSmtp.ConnectAsync(gw.Private, System.Net.IPAddress.Parse("127.0.3.5")))
        {
            Assert.StartsWith("220", await c.ReadReplyAsync());
            await c.CommandAsync("EHLO relay-host.good.test");
            await c.CommandAsync("MAIL FROM:<a@good.test>");
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<x@elsewhere.test>"));
        }
        gw.WaitForLogLine("address 127.0.3.5 reverse dns host relay-host.good.test verified yes");
        gw.WaitForLogLine("RELAY SG RELAYLIST match .good.test policy RELAYED");
        // 127.0.3.6 → spoofed.good.test, whose A record is another address: not verified, no match.
        await using (var c = await RawSmtp.ConnectAsync(gw.Private, System.Net.IPAddress.Parse("127.0.3.6")))
            Assert.StartsWith("554", await c.ReadReplyAsync());
        gw.WaitForLogLine("address 127.0.3.6 reverse dns host spoofed.good.test verified no");
    }

    [Fact]
    public void Relay_policy_on_a_public_listener_is_a_configuration_error()
    {
        var e = Assert.Throws<ConfigException>(() => _world.HoldingConfig("openrelay", c => c.Listeners[0].DefaultPolicy = "RELAYED"));
        Assert.Contains("public listener cannot use relay policy", e.Message);
    }

    [Fact]
    public async Task Bare_LF_in_DATA_is_refused_and_nothing_is_queued()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("smuggle"));
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        // The classic smuggling payload: "\n.\r\n" would end data for a lenient server.
        await c.SendAsync("Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<spoof@good.test>\r\nRCPT TO:<u@good.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
        var reply = await c.ReadReplyAsync();
        Assert.StartsWith("521 5.5.2", reply);
        Assert.Null(await c.ReadReplyAsync());
        Assert.Empty(await gw.Gateway.Store.ListAsync());
        gw.WaitForLogLine("bare CR or LF in message data");
    }

    [Fact]
    public async Task Bare_CR_in_DATA_is_refused()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("smugglecr"));
        await using var c = await GreetedAsync(gw.Public);
        await c.CommandAsync("MAIL FROM:<a@sender.test>");
        await c.CommandAsync("RCPT TO:<u@good.test>");
        await c.CommandAsync("DATA");
        await c.SendAsync("Subject: x\r\n\r\nhello\r.\r\r\n.\r\n");
        Assert.StartsWith("521 5.5.2", await c.ReadReplyAsync());
        Assert.Empty(await gw.Gateway.Store.ListAsync());
    }

    [Fact]
    public async Task Oversize_messages_are_refused_by_SIZE_and_by_counting()
    {
        var config = _world.HoldingConfig("size", c => c.MailFlowPolicies["ACCEPTED"].MaxMessageSize = 10_000);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("552 5.3.4", await c.CommandAsync("MAIL FROM:<a@sender.test> SIZE=10001"));
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test> SIZE=500"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        var big = new StringBuilder("Subject: big\r\n\r\n");
        for (var i = 0; i < 300; i++) big.Append(new string('x', 70)).Append("\r\n");
        await c.SendAsync(big + ".\r\n");
        Assert.StartsWith("552 5.3.4", await c.ReadReplyAsync());
        // The session goes on and a message within the limit is accepted.
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        Assert.StartsWith("250", await c.CommandAsync("Subject: small\r\n\r\nok\r\n."));
        Assert.Single(await gw.Gateway.Store.ListAsync());
    }

    [Fact]
    public async Task Overlong_lines_are_refused()
    {
        var config = _world.HoldingConfig("longline", c => c.MailFlowPolicies["ACCEPTED"].MaxLineLength = 1000);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("500 5.5.2", await c.CommandAsync("NOOP " + new string('a', 5000)));
        Assert.StartsWith("250", await c.CommandAsync("NOOP"));
        await c.CommandAsync("MAIL FROM:<a@sender.test>");
        await c.CommandAsync("RCPT TO:<u@good.test>");
        await c.CommandAsync("DATA");
        Assert.StartsWith("552 5.5.2", await c.CommandAsync("Subject: x\r\n\r\n" + new string('y', 1200) + "\r\n."));
        Assert.Empty(await gw.Gateway.Store.ListAsync());
    }

    [Fact]
    public async Task Recipient_limit_answers_452()
    {
        var config = _world.HoldingConfig("rcptmax", c => c.MailFlowPolicies["ACCEPTED"].MaxRecipientsPerMessage = 3);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        await c.CommandAsync("MAIL FROM:<a@sender.test>");
        for (var i = 0; i < 3; i++) Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<u{i}@good.test>"));
        Assert.StartsWith("452 4.5.3", await c.CommandAsync("RCPT TO:<u9@good.test>"));
    }

    [Fact]
    public async Task Command_timeout_closes_with_421()
    {
        var config = _world.HoldingConfig("timeout", c => c.MailFlowPolicies["ACCEPTED"].CommandTimeoutSeconds = 1);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        var reply = await c.ReadReplyAsync(TimeSpan.FromSeconds(15));
        Assert.StartsWith("421 4.4.2", reply);
        Assert.Null(await c.ReadReplyAsync());
        gw.WaitForLogLine("close (timeout)");
    }

    [Fact]
    public async Task Listener_concurrency_limit_answers_421()
    {
        var config = _world.HoldingConfig("concurrency", c => c.Listeners[0].MaxConcurrency = 2);
        await using var gw = RunningGateway.Start(config);
        await using var a = await GreetedAsync(gw.Public);
        await using var b = await GreetedAsync(gw.Public);
        await using var third = await RawSmtp.ConnectAsync(gw.Public);
        Assert.StartsWith("421 4.3.2", await third.ReadReplyAsync());
        await a.CommandAsync("QUIT");
        gw.WaitForLogLine("close (quit)");
        // The slots given back: the logged close comes just before the session's slot (and the refused one's) is released.
        var listener = gw.Gateway.Listeners.First(l => l.Settings.Type == ListenerType.Public);
        TestWorld.WaitUntil(() => listener.ActiveSessions == 1, TimeSpan.FromSeconds(10), "one session left on the listener");
        await using var fourth = await RawSmtp.ConnectAsync(gw.Public);
        Assert.StartsWith("220", await fourth.ReadReplyAsync());
    }

    [Fact]
    public async Task Pipelined_transaction_and_BDAT_are_accepted_and_queued()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("pipeline"));
        await using var c = await GreetedAsync(gw.Public);
        await c.SendAsync("MAIL FROM:<a@sender.test> BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef\r\nRCPT TO:<u1@good.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;u1+40good.test\r\nRCPT TO:<u2@good.test> NOTIFY=NEVER\r\nDATA\r\n");
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("354", await c.ReadReplyAsync());
        Assert.StartsWith("250 2.0.0", await c.CommandAsync("Subject: pipelined\r\n\r\n..dot stuffed\r\n."));

        var chunk1 = "Subject: chunked\r\n\r\n";
        var chunk2 = "split across\r\nchunks\r\n";
        await c.CommandAsync("MAIL FROM:<b@sender.test>");
        await c.CommandAsync("RCPT TO:<u3@good.test>");
        await c.SendAsync($"BDAT {Encoding.UTF8.GetByteCount(chunk1)}\r\n{chunk1}");
        Assert.StartsWith("250 2.0.0", await c.ReadReplyAsync());
        await c.SendAsync($"BDAT {Encoding.UTF8.GetByteCount(chunk2)} LAST\r\n{chunk2}");
        Assert.StartsWith("250 2.0.0", await c.ReadReplyAsync());

        var queued = await gw.Gateway.Store.ListAsync();
        Assert.Equal(2, queued.Count);
        var first = queued[0];
        Assert.Equal("abc+def", first.EnvelopeId);
        Assert.Equal(Queue.DsnRet.Headers, first.Ret);
        Assert.Equal("8BITMIME", first.BodyType);
        Assert.Equal("rfc822;u1@good.test", first.Recipients[0].OriginalRecipient);
        Assert.Equal(Queue.DsnNotify.Failure | Queue.DsnNotify.Delay, first.Recipients[0].Notify);
        Assert.Equal(Queue.DsnNotify.Never, first.Recipients[1].Notify);
        var body1 = Encoding.UTF8.GetString((await gw.Gateway.Store.ReadBodyAsync(first.Mid))!);
        Assert.EndsWith("Subject: pipelined\r\n\r\n.dot stuffed\r\n", body1);
        var body2 = Encoding.UTF8.GetString((await gw.Gateway.Store.ReadBodyAsync(queued[1].Mid))!);
        Assert.EndsWith(chunk1 + chunk2, body2);
        Assert.StartsWith("Received: from client.test ([127.0.0.1])", body2);
    }

    [Fact]
    public async Task Non_ASCII_addresses_need_SMTPUTF8()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("utf8"));
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("553 5.6.7", await c.CommandAsync("MAIL FROM:<jörg@sender.test>"));
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<jörg@sender.test> SMTPUTF8"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<zoë@good.test>"));
    }
}
