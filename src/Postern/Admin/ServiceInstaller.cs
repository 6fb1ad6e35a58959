using System.CommandLine;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Postern.Admin;

/// <summary>
/// Running as a service, as administrators install an MTA: the systemd unit
/// (packaging/postern.service, embedded), `postern install-service`, and sd_notify readiness.
/// </summary>
public static class ServiceInstaller
{
    /// <summary>sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (nothing when not under systemd).</summary>
    public static void Notify(string state)
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path)) return;
        try
        {
            if (path[0] == '@') path = "\0" + path[1..];   // abstract namespace
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.ASCII.GetBytes(state), new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) { Console.Error.WriteLine($"postern: sd_notify {state} failed: {e.Message}"); }
    }

    public static string UnitFile()
    {
        using var s = typeof(ServiceInstaller).Assembly.GetManifestResourceStream("postern.service")
            ?? throw new InvalidOperationException("the systemd unit is not embedded");
        return new StreamReader(s).ReadToEnd();
    }

    public static Command Build()
    {
        var root = new Option<DirectoryInfo?>("--root") { Description = "Install under this directory instead of / (packaging, tests)" };
        var binary = new Option<FileInfo?>("--binary") { Description = "The postern binary to install (default: this one)" };
        var noStart = new Option<bool>("--no-systemctl") { Description = "Do not run useradd and systemctl" };
        var command = new Command("install-service", "Install Postern as a systemd service: binary, unit, user, /etc/postern/postern.json") { root, binary, noStart };
        command.SetAction(p =>
        {
            var prefix = p.GetValue(root)?.FullName ?? "/";
            string At(string path) => Path.Combine(prefix, path.TrimStart('/'));
            var source = p.GetValue(binary)?.FullName ?? Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell where this binary is");
            if (Path.GetFileName(source) is "dotnet" or "dotnet.exe")
            {
                Console.Error.WriteLine("postern: run install-service from the published single-file binary, or give --binary (see the README)");
                return 2;
            }
            Directory.CreateDirectory(At("/usr/local/bin"));
            File.Copy(source, At("/usr/local/bin/postern"), overwrite: true);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(At("/usr/local/bin/postern"), (UnixFileMode)0b111_101_101);
            Directory.CreateDirectory(At("/etc/systemd/system"));
            File.WriteAllText(At("/etc/systemd/system/postern.service"), UnitFile());
            Directory.CreateDirectory(At("/etc/postern"));
            var configFile = At("/etc/postern/postern.json");
            if (!File.Exists(configFile))
            {
                var config = PosternConfig.CreateDefault();
                config.DataDirectory = "/var/lib/postern";
                File.WriteAllText(configFile, config.ToJson() + "\n");
                Console.WriteLine($"wrote {configFile} (the embedded default with data in /var/lib/postern; edit it, then systemctl reload postern)");
            }
            Console.WriteLine($"installed {At("/usr/local/bin/postern")} and {At("/etc/systemd/system/postern.service")}");
            if (p.GetValue(noStart) || p.GetValue(root) is not null) return 0;
            Run("useradd", "--system --home-dir /var/lib/postern --shell /usr/sbin/nologin postern", allowFailure: true);
            Run("systemctl", "daemon-reload");
            Console.WriteLine("now: systemctl enable --now postern");
            return 0;
        });
        return command;
    }

    private static void Run(string file, string args, bool allowFailure = false)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { UseShellExecute = false })!;
            process.WaitForExit();
            if (process.ExitCode != 0 && !allowFailure) Console.Error.WriteLine($"postern: {file} {args} exited {process.ExitCode}");
        }
        catch (System.ComponentModel.Win32Exception e) { Console.Error.WriteLine($"postern: {file} is not available: {e.Message}"); }
    }
}
