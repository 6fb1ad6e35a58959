using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>Postern as administrators install an MTA: the single-file binary, the systemd unit, readiness, reload by SIGHUP.</summary>
public sealed class ServiceTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    [Fact]
    public async Task The_published_single_file_binary_installs_signals_readiness_and_reloads_on_SIGHUP()
    {
        var dir = Path.Combine(Path.GetTempPath(), "postern-tests", "publish-" + Guid.NewGuid().ToString("N")[..8]);
        var project = Path.Combine(_world.RepoRoot, "src", "Postern", "Postern.csproj");
        var (code, output) = TestWorld.Run("dotnet", ["publish", project, "-c", "Release", "-r", "linux-x64", "--self-contained",
            "-p:PublishSingleFile=true", "-p:IncludeNativeLibrariesForSelfExtract=true", "-p:DebugType=none", "-o", dir, "-nologo", "-v", "quiet"], TimeSpan.FromMinutes(5));
        Assert.True(code == 0, output);
        var binary = Path.Combine(dir, "postern");
        Assert.Equal(["postern"], Directory.GetFiles(dir).Select(Path.GetFileName));   // one file, nothing beside it

        // install-service into a scratch root: binary, unit, a starting configuration.
        var root = Path.Combine(dir, "root");
        var (installCode, installed) = TestWorld.Run(binary, ["install-service", "--root", root], TimeSpan.FromSeconds(60));
        Assert.True(installCode == 0, installed);
        Assert.True(File.Exists(Path.Combine(root, "usr/local/bin/postern")));
        var unit = File.ReadAllText(Path.Combine(root, "etc/systemd/system/postern.service"));
        Assert.Equal(ServiceInstaller.UnitFile(), unit);
        foreach (var line in new[] { "Type=notify", "User=postern", "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "StateDirectory=postern", "AmbientCapabilities=CAP_NET_BIND_SERVICE" })
            Assert.Contains(line, unit);
        Assert.Equal("/var/lib/postern", PosternConfig.Load(Path.Combine(root, "etc/postern/postern.json")).DataDirectory);

        // Run it as systemd would: NOTIFY_SOCKET, READY=1 once the listeners are bound.
        var config = _world.HoldingConfig("service");
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        var notifyPath = Path.Combine(config.DataDirectory, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "serve", "--config", file }) psi.ArgumentList.Add(a);
        psi.Environment["NOTIFY_SOCKET"] = notifyPath;
        psi.Environment["DOTNET_BUNDLE_EXTRACT_BASE_DIR"] = Path.Combine(config.DataDirectory, ".bundle");
        using var process = Process.Start(psi)!;
        var stdout = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            async Task<string> Receive()
            {
                var buffer = new byte[256];
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                var n = await notify.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                return Encoding.ASCII.GetString(buffer, 0, n);
            }
            Assert.Equal("READY=1", await Receive());
            string Out() { lock (stdout) return stdout.ToString(); }
            Assert.Contains("Postern running", Out());
            var listener = System.Net.IPEndPoint.Parse(Out().Split('\n').First(l => l.StartsWith("listener IncomingMail ", StringComparison.Ordinal)).Split(" on ")[1].Trim());

            // Change the file, SIGHUP: committed and applied without a restart.
            config.RecipientAccessTable.Add(new RatEntry { Domain = "reload.test" });
            File.WriteAllText(file, config.ToJson());
            Process.Start("kill", ["-HUP", process.Id.ToString()])!.WaitForExit();
            var log = Path.Combine(config.DataDirectory, "logs", "mail.current");
            TestWorld.WaitUntil(() => File.Exists(log) && File.ReadAllText(log).Contains("Configuration version 2 applied"), TimeSpan.FromSeconds(20), "the reloaded version");
            await using (var c = await RawSmtp.ConnectAsync(listener))
            {
                await c.ReadReplyAsync();
                await c.CommandAsync("EHLO client.test");
                await c.CommandAsync("MAIL FROM:<s@sender.test>");
                Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@reload.test>"));
            }
            Process.Start("kill", ["-TERM", process.Id.ToString()])!.WaitForExit();
            Assert.Equal("STOPPING=1", await Receive());
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited) process.Kill(true);
        }
    }
}
