using System.Collections.Concurrent;
using System.Text.Json;
using Postern.Admin;
using Postern.Queue;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>A 250 means the message is on disk: restarts and kill -9 lose nothing.</summary>
public sealed class DurabilityTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private PosternConfig HoldingConfig(string name) => _world.HoldingConfig(name, c => c.LogLevel = LogLevel.Info);

    [Fact]
    public async Task Restart_recovers_queued_messages_and_delivers_them()
    {
        var config = HoldingConfig("restart");
        var recipients = Enumerable.Range(0, 5).Select(i => TestWorld.Unique($"rs{i}") + "@good.test").ToList();
        var serve = PosternProcess.Serve(config);
        try
        {
            var endpoint = serve.Listener("OutgoingMail");
            foreach (var rcpt in recipients)
            {
                await using var c = await RawSmtp.ConnectAsync(endpoint);
                await c.ReadReplyAsync();
                await c.CommandAsync("EHLO client.test");
                await c.CommandAsync("MAIL FROM:<s@sender.test>");
                Assert.StartsWith("250", await c.CommandAsync($"RCPT TO:<{rcpt}>"));
                await c.CommandAsync("DATA");
                Assert.StartsWith("250", await c.CommandAsync($"Subject: restart {rcpt}\r\n\r\nbody\r\n."));
            }
            var log = Path.Combine(config.DataDirectory, "logs", "mail.current");
            TestWorld.WaitUntil(() => File.ReadAllText(log).Split('\n').Count(l => l.Contains("Delayed:")) >= 5,
                TimeSpan.FromSeconds(30), "five deferrals in the mail log");
            serve.Stop();
        }
        finally { serve.Dispose(); }

        var configFile = Path.Combine(config.DataDirectory, "postern.json");
        var (code, json) = PosternProcess.Cli("queue", "list", "--json", "--config", configFile);
        Assert.True(code == 0, json);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(5, doc.RootElement.GetArrayLength());
        var listed = doc.RootElement.EnumerateArray().Select(m => m.GetProperty("recipients")[0].GetProperty("address").GetString()).ToHashSet();
        Assert.True(recipients.ToHashSet().SetEquals(listed!));
        var (showCode, shown) = PosternProcess.Cli("queue", "show", doc.RootElement[0].GetProperty("mid").GetInt64().ToString(), "--config", configFile);
        Assert.True(showCode == 0, shown);
        Assert.Contains("connection refused", shown);

        // delete removes one message for good
        var victim = doc.RootElement[4].GetProperty("mid").GetInt64().ToString();
        var victimRcpt = doc.RootElement[4].GetProperty("recipients")[0].GetProperty("address").GetString()!;
        var (deleteCode, deleted) = PosternProcess.Cli("queue", "delete", victim, "--config", configFile);
        Assert.True(deleteCode == 0, deleted);
        Assert.Equal(1, PosternProcess.Cli("queue", "show", victim, "--config", configFile).ExitCode);
        recipients.Remove(victimRcpt);

        // Restart with the real port, ask for an immediate retry: every message arrives.
        config.Delivery.Port = 25;
        File.WriteAllText(configFile, config.ToJson());
        var (retryCode, retried) = PosternProcess.Cli("queue", "retry", "--config", configFile);
        Assert.True(retryCode == 0, retried);
        Assert.Contains("4 recipient(s)", retried);
        using var again = PosternProcess.Serve(config);
        foreach (var rcpt in recipients) _world.WaitForMail(rcpt);
        TestWorld.WaitUntil(() => PosternProcess.Cli("queue", "list", "--config", configFile).Output.Contains("The queue is empty"),
            TimeSpan.FromSeconds(30), "the queue to drain");
        again.Stop();
        Assert.Null(_world.TryWaitForMail(victimRcpt, TimeSpan.Zero));
    }

    [Fact]
    public async Task Kill_9_during_a_load_of_1000_messages_loses_none_that_got_250()
    {
        var config = HoldingConfig("kill9");
        var acknowledged = new ConcurrentBag<long>();
        var serve = PosternProcess.Serve(config);
        var endpoint = serve.Listener("OutgoingMail");
        using var killed = new CancellationTokenSource();
        var total = 0;

        async Task Sender(int worker)
        {
            try
            {
                await using var c = await RawSmtp.ConnectAsync(endpoint);
                await c.ReadReplyAsync();
                await c.CommandAsync("EHLO client.test");
                while (Interlocked.Increment(ref total) <= 1000)
                {
                    if ((await c.CommandAsync("MAIL FROM:<load@sender.test>")).StartsWith("250") &&
                        (await c.CommandAsync($"RCPT TO:<load{worker}@good.test>")).StartsWith("250") &&
                        (await c.CommandAsync("DATA")).StartsWith("354"))
                    {
                        var reply = await c.CommandAsync($"Subject: load\r\n\r\n{new string('x', 2000)}\r\n.");
                        // "250 2.0.0 Ok: Message <MID> accepted"
                        if (reply.StartsWith("250 ")) acknowledged.Add(long.Parse(reply.Split(' ')[4]));
                    }
                }
            }
            catch (Exception) when (killed.IsCancellationRequested) { /* the server died under us: expected */ }
        }

        var senders = Enumerable.Range(0, 8).Select(Sender).ToList();
        // Kill well before the end of the load, so some sessions are cut mid-transaction.
        TestWorld.WaitUntil(() => acknowledged.Count >= 250, TimeSpan.FromSeconds(120), "250 acknowledged messages");
        killed.Cancel();
        serve.Kill9();
        await Task.WhenAll(senders).WaitAsync(TimeSpan.FromSeconds(60));
        serve.Dispose();

        Assert.True(acknowledged.Count is >= 250 and < 1000, $"{acknowledged.Count} acknowledged");
        await using var store = new SqliteQueueStore(Gateway.StorePath(config.DataDirectory));
        var stored = (await store.ListAsync()).Select(m => m.Mid).ToHashSet();
        var lost = acknowledged.Where(mid => !stored.Contains(mid)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {acknowledged.Count} acknowledged messages lost: {string.Join(", ", lost.Take(20))}");
        foreach (var mid in acknowledged.Take(50))
            Assert.NotNull(await store.ReadBodyAsync(mid));
    }
}
