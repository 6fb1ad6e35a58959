using System.Diagnostics;
using System.Text;
using Postern.Admin;

namespace Postern.Tests.Support;

/// <summary>
/// The shared test world (testworld/world.sh): signed DNS under nsd + unbound, and a
/// receiving Postfix with STARTTLS. Started once per test run; idempotent.
/// </summary>
public sealed class TestWorld
{
    public const string Resolver = "127.0.10.1:53";
    public const string GoodMx = "127.0.1.10";
    public const string ListenAddress = "127.0.2.1";

    private static readonly Lazy<TestWorld> Shared = new(() => new TestWorld(), LazyThreadSafetyMode.ExecutionAndPublication);
    public static TestWorld Instance => Shared.Value;

    public string RepoRoot { get; }
    public string WorldDirectory { get; }
    public string MailDirectory => Path.Combine(WorldDirectory, "mail");
    public string CaCertificate => Path.Combine(WorldDirectory, "certs", "ca.crt");

    private TestWorld()
    {
        RepoRoot = FindRepoRoot();
        WorldDirectory = Environment.GetEnvironmentVariable("POSTERN_WORLD") ?? "/tmp/postern-world";
        var result = Run("bash", [Path.Combine(RepoRoot, "testworld", "world.sh"), "up"], TimeSpan.FromMinutes(10));
        if (result.ExitCode != 0) throw new InvalidOperationException($"test world did not start:\n{result.Output}");
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Postern.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root");
    }

    public static (int ExitCode, string Output) Run(string file, IEnumerable<string> args, TimeSpan timeout, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (stdin is not null) { p.StandardInput.Write(stdin); p.StandardInput.Close(); }
        if (!p.WaitForExit(timeout)) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout}:\n{output}"); }
        p.WaitForExit();
        lock (output) return (p.ExitCode, output.ToString());
    }

    /// <summary>A configuration for one test: its own data folder, listeners on free ports, the world's resolver.</summary>
    public PosternConfig NewConfig(string name, Action<PosternConfig>? tweak = null)
    {
        var data = Path.Combine(Path.GetTempPath(), "postern-tests", $"{name}-{Guid.NewGuid():N}");
        var config = new PosternConfig
        {
            Hostname = "postern.test",
            DataDirectory = data,
            LogLevel = LogLevel.Debug,
            Dns = new DnsSettings { Servers = { Resolver }, TimeoutSeconds = 3 },
            MailFlowPolicies =
            {
                ["ACCEPTED"] = new MailFlowPolicy { Action = PolicyAction.Accept, Tls = InboundTls.Preferred },
                ["RELAYED"] = new MailFlowPolicy { Action = PolicyAction.Relay, Tls = InboundTls.Preferred },
                ["BLOCKED"] = new MailFlowPolicy { Action = PolicyAction.Reject },
            },
            RecipientAccessTable = { new RatEntry { Domain = "good.test" }, new RatEntry { Domain = ".good.test" } },
            Listeners =
            {
                new ListenerSettings { Name = "IncomingMail", Type = ListenerType.Public, Address = ListenAddress, Port = 0, DefaultPolicy = "ACCEPTED" },
                new ListenerSettings
                {
                    Name = "OutgoingMail", Type = ListenerType.Private, Address = ListenAddress, Port = 0, DefaultPolicy = "BLOCKED",
                    SenderGroups = { new SenderGroup { Name = "RELAYLIST", Senders = { "127.0.0.0/8" }, Policy = "RELAYED" } },
                },
            },
            BounceProfiles = { ["Default"] = new BounceProfile { InitialRetrySeconds = 2, MaxRetrySeconds = 4, MaxTimeInQueueSeconds = 3600 } },
            // Off unless a test turns it on (on port 0): parallel gateways never fight over 8443.
            Web = { Enabled = false, Port = 0 },
            // Any free port: parallel test gateways must never fight over 9187.
            Metrics = { Port = 0 },
        };
        tweak?.Invoke(config);
        config.Validate();
        return config;
    }

    /// <summary>
    /// A configuration whose deliveries go to a closed port and retry only after ten minutes,
    /// so accepted messages stay in the queue for inspection.
    /// </summary>
    public PosternConfig HoldingConfig(string name, Action<PosternConfig>? tweak = null) => NewConfig(name, c =>
    {
        c.Delivery.Port = 2599;
        c.DefaultBounceProfile.InitialRetrySeconds = 600;
        c.DefaultBounceProfile.MaxRetrySeconds = 600;
        tweak?.Invoke(c);
    });

    /// <summary>A unique local part, so tests sharing the receiving MTA never see each other's mail.</summary>
    public static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    /// <summary>Waits for a message delivered to recipient in the receiving Postfix's Maildir for its domain.</summary>
    public string WaitForMail(string recipient, TimeSpan? timeout = null, Func<string, bool>? match = null)
    {
        var found = TryWaitForMail(recipient, timeout ?? TimeSpan.FromSeconds(30), match);
        return found ?? throw new TimeoutException($"no mail for {recipient} arrived in {MailDirectory}");
    }

    public string? TryWaitForMail(string recipient, TimeSpan timeout, Func<string, bool>? match = null)
    {
        var domain = recipient[(recipient.IndexOf('@') + 1)..];
        var dir = Path.Combine(MailDirectory, domain, "new");
        var deadline = DateTime.UtcNow + timeout;
        var needle = $"Delivered-To: {recipient}\n";
        while (true)
        {
            if (Directory.Exists(dir))
                foreach (var f in Directory.EnumerateFiles(dir))
                {
                    string text;
                    try { text = File.ReadAllText(f); } catch (IOException) { continue; }
                    if (text.Contains(needle, StringComparison.OrdinalIgnoreCase) && (match is null || match(text))) return text;
                }
            if (DateTime.UtcNow > deadline) return null;
            Thread.Sleep(100);
        }
    }

    public static void WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }
}
