using System.Diagnostics;
using System.Net;
using System.Text;
using Postern.Admin;

namespace Postern.Tests.Support;

/// <summary>`postern` as a separate process: for restarts, kill -9 and the CLI.</summary>
public sealed class PosternProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public static string Dll
    {
        get
        {
            // tests/Postern.Tests/bin/<Configuration>/net10.0 → src/Postern/bin/<Configuration>/net10.0/postern.dll
            var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
            var path = Path.Combine(TestWorld.Instance.RepoRoot, "src", "Postern", "bin", configuration, "net10.0", "postern.dll");
            return File.Exists(path) ? path : Path.Combine(AppContext.BaseDirectory, "postern.dll");
        }
    }

    private PosternProcess(Process process) => _process = process;

    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Writes the configuration to the data folder and starts `postern serve --config`.</summary>
    public static PosternProcess Serve(PosternConfig config)
    {
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Dll);
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(file);
        var p = new PosternProcess(Process.Start(psi)!);
        p._process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (p._output) p._output.AppendLine(e.Data); };
        p._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (p._output) p._output.AppendLine(e.Data); };
        p._process.BeginOutputReadLine();
        p._process.BeginErrorReadLine();
        TestWorld.WaitUntil(() => p.Output.Contains("Postern running") || p._process.HasExited, TimeSpan.FromSeconds(30), "postern serve to start");
        if (p._process.HasExited) throw new InvalidOperationException("postern serve exited:\n" + p.Output);
        return p;
    }

    /// <summary>The endpoint the named listener bound (read from the process's output).</summary>
    public IPEndPoint Listener(string name)
    {
        var line = Output.Split('\n').First(l => l.StartsWith($"listener {name} ", StringComparison.Ordinal));
        return IPEndPoint.Parse(line.Split(" on ")[1].Trim());
    }

    public void Signal(string signal) => Process.Start("kill", [$"-{signal}", _process.Id.ToString()])!.WaitForExit();

    public void Kill9()
    {
        Process.Start("kill", ["-9", _process.Id.ToString()])!.WaitForExit();
        _process.WaitForExit();
    }

    public void Stop()
    {
        Process.Start("kill", ["-TERM", _process.Id.ToString()])!.WaitForExit();
        if (!_process.WaitForExit(TimeSpan.FromSeconds(30))) _process.Kill(true);
    }

    public static (int ExitCode, string Output) Cli(params string[] args) =>
        TestWorld.Run("dotnet", new[] { Dll }.Concat(args), TimeSpan.FromSeconds(60));

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(true);
        _process.Dispose();
    }
}
