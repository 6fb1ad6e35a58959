using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Admin;
using Postern.Inbound;
using Postern.Observability;
using Postern.Outbound;
using Postern.Queue;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// Hostile peers and faults, each reproduced against a real socket: they must never cause
/// duplicate deliveries, connection storms, header injection, stuck sessions or lost log lines.
/// </summary>
public sealed class HardeningTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static async Task<RawSmtp> GreetedAsync(IPEndPoint endpoint)
    {
        var c = await RawSmtp.ConnectAsync(endpoint);
        Assert.StartsWith("220 ", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
        return c;
    }

    // ---- 1. senders the old code accepted and then could not bounce to ----

    [Theory]
    [InlineData("a..b@sender.test")]
    [InlineData("a,b@sender.test")]
    [InlineData("a(b@sender.test")]
    [InlineData("a;b@sender.test")]
    [InlineData("[a]@sender.test")]
    [InlineData("a\\b@sender.test")]
    [InlineData(".a@sender.test")]
    [InlineData("a.@sender.test")]
    [InlineData("a@sender.test.")]
    public async Task Senders_that_are_not_RFC_5321_mailboxes_are_refused_at_MAIL(string sender)
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("badsender"));
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("501 5.1.3", await c.CommandAsync($"MAIL FROM:<{sender}>"));
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<\"a..b\"@sender.test>"));   // the quoted form is valid
    }

    [Fact]
    public async Task A_message_with_a_550_and_a_250_recipient_is_delivered_once_and_bounced_once()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("once"));
        var good = TestWorld.Unique("once") + "@good.test";
        var bad = TestWorld.Unique("reject") + "@good.test";
        await using (var c = await GreetedAsync(gw.Private))
        {
            // The form that once made DSN building throw and the message due again at once.
            Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a..b@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<\"a..b\"@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{good}> NOTIFY=SUCCESS,FAILURE"));
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{bad}>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            Assert.StartsWith("250", await c.CommandAsync("Subject: once\r\n\r\nbody\r\n."));
        }
        var line = gw.WaitForLogLine("was generated for bounce of MID");
        var bounceMid = line.Split("MID ")[1].Split(' ')[0];
        var originalMid = line.Split("bounce of MID ")[1].Trim();
        gw.WaitForLogLine($"Message finished MID {originalMid}");
        // The definite answer: the DSN went out. A redelivery loop would have delivered the
        // good recipient many times by now.
        gw.WaitForLogLine($"Message finished MID {bounceMid} done");
        // The receiving Postfix answered 250 before its local delivery wrote the file: wait for it.
        _world.WaitForMail(good);
        Assert.Equal(1, CountMail(good));
        Assert.Equal(1, gw.MailLogText().Split('\n').Count(l => l.Contains($"Delivery start DCID") && l.Contains($"MID {originalMid} ")));
    }

    private int CountMail(string recipient)
    {
        var dir = Path.Combine(_world.MailDirectory, recipient.Split('@')[1], "new");
        return Directory.EnumerateFiles(dir).Count(f => File.ReadAllText(f).Contains($"Delivered-To: {recipient}\n", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>A store whose body reads fail: the round throws before any delivery.</summary>
    private sealed class BrokenBodyStore(IQueueStore inner) : IQueueStore
    {
        public int BodyReads;
        public ValueTask<long> NextIdAsync(IdKind kind) => inner.NextIdAsync(kind);
        public Task EnqueueAsync(QueuedMessage message, ReadOnlyMemory<byte> body) => inner.EnqueueAsync(message, body);
        public Task<IReadOnlyList<QueuedMessage>> LoadDueAsync(DateTimeOffset now, int limit, IReadOnlySet<long> exclude) => inner.LoadDueAsync(now, limit, exclude);
        public Task<DateTimeOffset?> NextDueAsync() => inner.NextDueAsync();
        public Task<byte[]?> ReadBodyAsync(long mid)
        {
            Interlocked.Increment(ref BodyReads);
            throw new IOException("disk read error (injected)");
        }
        public Task UpdateRecipientsAsync(long mid, IReadOnlyList<RecipientUpdate> updates) => inner.UpdateRecipientsAsync(mid, updates);
        public Task RemoveAsync(long mid) => inner.RemoveAsync(mid);
        public Task<IReadOnlyList<QueuedMessage>> ListAsync() => inner.ListAsync();
        public Task<QueuedMessage?> GetAsync(long mid) => inner.GetAsync(mid);
        public Task<int> RetryNowAsync(long? mid) => inner.RetryNowAsync(mid);
        public Task<int> RetryDomainNowAsync(string domain) => inner.RetryDomainNowAsync(domain);
        public Task<(int Messages, int Recipients, DateTimeOffset? Oldest)> StatsAsync() => inner.StatsAsync();
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    [Fact]
    public async Task A_delivery_round_that_throws_is_an_attempt_with_backoff_not_an_immediate_retry()
    {
        var config = _world.HoldingConfig("throwinground");
        Directory.CreateDirectory(config.DataDirectory);
        await using var store = new BrokenBodyStore(new SqliteQueueStore(Path.Combine(config.DataDirectory, "queue.db")));
        var mid = await store.NextIdAsync(IdKind.Message);
        await store.EnqueueAsync(new QueuedMessage
        {
            Mid = mid, ReceivedAt = DateTimeOffset.UtcNow, Sender = "s@sender.test",
            Recipients = [new QueuedRecipient { Rid = 0, Address = "u@good.test", Domain = "good.test", NextAttempt = DateTimeOffset.UtcNow }],
        }, "Subject: x\r\n\r\nx\r\n"u8.ToArray());
        var events = new MailEventStream();
        var seen = new List<MailEvent>();
        events.Subscribe(e => { lock (seen) seen.Add(e); });
        var context = new OutboundContext(config, events, () => new(), () => null, new Policy.VerificationOptions(false, false), () => DateTimeOffset.UtcNow);
        await using var delivery = new DeliveryAgent(context, new RouteResolver(new Dns.DnsResolver(config.Dns, events)), store);
        await using (var queue = new QueueManager(config, store, delivery, events))
        {
            queue.Start();
            // The definite answer: the failed round is recorded in the store.
            QueuedRecipient? r = null;
            TestWorld.WaitUntil(() => (r = store.GetAsync(mid).GetAwaiter().GetResult()!.Recipients[0]).Attempts > 0, TimeSpan.FromSeconds(30), "the failed round to be recorded");
            Assert.Equal(1, r!.Attempts);
            Assert.True(r.NextAttempt > DateTimeOffset.UtcNow.AddSeconds(500), $"next attempt {r.NextAttempt} is not backed off");
            Assert.StartsWith("4.3.0 delivery round failed", r.LastResponse);
            // A wake-up (a new message, a finished delivery) must not bring it back early:
            // wait until the scheduler has scanned again after it.
            var scans = queue.Scans;
            queue.Wake();
            TestWorld.WaitUntil(() => queue.Scans > scans, TimeSpan.FromSeconds(10), "the scan after the wake-up");
        }
        Assert.Equal(1, store.BodyReads);
        lock (seen) Assert.Contains(seen, e => e is RecipientDelayed d && d.Status == "4.3.0");
    }

    // ---- 2. a reply injected behind the 220 to STARTTLS ----

    [Fact]
    public async Task A_reply_injected_after_STARTTLS_is_one_deferred_attempt_not_a_connection_storm()
    {
        await using var peer = new ScriptedPeer(ScriptedPeer.Behaviour.InjectsAfterStartTls);
        var config = _world.NewConfig("inject", c =>
        {
            c.DefaultBounceProfile.InitialRetrySeconds = 600;
            c.DefaultBounceProfile.MaxRetrySeconds = 600;
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.1", Port = peer.EndPoint.Port } } });
        });
        await using var gw = RunningGateway.Start(config);
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "u@scripted.test", "injected");
        gw.WaitForLogLine("TLS failed: 127.0.6.1 sent data after its 220 to STARTTLS");
        var delayed = gw.WaitForLogLine("Delayed:", "To:<u@scripted.test>");
        var message = Assert.Single(await gw.Gateway.Store.ListAsync());
        Assert.Equal(1, message.Recipients[0].Attempts);
        Assert.True(message.Recipients[0].NextAttempt > DateTimeOffset.UtcNow.AddSeconds(500), delayed);
        Assert.Equal(1, peer.Connections);
        Assert.Empty(peer.Messages);
    }

    // ---- 3. sessions that never end ----

    [Fact]
    public async Task A_client_that_pipelines_and_never_reads_is_disconnected_at_the_write_deadline()
    {
        var config = _world.HoldingConfig("neverreads", c => c.MailFlowPolicies["ACCEPTED"].CommandTimeoutSeconds = 2);
        await using var gw = RunningGateway.Start(config);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(gw.Public);
        var noops = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("NOOP\r\n", 10000)));
        var sent = 0L;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var writer = Task.Run(async () =>
        {
            try { while (sent < 200_000_000) { await socket.SendAsync(noops, SocketFlags.None, stop.Token); sent += noops.Length; } }
            catch (Exception) { /* the gateway hung up, or the test gave up */ }
        });
        var closed = gw.WaitForLogLine(TimeSpan.FromSeconds(45), "close (timeout)");
        await stop.CancelAsync();
        await writer;
        Assert.Contains("ICID", closed);
        Assert.True(sent < 200_000_000, "the gateway kept reading commands whose replies nobody read");
        // Everyone else is still served.
        await using var other = await GreetedAsync(gw.Public);
        Assert.StartsWith("250", await other.CommandAsync("NOOP"));
    }

    [Fact]
    public async Task Under_stress_idle_sessions_get_the_short_timeout_so_slots_free_up()
    {
        var config = _world.HoldingConfig("stress", c =>
        {
            c.Listeners[0].MaxConcurrency = 5;
            c.Listeners[0].StressCommandTimeoutSeconds = 1;
            c.MailFlowPolicies["ACCEPTED"].CommandTimeoutSeconds = 300;
        });
        await using var gw = RunningGateway.Start(config);
        var idle = new List<RawSmtp>();
        for (var i = 0; i < 3; i++) idle.Add(await GreetedAsync(gw.Public));   // 3 of 5: no stress, 300 s
        Assert.False(gw.Gateway.Listeners[0].UnderStress);
        idle.Add(await GreetedAsync(gw.Public));                                // 4 of 5: stress
        gw.WaitForLogLine("listener IncomingMail under stress: 4 of 5 sessions; command timeout cut to 1 s");
        // The waits already running are cut short too: every idle session ends within seconds, not minutes.
        foreach (var c in idle) Assert.StartsWith("421 4.4.2", await c.ReadReplyAsync(TimeSpan.FromSeconds(15)));
        gw.WaitForLogLine("listener IncomingMail no longer under stress");
        await using var fresh = await GreetedAsync(gw.Public);
        Assert.StartsWith("250", await fresh.CommandAsync("NOOP"));
        foreach (var c in idle) await c.DisposeAsync();
    }

    [Fact]
    public async Task A_receiver_that_stops_reading_message_data_is_abandoned_at_the_data_deadline()
    {
        await using var peer = new ScriptedPeer(ScriptedPeer.Behaviour.NeverReadsData);
        var config = _world.NewConfig("stuckdata", c =>
        {
            c.Delivery.DataBlockTimeoutSeconds = 2;
            c.MailFlowPolicies["RELAYED"].MaxMessageSize = 64 * 1024 * 1024;
            c.DefaultBounceProfile.InitialRetrySeconds = 600;
            c.DefaultBounceProfile.MaxRetrySeconds = 600;
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.1", Port = peer.EndPoint.Port } } });
        });
        await using var gw = RunningGateway.Start(config);
        await using (var c = await GreetedAsync(gw.Private))
        {
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<s@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@scripted.test>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            var line = new string('x', 998) + "\r\n";
            var body = new StringBuilder("Subject: big\r\n\r\n");
            while (body.Length < 40 * 1024 * 1024) body.Append(line);
            Assert.StartsWith("250", await c.CommandAsync(body + "."));
        }
        var delayed = gw.WaitForLogLine(TimeSpan.FromSeconds(60), "Delayed:", "To:<u@scripted.test>");
        Assert.Contains("did not take data for 2 s", delayed);
    }

    // ---- 4. header injection and smuggling ----

    [Fact]
    public async Task Commands_with_a_bare_CR_or_LF_get_501_and_are_never_copied_anywhere()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("barecr"));
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        await c.ReadReplyAsync();
        Assert.Equal("501 5.5.2 Syntax error: bare CR or LF in command", await c.CommandAsync("EHLO x\r.\rMAIL FROM:<evil@x>\rX-Injected: yes"));
        await c.SendAsync("NOOP\n");
        Assert.Equal("501 5.5.2 Syntax error: bare CR or LF in command", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
        var reply = await c.CommandAsync("MAIL FROM:<a@sender.test> X\rY=1");
        Assert.StartsWith("501", reply);
        Assert.DoesNotContain("\r", reply);
        Assert.StartsWith("501 5.5.4 Syntax: EHLO", await c.CommandAsync("EHLO a(b)"));
        Assert.Empty(await gw.Gateway.Store.ListAsync());
    }

    [Fact]
    public async Task A_relayed_message_carries_no_header_a_client_tried_to_inject()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("noinject"));
        var rcpt = TestWorld.Unique("noinject") + "@good.test";
        await using (var c = await RawSmtp.ConnectAsync(gw.Private))
        {
            await c.ReadReplyAsync();
            Assert.StartsWith("501", await c.CommandAsync("EHLO x\r.\rMAIL FROM:<evil@x>\rX-Injected: yes"));
            Assert.StartsWith("501", await c.CommandAsync("HELO x\rX-Injected: yes"));
            Assert.StartsWith("250", await c.CommandAsync("EHLO client.test"));
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<s@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{rcpt}>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            Assert.StartsWith("250", await c.CommandAsync("Subject: clean\r\n\r\nbody\r\n."));
        }
        var delivered = _world.WaitForMail(rcpt);
        var headers = delivered[..delivered.IndexOf("\n\n", StringComparison.Ordinal)];
        Assert.DoesNotContain("X-Injected", headers);
        Assert.DoesNotContain("evil", headers);
        Assert.Contains("Received: from client.test ([127.0.0.1])", headers);
    }

    [Fact]
    public async Task Parameters_are_checked_control_bytes_duplicates_and_invalid_UTF8_refused()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("params"));
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a@sender.test> SIZE=10\0"));
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a@sender.test> SIZE=10 SIZE=20"));
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a@sender.test> BODY=8BITMIME BODY=7BIT"));
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a@sender.test> ENVID=a+07b"));
        Assert.StartsWith("501", await c.CommandAsync("MAIL FROM:<a@sender.test> F\u00e9=1"));
        // Invalid UTF-8 (an overlong '/' and a lone continuation byte) is refused, not turned into U+FFFD.
        await c.SendBytesAsync([.. "MAIL FROM:<j"u8, 0xC0, 0xAF, 0x80, .. "rg@sender.test> SMTPUTF8\r\n"u8]);
        Assert.StartsWith("501 5.5.2 Syntax error: invalid UTF-8", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test> SIZE=10 ENVID=abc"));
        Assert.StartsWith("501", await c.CommandAsync("RCPT TO:<u@good.test> ORCPT=rfc822;a+0Db@good.test"));
        Assert.StartsWith("501", await c.CommandAsync("RCPT TO:<u@good.test> ORCPT=rfc822;a+00b@good.test"));
        Assert.StartsWith("501", await c.CommandAsync("RCPT TO:<u@good.test> ORCPT=rfc822;a+ZZ@good.test"));
        Assert.StartsWith("501", await c.CommandAsync("RCPT TO:<u@good.test> NOTIFY=NEVER NOTIFY=SUCCESS"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test> ORCPT=rfc822;u+40good.test"));
    }

    [Fact]
    public async Task BDAT_data_with_a_bare_CR_or_LF_is_refused_like_DATA()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("bdatbare"));
        await using var c = await GreetedAsync(gw.Public);
        async Task<string?> Bdat(params string[] chunks)
        {
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
            string? reply = null;
            for (var i = 0; i < chunks.Length; i++)
            {
                await c.SendAsync($"BDAT {Encoding.UTF8.GetByteCount(chunks[i])}{(i == chunks.Length - 1 ? " LAST" : "")}\r\n{chunks[i]}");
                reply = await c.ReadReplyAsync();
            }
            return reply;
        }
        Assert.StartsWith("554 5.6.0", await Bdat("Subject: x\r\n\r\nbare\nLF\r\n"));
        Assert.StartsWith("554 5.6.0", await Bdat("Subject: x\r\n\r\nbare\rCR\r\n"));
        Assert.StartsWith("554 5.6.0", await Bdat("Subject: x\r\n\r\nends in a bare CR\r"));
        Assert.Empty(await gw.Gateway.Store.ListAsync());
        // A CRLF split across two chunks is a line end, not a bare CR and a bare LF.
        Assert.StartsWith("250 2.0.0", await Bdat("Subject: x\r\n\r\nsplit\r", "\nline\r\n"));
        Assert.Single(await gw.Gateway.Store.ListAsync());
    }

    [Fact]
    public async Task The_mail_log_escapes_control_characters_from_peers()
    {
        var config = _world.HoldingConfig("logesc", c => c.MailFlowPolicies["ACCEPTED"].Tls = InboundTls.Required);
        await using var gw = RunningGateway.Start(config);
        await using (var c = await GreetedAsync(gw.Public))
        {
            // Before STARTTLS on a tls: required listener, commands are refused and logged.
            await c.SendBytesAsync([0x1B, .. "[31mMAIL FROM:<a@b>\r\n"u8]);
            Assert.StartsWith("501", await c.ReadReplyAsync());
            Assert.StartsWith("530", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
            // A client that starts TLS at once: a binary ClientHello where a command belongs.
            await c.SendBytesAsync([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0x00, 0x07, 0x0A]);
            Assert.StartsWith("501", await c.ReadReplyAsync());
        }
        // Message text may hold anything; the Subject reaches the log.
        var plain = _world.HoldingConfig("logesc2");
        await using var gw2 = RunningGateway.Start(plain);
        await using (var c = await GreetedAsync(gw2.Public))
        {
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            Assert.StartsWith("250", await c.CommandAsync("Subject: \u001b[31mred\u0007\u0000 x\r\n\r\nbody\r\n."));
        }
        var line = gw2.WaitForLogLine("Subject '");
        Assert.Contains(@"Subject '\x1B[31mred\x07\x00 x'", line);
        foreach (var log in new[] { gw.MailLogText(), gw2.MailLogText() })
            Assert.DoesNotContain(log, ch => ch < ' ' && ch != '\n');
    }

    // ---- 5. lost log lines ----

    [Fact]
    public async Task The_mail_log_writes_every_event_across_batch_boundaries()
    {
        var dir = Path.Combine(Path.GetTempPath(), "postern-tests", "maillog-" + Guid.NewGuid().ToString("N"));
        var log = new MailLog(dir, new MailLogSettings { MaxFileBytes = 1L << 30 }, Admin.LogLevel.Info);
        var events = new MailEventStream();
        log.Attach(events);
        var filler = new string('y', 200);
        for (var i = 0; i < 30_000; i++) events.Publish(new SystemNotice($"event {i} {filler}"));
        await log.DisposeAsync();
        var lines = File.ReadAllLines(Path.Combine(dir, "mail.current"));
        Assert.Equal(30_000, lines.Length);
        Assert.EndsWith("event 29999 " + filler, lines[^1]);
    }

    // ---- 6. loops ----

    [Fact]
    public async Task More_Received_headers_than_the_limit_is_a_loop_554_5_4_6()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("hops", c => c.MaxReceivedHeaders = 5));
        await using var c = await GreetedAsync(gw.Public);
        async Task<string> Send(int hops)
        {
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@good.test>"));
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            var received = string.Concat(Enumerable.Range(0, hops).Select(i => $"Received: from hop{i}.test by hop{i + 1}.test; Thu, 26 Sep 2024 15:23:39 +0000\r\n"));
            return await c.CommandAsync($"{received}Subject: hops\r\n\r\nbody\r\n.");
        }
        Assert.StartsWith("554 5.4.6", await Send(6));
        Assert.StartsWith("250", await Send(5));
        gw.WaitForLogLine("rejected: mail loop: 6 Received: headers (limit 5)");
    }

    [Fact]
    public async Task A_route_that_points_back_at_Postern_bounces_5_4_6()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Parse(TestWorld.ListenAddress), 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var config = _world.NewConfig("selfloop", c =>
        {
            c.Listeners[0].Port = port;
            c.RecipientAccessTable.Add(new RatEntry { Domain = "loop.test" });
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "loop.test", Hosts = { new SmtpRouteHost { Host = TestWorld.ListenAddress, Port = port } } });
        });
        await using var gw = RunningGateway.Start(config);
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "u@loop.test", "loop");
        var bounced = gw.WaitForLogLine("Bounced:", "To:<u@loop.test>");
        Assert.Contains("5.4.6 - mail for loop.test loops back to myself", bounced);
        Assert.DoesNotContain($"address {TestWorld.ListenAddress} port {port}", gw.MailLogText());   // not one connection to ourselves
    }

    // ---- 8. bad configuration ----

    [Fact]
    public async Task A_second_gateway_on_the_same_address_and_port_fails_to_bind_with_a_clear_error()
    {
        await using var first = RunningGateway.Start(_world.HoldingConfig("bind1"));
        var config = _world.HoldingConfig("bind2", c =>
        {
            c.Listeners[0].Port = first.Public.Port;
            c.Listeners.RemoveAt(1);
        });
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        var (check, checkOutput) = PosternProcess.Cli("config", "check", "--config", file);
        Assert.Equal(2, check);
        Assert.Contains($"cannot bind {TestWorld.ListenAddress}:{first.Public.Port}", checkOutput);
        var (code, output) = PosternProcess.Cli("serve", "--config", file);
        Assert.Equal(2, code);
        Assert.Contains($"cannot bind {TestWorld.ListenAddress}:{first.Public.Port}", output);
        Assert.DoesNotContain("   at ", output);
        // The first gateway still gets every connection.
        await using var c = await GreetedAsync(first.Public);
    }

    [Fact]
    public void Missing_certificate_files_fail_config_check_and_serve_with_one_line_each_and_no_stack_trace()
    {
        var config = _world.HoldingConfig("nofile", c =>
        {
            c.Listeners[0].CertificateFile = "/nonexistent/cert.pem";
            c.Listeners[0].PrivateKeyFile = "/nonexistent/key.pem";
            c.CertificateAuthorities.CustomListEnabled = true;
            c.CertificateAuthorities.CustomListFile = "/nonexistent/ca.pem";
        });
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        foreach (var command in new[] { new[] { "config", "check" }, new[] { "serve" } })
        {
            var (code, output) = PosternProcess.Cli([.. command, "--config", file]);
            Assert.Equal(2, code);
            Assert.Contains("postern: listener 'IncomingMail': file /nonexistent/cert.pem does not exist", output);
            Assert.Contains("postern: listener 'IncomingMail': file /nonexistent/key.pem does not exist", output);
            Assert.Contains("postern: certificateAuthorities: custom CA list /nonexistent/ca.pem does not exist", output);
            Assert.DoesNotContain("   at ", output);
        }
        File.WriteAllText(Path.Combine(config.DataDirectory, "bad.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        config.Listeners[0].CertificateFile = config.Listeners[0].PrivateKeyFile = Path.Combine(config.DataDirectory, "bad.pem");
        config.CertificateAuthorities.CustomListEnabled = false;
        File.WriteAllText(file, config.ToJson());
        var (code2, output2) = PosternProcess.Cli("config", "check", "--config", file);
        Assert.Equal(2, code2);
        Assert.Contains("postern: listener 'IncomingMail': " + Path.Combine(config.DataDirectory, "bad.pem") + " holds no certificate", output2);
    }

    [Fact]
    public void Settings_stored_but_not_in_force_are_warned_about()
    {
        var config = _world.HoldingConfig("notinforce", c =>
        {
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "dane.test", Dane = DaneSupport.Mandatory });
            c.DestinationControls.Entries.Add(new DestinationEntry { Domain = "sts.test", MtaSts = MtaStsSupport.On, LimitsApplyTo = LimitScope.VirtualGateway });
        });
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        var (code, output) = PosternProcess.Cli("config", "check", "--config", file);
        Assert.Equal(0, code);
        Assert.DoesNotContain("DANE mandatory is stored but not in force", output);   // DANE is in force now
        Assert.DoesNotContain("MTA-STS is stored but not in force", output);   // MTA-STS is in force now
        Assert.Contains("warning: destination 'sts.test': limitsApplyTo virtualGateway is stored but not in force", output);
    }

    // ---- 7. the scheduler's active set ----

    [Fact]
    public async Task The_scheduler_holds_at_most_the_active_message_limit_in_memory()
    {
        var config = _world.HoldingConfig("active", c => c.Delivery.ActiveMessageLimit = 3);
        await using var gw = RunningGateway.Start(config);
        await using (var c = await GreetedAsync(gw.Public))
            for (var i = 0; i < 30; i++)
            {
                Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<a@sender.test>"));
                Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<u{i}@good.test>"));
                Assert.StartsWith("354", await c.CommandAsync("DATA"));
                Assert.StartsWith("250", await c.CommandAsync("Subject: active\r\n\r\nbody\r\n."));
            }
        TestWorld.WaitUntil(() => gw.Gateway.Store.ListAsync().GetAwaiter().GetResult().All(m => m.Recipients[0].Attempts > 0),
            TimeSpan.FromSeconds(60), "every message to have had its attempt");
        Assert.InRange(gw.Gateway.Queue.PeakActive, 1, 3);
    }

    // ---- 9. smaller faults ----

    [Fact]
    public async Task TLS_sessions_end_with_close_notify_after_221()
    {
        await using var gw = RunningGateway.Start(_world.HoldingConfig("closenotify"));
        const string script = """
import socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=20)
f = s.makefile('rb')
def reply():
    while True:
        line = f.readline()
        if line[3:4] != b'-': return line
reply(); s.sendall(b'EHLO client.test\r\n'); reply()
s.sendall(b'STARTTLS\r\n'); assert reply().startswith(b'220')
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, suppress_ragged_eofs=False)
t.sendall(b'QUIT\r\n')
data = b''
try:
    while True:
        chunk = t.recv(4096)
        if not chunk: break
        data += chunk
    print('clean', data.decode().strip())
except ssl.SSLEOFError:
    print('unclean', data.decode().strip())
""";
        var (code, output) = TestWorld.Run("python3", ["-c", script, gw.Public.Address.ToString(), gw.Public.Port.ToString()], TimeSpan.FromSeconds(30));
        Assert.True(code == 0, output);
        Assert.StartsWith("clean 221", output.Trim());
    }

    [Fact]
    public async Task Outbound_TLS_sessions_end_with_close_notify_after_QUIT()
    {
        // A receiver that records whether the TLS session ended with close_notify or was cut.
        const string sink = """
import socket, ssl, sys
cert, key, out = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket(); srv.bind(('127.0.6.2', 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(60)
c, _ = srv.accept(); c.settimeout(30)
def say(s, line): s.sendall(line.encode() + b'\r\n')
def lines(s):
    buf = b''
    while True:
        while b'\r\n' not in buf:
            chunk = s.recv(4096)
            if not chunk: return
            buf += chunk
        line, buf = buf.split(b'\r\n', 1)
        yield line.decode()
say(c, '220 sink.test ESMTP')
for line in lines(c):
    if line.startswith('EHLO'): say(c, '250-sink.test\r\n250 STARTTLS')
    elif line == 'STARTTLS': say(c, '220 go'); break
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
t = ctx.wrap_socket(c, server_side=True, suppress_ragged_eofs=False)
data = False
result = 'no QUIT'
try:
    it = lines(t)
    for line in it:
        if data:
            if line == '.': data = False; say(t, '250 ok')
            continue
        if line.startswith('EHLO'): say(t, '250 sink.test')
        elif line == 'DATA': data = True; say(t, '354 go')
        elif line == 'QUIT':
            say(t, '221 bye')
            try:
                rest = t.recv(100)
                result = 'clean' if rest == b'' else 'data after QUIT'
            except ssl.SSLEOFError:
                result = 'unclean'
            break
        else: say(t, '250 ok')
except Exception as e:
    result = 'error ' + repr(e)
open(out, 'w').write(result)
""";
        var outFile = Path.Combine(Path.GetTempPath(), "postern-tests", "closenotify-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.GetDirectoryName(outFile)!);
        var certs = Path.Combine(_world.WorldDirectory, "certs");
        var psi = new System.Diagnostics.ProcessStartInfo("python3") { RedirectStandardOutput = true };
        foreach (var a in new[] { "-c", sink, Path.Combine(certs, "mx1.good.test.crt"), Path.Combine(certs, "mx1.good.test.key"), outFile }) psi.ArgumentList.Add(a);
        using var python = System.Diagnostics.Process.Start(psi)!;
        var port = int.Parse((await python.StandardOutput.ReadLineAsync())!);
        var config = _world.NewConfig("closenotify-out", c =>
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.2", Port = port } } }));
        await using var gw = RunningGateway.Start(config);
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", "u@scripted.test", "close notify");
        gw.WaitForLogLine("Message finished MID");
        Assert.True(python.WaitForExit(TimeSpan.FromSeconds(30)), "the sink did not finish");
        Assert.Equal("clean", File.ReadAllText(outFile));
    }

    [Fact]
    public void A_multi_line_reply_that_changes_its_code_is_malformed()
    {
        var assembler = new SmtpReplyAssembler();
        Assert.Null(assembler.Add("250-first", out var error));
        Assert.Null(error);
        Assert.Null(assembler.Add("550 second", out error));
        Assert.Contains("changes its code from 250 to 550", error);
        var reply = assembler.Add("250 fresh", out error);
        Assert.Null(error);
        Assert.Equal(["fresh"], reply!.Lines);
        Assert.Null(assembler.Add("25O x", out error));
        Assert.NotNull(error);
        Assert.Null(assembler.Add("250 a\u0000b", out error));
        Assert.NotNull(error);
    }

    [Fact]
    public void The_peers_SIZE_limit_does_not_survive_a_new_EHLO()
    {
        var before = EhloCapabilities.Parse(["mx.test", "SIZE 100", "STARTTLS", "PIPELINING"]);
        Assert.Equal(100, before.MaxSize);
        var after = EhloCapabilities.Parse(["mx.test", "PIPELINING"]);
        Assert.Equal(0, after.MaxSize);
        Assert.False(after.Supports("STARTTLS"));
        Assert.Equal(0, EhloCapabilities.Parse(["mx.test", "SIZE 10\0"]).MaxSize);
    }

    [Fact]
    public void The_final_reply_after_data_is_awaited_ten_minutes_by_default()
    {
        var d = PosternConfig.CreateDefault().Delivery;
        Assert.Equal(600, d.DataDoneTimeoutSeconds);
        Assert.Equal(180, d.DataBlockTimeoutSeconds);
        Assert.Equal(300, d.CommandTimeoutSeconds);
    }

    [Fact]
    public void The_DSN_for_a_UTF8_recipient_uses_the_utf8_address_type_and_global_types()
    {
        var original = new QueuedMessage
        {
            Mid = 9, Sender = "jörg@sender.test", SmtpUtf8 = true, ReceivedAt = DateTimeOffset.UtcNow,
            Recipients = [new QueuedRecipient { Rid = 0, Address = "zoë@good.test", Domain = "good.test" }],
        };
        var body = Encoding.UTF8.GetBytes("Subject: grüße\r\nFrom: jörg@sender.test\r\n\r\nbody\r\n");
        var dsn = Encoding.UTF8.GetString(DsnBuilder.Build("postern.test", original, body,
            [new DsnRecipient(original.Recipients[0], "failed", "5.1.1", "smtp; 550 5.1.1 <zoë@good.test>: unknown\r\nX-Evil: 1", "mx1.good.test")], DateTimeOffset.UtcNow));
        Assert.Contains("report-type=global-delivery-status", dsn);
        Assert.Contains("Content-Type: message/global-delivery-status", dsn);
        Assert.Contains("Final-Recipient: utf-8; zoë@good.test", dsn);
        Assert.DoesNotContain("=?", dsn);   // no RFC 2047 words in address fields
        Assert.Contains("Content-Type: message/global\r\n", dsn);
        Assert.DoesNotContain("\r\nX-Evil", dsn);
        var parsed = MimeKit.MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(dsn)));
        Assert.Equal("Undelivered Mail Returned to Sender", parsed.Subject);
    }

    [Fact]
    public void DSNs_are_built_for_any_sender_the_server_accepts()
    {
        foreach (var sender in new[] { "\"a..b\"@sender.test", "\"a b\\\"c\"@sender.test", "user@[192.0.2.1]", "a@sender.test" })
        {
            Assert.True(SmtpSyntax.IsValidMailbox(sender), sender);
            var original = new QueuedMessage
            {
                Mid = 1, Sender = sender, ReceivedAt = DateTimeOffset.UtcNow,
                Recipients = [new QueuedRecipient { Rid = 0, Address = "u@good.test", Domain = "good.test" }],
            };
            var dsn = DsnBuilder.Build("postern.test", original, "no header block at all"u8.ToArray(),
                [new DsnRecipient(original.Recipients[0], "failed", "5.1.1", "smtp; 550 no", null)], DateTimeOffset.UtcNow);
            Assert.Contains($"To: <{sender}>", Encoding.UTF8.GetString(dsn));
        }
    }
    // ---- 10. backscatter: Bounce Verification and valid recipients ----

    [Fact]
    public void Bounce_tags_verify_expire_and_resist_forgery()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var tagger = new Security.BounceTagger(key, maxAgeDays: 7);
        var now = DateTimeOffset.Parse("2026-11-30T12:00:00Z");
        var tagged = tagger.Tag("Alice@example.com", now);
        Assert.Matches("^prvs=0[0-9]{3}[0-9a-f]{6}=Alice@example.com$", tagged);
        Assert.Equal((Security.BounceTagCheck.Valid, "Alice@example.com"), tagger.Check(tagged, now.AddDays(7)));
        Assert.Equal((Security.BounceTagCheck.Valid, "Alice@example.com"), tagger.Check(tagged.ToUpperInvariant().Replace("PRVS=", "prvs=").Replace("ALICE@EXAMPLE.COM", "Alice@example.com"), now));
        Assert.Equal(Security.BounceTagCheck.Expired, tagger.Check(tagged, now.AddDays(8)).Check);
        Assert.Equal(Security.BounceTagCheck.BadTag, tagger.Check(tagged.Replace("=Alice@", "=Bob@"), now).Check);
        Assert.Equal(Security.BounceTagCheck.BadTag, new Security.BounceTagger(key.Reverse().ToArray(), 7).Check(tagged, now).Check);
        Assert.Equal(Security.BounceTagCheck.BadTag, tagger.Check("prvs=0999zzzzzz=alice@example.com", now).Check);
        Assert.Equal(Security.BounceTagCheck.Untagged, tagger.Check("alice@example.com", now).Check);
        Assert.Equal("\"a b\"@example.com", tagger.Tag("\"a b\"@example.com", now));   // a quoted local part cannot carry a tag
        Assert.Equal(tagged, tagger.Tag(tagged, now));                                   // never tagged twice
        // Across the 1000-day wrap of the day number.
        var nearWrap = DateTimeOffset.FromUnixTimeSeconds((20995L) * 86400 + 3600);
        var wrapped = tagger.Tag("a@example.com", nearWrap);
        Assert.StartsWith("prvs=0002", wrapped);
        Assert.Equal(Security.BounceTagCheck.Valid, tagger.Check(wrapped, nearWrap.AddDays(3)).Check);
        Assert.Equal(Security.BounceTagCheck.Expired, tagger.Check(wrapped, nearWrap.AddDays(9)).Check);
    }

    [Fact]
    public async Task Bounce_verification_tags_outbound_senders_and_refuses_backscatter()
    {
        var config = _world.NewConfig("batv", c => c.DestinationControls.Default.BounceVerification = true);
        await using var gw = RunningGateway.Start(config);
        var sender = TestWorld.Unique("tagme") + "@good.test";
        var rcpt = TestWorld.Unique("batv") + "@good.test";
        await RawSmtp.SubmitAsync(gw.Private, sender, rcpt, "tagged");
        var delivered = _world.WaitForMail(rcpt);
        var returnPath = delivered.Split('\n').First(l => l.StartsWith("Return-Path:", StringComparison.Ordinal));
        var tagged = returnPath[(returnPath.IndexOf('<') + 1)..returnPath.IndexOf('>')];
        Assert.StartsWith("prvs=", tagged);
        Assert.EndsWith("=" + sender, tagged);
        gw.WaitForLogLine("envelope sender tagged for bounce verification: <" + tagged + ">");

        await using (var c = await GreetedAsync(gw.Public))
        {
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<>"));
            Assert.StartsWith("550 5.7.1", await c.CommandAsync($"RCPT TO:<{sender}>"));                                          // untagged: backscatter
            Assert.StartsWith("550 5.7.1", await c.CommandAsync($"RCPT TO:<{tagged.Replace("=" + sender, "=other@good.test")}>"));  // tag of another address
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{tagged}>"));                                                 // a real bounce
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<postmaster@good.test>"));                                    // postmaster takes bounces too
            Assert.StartsWith("354", await c.CommandAsync("DATA"));
            Assert.StartsWith("250", await c.CommandAsync("Subject: bounce\r\n\r\nyour message could not be delivered\r\n."));
            // Mail with a sender is not a bounce: untagged recipients are fine.
            Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<someone@sender.test>"));
            Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{sender}>"));
            await c.CommandAsync("RSET");
        }
        // The real bounce reaches the original address, without the tag.
        var bounce = _world.WaitForMail(sender);
        Assert.Contains("your message could not be delivered", bounce);
        gw.WaitForLogLine("Rejected by bounce verification: untagged address");
        gw.WaitForLogLine("Rejected by bounce verification: invalid tag");
        gw.WaitForLogLine($"bounce verification passed: <{tagged}> is a valid tag for <{sender}>");
        Assert.Equal(2, gw.Gateway.Counters.Get(nameof(BounceVerificationFailed)));
    }

    [Fact]
    public async Task A_RAT_entry_with_valid_recipients_refuses_unknown_ones_at_RCPT()
    {
        var list = Path.Combine(Path.GetTempPath(), "postern-tests", "valid-" + Guid.NewGuid().ToString("N") + ".txt");
        Directory.CreateDirectory(Path.GetDirectoryName(list)!);
        File.WriteAllText(list, "# who exists\nknown@good.test\n  Other@Good.Test  \n");
        var config = _world.HoldingConfig("validrcpt", c => c.RecipientAccessTable[0].ValidRecipientsFile = list);
        await using var gw = RunningGateway.Start(config);
        await using var c = await GreetedAsync(gw.Public);
        Assert.StartsWith("250", await c.CommandAsync("MAIL FROM:<forged@elsewhere.test>"));
        Assert.StartsWith("550 5.1.1", await c.CommandAsync("RCPT TO:<unknown@good.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<known@good.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<other@good.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<postmaster@good.test>"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<anyone@sub.good.test>"));   // the .good.test entry lists nobody
        gw.WaitForLogLine("To: <unknown@good.test> Rejected by RAT valid recipients");
        File.Delete(list);
        Assert.Contains(ConfigPreflight.Problems(config, checkBind: false), p => p.Contains("valid recipients file") && p.Contains("does not exist"));
    }
}
