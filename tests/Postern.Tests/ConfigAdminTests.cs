using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The versioned configuration with staged changes, and destconfig's scriptable forms, through the real CLI.</summary>
public sealed class ConfigAdminTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private static string ConfigFile(PosternConfig config) => CliRuns.WriteConfig(config);

    private static string Cli(int expected, params string[] args) => CliRuns.Expect(expected, args);

    [Fact]
    public void Destinations_are_staged_committed_diffed_cleared_and_rolled_back()
    {
        var file = ConfigFile(_world.HoldingConfig("cfg-flow"));
        Assert.Contains("No configuration has been committed yet.", Cli(0, "config", "versions", "--config", file));

        Assert.Contains("Changes are staged", Cli(0, "destconfig", "new", "example.test", "--tls", "requiredVerify", "--mta-sts", "on", "--concurrency", "20", "--config", file));
        var list = Cli(0, "destconfig", "list", "--config", file);
        Assert.Contains("example.test", list);
        Assert.Contains("Required (Verify)", list);
        Assert.Contains("(includes staged changes not yet committed)", list);
        var diff = Cli(0, "config", "diff", "0", "--config", file);
        Assert.Contains("+", diff);
        Assert.Contains("example.test", diff);

        var committed = Cli(0, "commit", "--comment", "first", "--config", file);
        Assert.Contains("Changes committed: version 1", committed);
        Assert.Contains("applies it within about a second", committed);
        Assert.Contains("there are no staged changes to commit", Cli(2, "commit", "--config", file));

        Cli(0, "destconfig", "edit", "example.test", "--tls", "5", "--dane", "opportunistic", "--config", file);
        Assert.Contains("Staged changes discarded.", Cli(0, "clearchanges", "--config", file));
        Cli(0, "destconfig", "edit", "example.test", "--tls", "preferred", "--config", file);
        Cli(0, "commit", "--comment", "second", "--config", file);
        var versions = Cli(0, "config", "versions", "--config", file);
        Assert.Contains("first", versions);
        Assert.Contains("second", versions);
        Assert.Contains("\"tls\": \"preferred\"", Cli(0, "config", "show", "2", "--config", file));
        var changes = Cli(0, "config", "diff", "1", "2", "--config", file);
        Assert.Contains("-", changes);
        Assert.Contains("requiredVerify", changes);

        Assert.Contains("Version 1 is staged", Cli(0, "config", "rollback", "1", "--config", file));
        Cli(0, "commit", "--comment", "back to 1", "--config", file);
        Assert.Contains("\"tls\": \"requiredVerify\"", Cli(0, "config", "show", "3", "--config", file));

        Cli(0, "destconfig", "delete", "example.test", "--config", file);
        Cli(0, "commit", "--config", file);
        Assert.DoesNotContain("example.test", Cli(0, "destconfig", "list", "--config", file));
        // Bad answers are refused with the reason, and stage nothing.
        Assert.Contains("tls 'sideways' is not one of", Cli(2, "destconfig", "new", "x.test", "--tls", "sideways", "--config", file));
        Assert.Contains("concurrentConnections must be 1-1000", Cli(2, "destconfig", "new", "x.test", "--concurrency", "5000", "--config", file));
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));
    }

    [Fact]
    public void A_commit_of_an_invalid_staged_document_is_refused_with_the_reasons_and_changes_nothing()
    {
        var config = _world.HoldingConfig("cfg-invalid");
        using var store = new SqliteConfigStore(SqliteConfigStore.PathFor(Path.GetFullPath(config.DataDirectory)));
        var service = new ConfigService(store);
        service.Stage(config);
        service.Commit("good");
        var bad = PosternConfig.Parse(config.ToJson(), "copy");
        bad.Hostname = "not a host";
        bad.DestinationControls.Entries.Add(new DestinationEntry { Domain = "x.test", ConcurrentConnections = 0 });
        service.Stage(bad);
        var e = Assert.Throws<ConfigException>(() => service.Commit("bad"));
        Assert.Contains("hostname 'not a host' is not a valid host name", e.Message);
        Assert.Contains("destination 'x.test': concurrentConnections must be 1-1000", e.Message);
        Assert.Single(service.Versions());
        Assert.True(service.HasStagedChanges);   // kept for fixing, or clearchanges
    }

    [Fact]
    public async Task A_committed_destination_is_in_force_when_the_gateway_starts_again_with_the_same_file()
    {
        var config = _world.NewConfig("cfg-serve");
        var file = ConfigFile(config);
        using (var first = PosternProcess.Serve(config)) first.Stop();
        // The administrator tightens good.test from the CLI; the file is unchanged.
        Cli(0, "destconfig", "new", "good.test", "--tls", "requiredVerify", "--config", file);
        Cli(0, "commit", "--comment", "verify good.test", "--config", file);
        using var second = PosternProcess.Serve(config);
        var rcpt = TestWorld.Unique("cfg") + "@good.test";
        await RawSmtp.SubmitAsync(second.Listener("OutgoingMail"), "s@sender.test", rcpt, "committed entry");
        // The world CA is not trusted by this configuration: Required (Verify) defers.
        var log = Path.Combine(config.DataDirectory, "logs", "mail.current");
        TestWorld.WaitUntil(() => File.Exists(log) && File.ReadAllText(log).Contains($"To:<{rcpt}>") && File.ReadAllText(log).Contains("Delayed:"),
            TimeSpan.FromSeconds(30), "the deferral");
        var text = File.ReadAllText(log);
        Assert.Contains("Destination Controls for domain (good.test): TLS Required (Verify) (good.test entry)", text);
        Assert.Contains("unable to get local issuer certificate", text);
        second.Stop();
        // Editing the file itself wins again at the next start (it is imported as a new version).
        config.DestinationControls.Default.MaxMessagesPerConnection = 7;
        File.WriteAllText(file, config.ToJson());
        using var third = PosternProcess.Serve(config);
        Assert.Contains("committed as version 3", third.Output);
        third.Stop();
    }

    [Fact]
    public async Task A_commit_is_applied_by_a_running_gateway_without_a_restart()
    {
        var config = _world.NewConfig("cfg-live");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);
        // Before: live.test is not ours.
        await using (var c = await RawSmtp.ConnectAsync(gw.Public))
        {
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            await c.CommandAsync("MAIL FROM:<s@sender.test>");
            Assert.StartsWith("550 5.7.1", await c.CommandAsync("RCPT TO:<u@live.test>"));
        }
        var changed = PosternConfig.Parse(File.ReadAllText(file), "file");
        changed.DestinationControls.Entries.Add(new DestinationEntry { Domain = "good.test", Tls = TlsLevel.RequiredVerify });
        changed.RecipientAccessTable.Add(new RatEntry { Domain = "live.test" });
        var importFile = Path.Combine(config.DataDirectory, "changed.json");
        File.WriteAllText(importFile, changed.ToJson());
        Cli(0, "config", "import", importFile, "--config", file);
        Cli(0, "commit", "--comment", "live change", "--config", file);
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by", "live change)");

        // After: new sessions see the new RAT; deliveries use the new Destination Controls entry.
        await using (var c = await RawSmtp.ConnectAsync(gw.Public))
        {
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            await c.CommandAsync("MAIL FROM:<s@sender.test>");
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@live.test>"));
        }
        var rcpt = TestWorld.Unique("live") + "@good.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "after the commit");
        gw.WaitForLogLine("Destination Controls for domain (good.test): TLS Required (Verify) (good.test entry)");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>", "unable to get local issuer certificate");

        // A version naming a file that does not exist is not applied, and the log says why.
        using (var store = new SqliteConfigStore(SqliteConfigStore.PathFor(Path.GetFullPath(config.DataDirectory))))
        {
            var broken = PosternConfig.Parse(changed.ToJson(), "copy");
            broken.Listeners[0].CertificateFile = "/nonexistent/c.pem";
            broken.Listeners[0].PrivateKeyFile = "/nonexistent/k.pem";
            var service = new ConfigService(store);
            service.Stage(broken);
            service.Commit("names a missing certificate file");   // valid as a document; the files are checked when applied
        }
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "configuration version 2 NOT applied", "/nonexistent/c.pem does not exist");
    }

    [Fact]
    public async Task A_commit_moves_adds_and_removes_listeners_live_and_open_sessions_finish()
    {
        var config = _world.NewConfig("cfg-rebind");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);
        var oldPublic = gw.Public;
        var oldPrivate = gw.Private;
        await using var open = await RawSmtp.ConnectAsync(oldPublic);
        await open.ReadReplyAsync();
        Assert.StartsWith("250", await open.CommandAsync("EHLO before.test"));

        // A free port for IncomingMail's new address; a port already taken, for a move that must fail.
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse(TestWorld.ListenAddress), 0);
        probe.Start();
        var freePort = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var changed = PosternConfig.Parse(File.ReadAllText(file), "file");
        changed.Listeners[0].Port = freePort;
        changed.Listeners.RemoveAll(l => l.Name == "OutgoingMail");
        changed.Listeners.Add(new ListenerSettings { Name = "Extra", Type = ListenerType.Private, Address = TestWorld.ListenAddress, Port = 0, DefaultPolicy = "RELAYED" });
        var importFile = Path.Combine(config.DataDirectory, "rebind.json");
        File.WriteAllText(importFile, changed.ToJson());
        Cli(0, "config", "import", importFile, "--config", file);
        Cli(0, "commit", "--comment", "move, add, remove", "--config", file);
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), $"listener IncomingMail moved from {oldPublic} to {TestWorld.ListenAddress}:{freePort} by configuration version 1");
        gw.WaitForLogLine("listener OutgoingMail removed by configuration version 1");
        gw.WaitForLogLine("listener Extra (private) on", "added by configuration version 1");
        Assert.DoesNotContain("take effect only after a restart", gw.MailLogText());

        // The session opened before goes on; the new address answers; the old ones refuse.
        Assert.StartsWith("250", await open.CommandAsync("NOOP"));
        Assert.StartsWith("250", await open.CommandAsync("MAIL FROM:<s@sender.test>"));
        await using (var moved = await RawSmtp.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(TestWorld.ListenAddress), freePort)))
            Assert.StartsWith("220", await moved.ReadReplyAsync());
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(async () => await RawSmtp.ConnectAsync(oldPublic));
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(async () => await RawSmtp.ConnectAsync(oldPrivate));
        var extra = gw.Gateway.Listeners.Single(l => l.Settings.Name == "Extra");
        var rcpt = TestWorld.Unique("extra") + "@good.test";
        await RawSmtp.SubmitAsync(extra.LocalEndPoint, "s@sender.test", rcpt, "through a listener added live");
        _world.WaitForMail(rcpt);

        // A move to a port that is taken fails whole: the listener stays where it is, and says so.
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse(TestWorld.ListenAddress), 0);
        squatter.Start();
        var taken = ((System.Net.IPEndPoint)squatter.LocalEndpoint).Port;
        changed.Listeners[0].Port = taken;
        File.WriteAllText(importFile, changed.ToJson());
        Cli(0, "config", "import", importFile, "--config", file);
        Cli(0, "commit", "--comment", "move onto a taken port", "--config", file);
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), $"configuration version 2: listener IncomingMail NOT moved, it stays on {TestWorld.ListenAddress}:{freePort}");
        await using (var still = await RawSmtp.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(TestWorld.ListenAddress), freePort)))
            Assert.StartsWith("220", await still.ReadReplyAsync());
        squatter.Stop();
    }

    [Fact]
    public async Task Operators_suspend_and_resume_delivery_and_listeners_and_see_status()
    {
        var config = _world.NewConfig("ops");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);

        Assert.Contains("Delivery to good.test suspended.", Cli(0, "suspenddel", "good.test", "--config", file));
        gw.WaitForLogLine("Operator: delivery good.test suspended (by");
        var rcpt = TestWorld.Unique("held") + "@good.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "held");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>", "delivery to good.test suspended by the administrator");
        var held = Assert.Single(await gw.Gateway.Store.ListAsync());
        Assert.Equal(0, held.Recipients[0].Attempts);   // held, not attempted
        Assert.DoesNotContain("(MX mx1.good.test for good.test)", gw.MailLogText());

        var status = System.Text.Json.JsonDocument.Parse(Cli(0, "status", "--json", "--config", file)).RootElement;
        Assert.True(status.GetProperty("running").GetBoolean());
        Assert.Equal(1, status.GetProperty("queue").GetProperty("messages").GetInt32());
        Assert.Equal("good.test", status.GetProperty("holds")[0].GetProperty("target").GetString());
        Assert.Equal(2, status.GetProperty("gateway").GetProperty("listeners").GetArrayLength());

        var host = System.Text.Json.JsonDocument.Parse(Cli(0, "hoststatus", "good.test", "--json", "--config", file)).RootElement;
        Assert.Equal("Default", host.GetProperty("destination").GetProperty("entry").GetString());
        Assert.Contains("suspended by the administrator", host.GetProperty("delayed")[0].GetProperty("lastResponse").GetString());
        var top = System.Text.Json.JsonDocument.Parse(Cli(0, "tophosts", "--json", "--config", file)).RootElement;
        Assert.Equal("good.test", top[0].GetProperty("domain").GetString());
        Assert.Equal(1, top[0].GetProperty("pending").GetInt32());

        Cli(0, "resumedel", "good.test", "--config", file);
        gw.WaitForLogLine("Operator: delivery good.test resumed");
        Assert.Contains("recipient(s) to good.test are due now", Cli(0, "delivernow", "good.test", "--config", file));
        _world.WaitForMail(rcpt);
        // hoststatus now tells how TLS went with good.test last (from the running gateway's status file).
        System.Text.Json.JsonElement lastTls = default;
        TestWorld.WaitUntil(() =>
        {
            lastTls = System.Text.Json.JsonDocument.Parse(Cli(0, "hoststatus", "good.test", "--json", "--config", file)).RootElement.GetProperty("lastTls");
            return lastTls.ValueKind == System.Text.Json.JsonValueKind.Object;
        }, TimeSpan.FromSeconds(10), "hoststatus to show the last TLS outcome");
        Assert.Equal("mx1.good.test", lastTls.GetProperty("mxHost").GetString());
        Assert.StartsWith("TLSv1.", lastTls.GetProperty("protocol").GetString());
        Assert.Equal("Preferred", lastTls.GetProperty("level").GetString());
        Assert.Matches(@"last TLS outcome: (Encrypted|Certificate(Not)?Verified) \(TLSv1\.\d\).*TLS Preferred; MX mx1.good.test \[127\.0\.1\.10\]", Cli(0, "hoststatus", "good.test", "--config", file));

        Cli(0, "suspendlistener", "IncomingMail", "--config", file);
        gw.WaitForLogLine("Operator: listener incomingmail suspended");
        await using (var c = await RawSmtp.ConnectAsync(gw.Public))
            Assert.StartsWith("421 4.3.2", await c.ReadReplyAsync());
        Cli(0, "resumelistener", "IncomingMail", "--config", file);
        gw.WaitForLogLine("Operator: listener incomingmail resumed");
        await using (var c = await RawSmtp.ConnectAsync(gw.Public))
            Assert.StartsWith("220", await c.ReadReplyAsync());
        Assert.Contains("there is no listener 'Nope'", Cli(2, "suspendlistener", "Nope", "--config", file));
    }

    [Fact]
    public async Task SIGHUP_commits_a_changed_file_and_the_gateway_applies_it()
    {
        var config = _world.HoldingConfig("cfg-hup");
        var file = ConfigFile(config);
        using var gateway = PosternProcess.Serve(config);
        var log = Path.Combine(config.DataDirectory, "logs", "mail.current");
        config.RecipientAccessTable.Add(new RatEntry { Domain = "hup.test" });
        File.WriteAllText(file, config.ToJson());
        gateway.Signal("HUP");
        TestWorld.WaitUntil(() => gateway.Output.Contains("SIGHUP: " + Path.GetFullPath(file) + " committed as version 2"), TimeSpan.FromSeconds(20), "the reload");
        TestWorld.WaitUntil(() => File.ReadAllText(log).Contains("Configuration version 2 applied"), TimeSpan.FromSeconds(20), "the new version applied");
        await using (var c = await RawSmtp.ConnectAsync(gateway.Listener("IncomingMail")))
        {
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            await c.CommandAsync("MAIL FROM:<s@sender.test>");
            Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@hup.test>"));
        }
        // A broken file is refused and changes nothing.
        File.WriteAllText(file, "{ not json");
        gateway.Signal("HUP");
        TestWorld.WaitUntil(() => File.ReadAllText(log).Contains("SIGHUP: configuration file refused, nothing changed"), TimeSpan.FromSeconds(20), "the refusal");
        gateway.Stop();
    }

    [Fact]
    public void The_destconfig_dialogue_asks_the_appliances_questions_and_stages_the_answers()
    {
        var file = ConfigFile(_world.HoldingConfig("cfg-dialogue"));
        // new, domain, concurrency? y, limit 20, messages? n, TLS? y, level 7 (refused) then 5,
        // DANE? y, 2 (opportunistic), MTA STS? y, 2 (on), bounce verification? n, bounce profile? n, then leave.
        const string answers = "new\nexample.test\ny\n20\nn\ny\n7\n5\ny\n2\ny\n2\nn\nn\nlist\n\n";
        var (code, output) = TestWorld.Run("dotnet", [PosternProcess.Dll, "destconfig", "--config", file], TimeSpan.FromSeconds(60), stdin: answers);
        Assert.True(code == 0, output);
        Assert.Contains("Choose the operation you want to perform:", output);
        Assert.Contains("Enter the domain you wish to configure.", output);
        Assert.Contains("Do you wish to configure a concurrency limit for example.test? [Y]>", output);
        Assert.Contains("Do you wish to apply a specific TLS setting for this domain? [N]>", output);
        Assert.Contains("Do you want to use TLS support?\n1. No\n2. Preferred\n3. Required\n4. Preferred - Verify\n5. Required - Verify\n6. Required - Verify Hosted Domains\n[2]>", output.Replace("\r", ""));
        Assert.Contains("Please enter a number from 1 to 6.", output);   // "7" asked again with the reason
        Assert.Contains("You have chosen to enable TLS. Please use the 'certconfig' command", output);
        Assert.Contains("Do you wish to configure DANE support? [N]>", output);
        Assert.Contains("Do you wish to configure MTA STS support? [N]>", output);
        Assert.Contains("Do you want to use MTA STS support?\n1. Off\n2. On\n[1]>", output.Replace("\r", ""));
        Assert.Contains("MTA STS will not be enforced for domains that have SMTP Routes configured.", output);
        Assert.Contains("example.test is staged.", output);
        Assert.Contains("example.test                 TLS Required (Verify), DANE opportunistic, MTA-STS on, 20 connections", output);
        Cli(0, "commit", "--comment", "from the dialogue", "--config", file);
        var list = System.Text.Json.JsonDocument.Parse(Cli(0, "destconfig", "list", "--json", "--config", file)).RootElement;
        var entry = list.EnumerateArray().Single(e => e.GetProperty("entry").GetString() == "example.test");
        Assert.Equal("requiredVerify", entry.GetProperty("tls").GetString());
        Assert.Equal("opportunistic", entry.GetProperty("dane").GetString());
        Assert.Equal("on", entry.GetProperty("mtaSts").GetString());
        // Input that ends mid-dialogue changes nothing and says so.
        var (code2, output2) = TestWorld.Run("dotnet", [PosternProcess.Dll, "destconfig", "--config", file], TimeSpan.FromSeconds(60), stdin: "new\nother.test\ny\n");
        Assert.Equal(1, code2);
        Assert.Contains("destconfig: input ended", output2);
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));
    }

    [Fact]
    public async Task Listenerconfig_and_alertconfig_stage_changes_a_running_gateway_applies()
    {
        var config = _world.HoldingConfig("cfg-listener");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);
        Assert.Contains("You have chosen to enable TLS", Cli(0, "listenerconfig", "policy", "STRICT", "--action", "accept", "--tls", "3", "--config", file));
        Cli(0, "listenerconfig", "hat-set", "IncomingMail", "LOOPBACK", "--senders", "127.0.0.0/8", "--policy", "STRICT", "--config", file);
        Assert.Contains("there is no listener 'Nope'", Cli(2, "listenerconfig", "hat-set", "Nope", "X", "--senders", "127.0.0.1", "--policy", "STRICT", "--config", file));
        Assert.Contains("is not an IP, CIDR or host-name pattern", Cli(2, "listenerconfig", "hat-set", "IncomingMail", "BAD", "--senders", "not an address!", "--policy", "STRICT", "--config", file));
        Assert.Contains("mail flow policy 'STRICT' is used by IncomingMail sender group LOOPBACK", Cli(2, "listenerconfig", "policy-delete", "STRICT", "--config", file));
        Cli(0, "listenerconfig", "policy", "TRIAL", "--action", "reject", "--config", file);
        Assert.Contains("Mail flow policy TRIAL deleted.", Cli(0, "listenerconfig", "policy-delete", "TRIAL", "--config", file));
        var listed = Cli(0, "listenerconfig", "list", "--config", file);
        Assert.DoesNotContain("policy TRIAL", listed);
        Assert.Contains("sender group LOOPBACK: 127.0.0.0/8 -> STRICT", listed);
        Assert.Contains("policy STRICT: accept, TLS required", listed);

        Cli(0, "alertconfig", "new", "admin@sender.test", "--severities", "warning,critical", "--types", "system", "--config", file);
        Cli(0, "alertconfig", "throttle", "120", "--config", file);
        Assert.Contains("severity 'loud' is not one of", Cli(2, "alertconfig", "new", "x@sender.test", "--severities", "loud", "--config", file));
        var alerts = System.Text.Json.JsonDocument.Parse(Cli(0, "alertconfig", "list", "--json", "--config", file)).RootElement;
        Assert.Equal(120, alerts.GetProperty("throttleSeconds").GetInt32());
        Assert.Equal("admin@sender.test", alerts.GetProperty("recipients")[0].GetProperty("address").GetString());

        Cli(0, "commit", "--comment", "TLS required from loopback", "--config", file);
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied");
        // A new session from loopback now matches LOOPBACK and must start TLS first.
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        await c.ReadReplyAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.StartsWith("530", await c.CommandAsync("MAIL FROM:<s@sender.test>"));
        gw.WaitForLogLine("SG LOOPBACK match 127.0.0.0/8 policy STRICT");
    }

    [Fact]
    public void Destconfig_setup_export_and_import_change_the_global_settings_and_the_whole_table()
    {
        var config = _world.HoldingConfig("cfg-setup");
        var file = ConfigFile(config);
        Assert.Equal(0, PosternProcess.Cli(["certconfig", "create", "--cn", "client.postern.test", "--config", file]).ExitCode);
        Cli(0, "destconfig", "new", "a.test", "--tls", "requiredVerify", "--config", file);
        Cli(0, "destconfig", "new", ".b.test", "--tls", "2", "--mta-sts", "on", "--config", file);
        Assert.Contains("there is no stored certificate 'nope'", Cli(2, "destconfig", "setup", "--client-certificate", "nope", "--config", file));
        Assert.Contains("is not on or off", Cli(2, "destconfig", "setup", "--alert-on-tls-failure", "maybe", "--config", file));
        Cli(0, "destconfig", "setup", "--alert-on-tls-failure", "on", "--client-certificate", "client.postern.test", "--config", file);
        Cli(0, "commit", "--comment", "two destinations, global settings", "--config", file);

        var exported = Path.Combine(config.DataDirectory, "table.json");
        Cli(0, "destconfig", "export", exported, "--config", file);
        var table = System.Text.Json.JsonDocument.Parse(File.ReadAllText(exported)).RootElement;
        Assert.True(table.GetProperty("alertOnRequiredTlsFailure").GetBoolean());
        Assert.Equal("client.postern.test", table.GetProperty("clientCertificate").GetString());
        Assert.Equal(2, table.GetProperty("entries").GetArrayLength());

        Cli(0, "destconfig", "delete", "a.test", "--config", file);
        Cli(0, "destconfig", "setup", "--alert-on-tls-failure", "off", "--client-certificate", "none", "--config", file);
        Cli(0, "commit", "--config", file);
        Assert.DoesNotContain("a.test ", Cli(0, "destconfig", "list", "--config", file));

        // A broken file is refused with the reason; a table that does not validate is refused whole.
        var broken = Path.Combine(config.DataDirectory, "broken.json");
        File.WriteAllText(broken, "{ \"entries\": [ { \"domain\": ");
        Assert.Contains("is not a destination table", Cli(2, "destconfig", "import", broken, "--config", file));
        File.WriteAllText(broken, File.ReadAllText(exported).Replace("\"a.test\"", "\"not a domain!\""));
        Assert.Contains("'not a domain!': not a domain or .domain pattern", Cli(2, "destconfig", "import", broken, "--config", file));
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));

        // The dialogue's IMPORT puts the exported table back, global settings included.
        var (code, output) = TestWorld.Run("dotnet", [PosternProcess.Dll, "destconfig", "--config", file], TimeSpan.FromSeconds(60), stdin: $"import\n{exported}\n\n");
        Assert.True(code == 0, output);
        Assert.Contains("- IMPORT - Import tables from a file.", output);
        Assert.Contains("2 destination(s) and the Default entry imported", output);
        Cli(0, "commit", "--comment", "table restored", "--config", file);
        Assert.Contains("a.test ", Cli(0, "destconfig", "list", "--config", file));

        // SETUP in the dialogue: the alert question and the certificate choice.
        (code, output) = TestWorld.Run("dotnet", [PosternProcess.Dll, "destconfig", "--config", file], TimeSpan.FromSeconds(60), stdin: "setup\nn\ny\n1\n\n");
        Assert.True(code == 0, output);
        Assert.Contains("Do you want to send an alert when a required TLS connection fails? [Y]>", output);
        Assert.Contains("Choose the certificate for outbound TLS connections:\n1. client.postern.test", output.Replace("\r", ""));
        Cli(0, "commit", "--config", file);
        var inForce = System.Text.Json.JsonDocument.Parse(Cli(0, "config", "show", "4", "--config", file)).RootElement.GetProperty("destinationControls");
        Assert.False(inForce.GetProperty("alertOnRequiredTlsFailure").GetBoolean());
        Assert.Equal("client.postern.test", inForce.GetProperty("clientCertificate").GetString());
    }

    [Fact]
    public void Config_export_with_certificates_round_trips_to_a_new_machine_without_keys_in_clear()
    {
        var config = _world.HoldingConfig("cfg-export");
        var file = ConfigFile(config);
        Assert.Equal(0, PosternProcess.Cli(["certconfig", "create", "--cn", "mx.export.test", "--config", file]).ExitCode);
        Assert.Equal(0, PosternProcess.Cli(["certconfig", "assign", "mx.export.test", "--listener", "IncomingMail", "--config", file]).ExitCode);
        Cli(0, "destconfig", "new", "export.test", "--tls", "requiredVerify", "--config", file);
        Cli(0, "commit", "--comment", "before the move", "--config", file);

        var bundle = Path.Combine(config.DataDirectory, "export.json");
        Assert.Contains("at least 8 characters", Cli(2, "config", "export", bundle, "--with-certificates", "--passphrase", "short", "--config", file));
        Assert.Contains("1 certificate(s) written", Cli(0, "config", "export", bundle, "--with-certificates", "--passphrase", "moving-day-2026", "--config", file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(bundle));
        Assert.DoesNotContain("PRIVATE KEY", File.ReadAllText(bundle));

        // Another machine: a fresh data folder.
        var other = _world.HoldingConfig("cfg-import");
        var otherFile = ConfigFile(other);
        Assert.Contains("the passphrase is wrong", Cli(2, "config", "import", bundle, "--passphrase", "not-the-passphrase", "--config", otherFile));
        Assert.Contains("No certificates are stored.", PosternProcess.Cli(["certconfig", "list", "--config", otherFile]).Output);
        Assert.Contains("1 certificate(s) added to the store", Cli(0, "config", "import", bundle, "--passphrase", "moving-day-2026", "--config", otherFile));
        Cli(0, "commit", "--comment", "moved in", "--config", otherFile);
        Assert.Contains("mx.export.test", PosternProcess.Cli(["certconfig", "list", "--config", otherFile]).Output);
        Assert.Contains("assigned to listener IncomingMail", PosternProcess.Cli(["certconfig", "list", "--config", otherFile]).Output);
        Assert.Contains("export.test ", Cli(0, "destconfig", "list", "--config", otherFile));
        // Importing again skips what is there; a different certificate under the same name is refused.
        Assert.Contains("0 certificate(s) added to the store (1 were here already)", Cli(0, "config", "import", bundle, "--passphrase", "moving-day-2026", "--config", otherFile));
        Cli(0, "clearchanges", "--config", otherFile);
        var clash = _world.HoldingConfig("cfg-clash");
        var clashFile = ConfigFile(clash);
        Assert.Equal(0, PosternProcess.Cli(["certconfig", "create", "--cn", "mx.export.test", "--config", clashFile]).ExitCode);
        Assert.Contains("a different certificate named 'mx.export.test' is stored here already", Cli(2, "config", "import", bundle, "--passphrase", "moving-day-2026", "--config", clashFile));
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", clashFile));
    }

    [Fact]
    public void Interfaceconfig_lists_the_addresses_served_on_and_stages_the_HTTPS_service()
    {
        var config = _world.HoldingConfig("cfg-interfaces");
        var file = ConfigFile(config);
        var list = System.Text.Json.JsonDocument.Parse(Cli(0, "interfaceconfig", "list", "--json", "--config", file)).RootElement;
        var services = list.EnumerateArray().Single(i => i.GetProperty("address").GetString() == TestWorld.ListenAddress).GetProperty("services");
        Assert.Equal(2, services.GetArrayLength());   // the two SMTP listeners; HTTPS is off in tests
        Assert.Contains("there is no stored certificate 'nope'", Cli(2, "interfaceconfig", "https", "--enable", "on", "--certificate", "nope", "--config", file));
        Assert.Contains("is not an IP address", Cli(2, "interfaceconfig", "https", "--enable", "on", "--address", "25", "--config", file));
        Assert.Equal(0, PosternProcess.Cli(["certconfig", "create", "--cn", "admin.postern.test", "--config", file]).ExitCode);
        Cli(0, "interfaceconfig", "https", "--enable", "on", "--address", "127.0.2.9", "--port", "8443", "--certificate", "admin.postern.test", "--config", file);
        Assert.Contains("HTTPS port 8443, certificate admin.postern.test", Cli(0, "interfaceconfig", "list", "--config", file));
        Cli(0, "commit", "--comment", "https on 127.0.2.9", "--config", file);
        var web = System.Text.Json.JsonDocument.Parse(Cli(0, "config", "show", "1", "--config", file)).RootElement.GetProperty("web");
        Assert.True(web.GetProperty("enabled").GetBoolean());
        Assert.Equal("127.0.2.9", web.GetProperty("address").GetString());
        Assert.Equal("admin.postern.test", web.GetProperty("certificate").GetString());
    }

    [Fact]
    public void The_destconfig_dialogue_works_on_a_terminal()
    {
        // util-linux `script` gives the dialogue a pseudo-terminal, as an administrator's ssh session would.
        var file = ConfigFile(_world.HoldingConfig("cfg-pty"));
        var command = $"dotnet {PosternProcess.Dll} destconfig --config {file}";
        var (code, output) = TestWorld.Run("script", ["-qec", command, "/dev/null"], TimeSpan.FromSeconds(60),
            stdin: "new\npty.test\nn\nn\ny\n6\nn\nn\nn\nn\n\n");
        Assert.True(code == 0, output);
        Assert.Contains("Do you want to use TLS support?", output);
        Assert.Contains("pty.test is staged.", output);
        Assert.Contains("Required - Verify Hosted Domains", Cli(0, "destconfig", "list", "--config", file));
    }
}
