using Postern.Admin;
using Xunit;

namespace Postern.Tests.Support;

/// <summary>
/// `postern` commands against a test's data directory: its configuration written where the CLI
/// reads it, and a run whose exit status is asserted (the output is in the failure message).
/// </summary>
public static class CliRuns
{
    /// <summary>Writes the configuration as &lt;data&gt;/postern.json and returns that path (for --config).</summary>
    public static string WriteConfig(PosternConfig config)
    {
        Directory.CreateDirectory(config.DataDirectory);
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        return file;
    }

    /// <summary>Runs `postern ARGS`, asserts the exit status, and returns what it printed.</summary>
    public static string Expect(int exitCode, params string[] args)
    {
        var (code, output) = PosternProcess.Cli(args);
        Assert.True(code == exitCode, $"postern {string.Join(' ', args)} exited {code}:\n{output}");
        return output;
    }
}
