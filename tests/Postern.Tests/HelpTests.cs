using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The manual pages (`postern COMMAND --help`, `postern help COMMAND`): every command of the
/// real CLI has a hand-written page, and the generated parts come from the real options.
/// </summary>
public class HelpTests
{
    private static readonly string[] Sections = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "SEE ALSO"];

    private static string Cli(int expectedExitCode, params string[] args)
    {
        var (code, output) = PosternProcess.Cli(args);
        Assert.True(code == expectedExitCode, $"postern {string.Join(' ', args)} exited {code}, not {expectedExitCode}:\n{output}");
        return output;
    }

    private static string[] Lines(string output) => output.Replace("\r", "").TrimEnd('\n').Split('\n');

    /// <summary>The text under a section heading, up to the next heading.</summary>
    private static string Section(string output, string heading)
    {
        var lines = Lines(output);
        var start = Array.IndexOf(lines, heading);
        Assert.True(start >= 0, $"no {heading} section in:\n{output}");
        var end = Array.FindIndex(lines, start + 1, l => l.Length > 0 && !char.IsWhiteSpace(l[0]));
        return string.Join('\n', lines[(start + 1)..(end < 0 ? lines.Length : end)]);
    }

    /// <summary>Every command path of the live command tree, walked by the binary (`postern help --list`).</summary>
    private static List<string> CommandPaths() =>
        Lines(Cli(0, "help", "--list")).Select(l => l.Split(" - ", 2)[0]).ToList();

    [Fact]
    public void Every_command_has_a_hand_written_page()
    {
        var paths = CommandPaths();
        // The walk reaches the root, the leaves and the deepest commands.
        foreach (var known in new[] { "postern", "postern commit", "postern destconfig new", "postern queue list", "postern certconfig ca custom add", "postern help" })
            Assert.Contains(known, paths);
        var missing = paths.Where(p => !ManPages.Pages.ContainsKey(p)).ToList();
        Assert.True(missing.Count == 0,
            $"{missing.Count} command(s) have no hand-written page (DESCRIPTION, EXAMPLES, SEE ALSO) in ManPages.Pages:\n  " + string.Join("\n  ", missing));
        var stale = ManPages.Pages.Keys.Where(k => !paths.Contains(k)).ToList();
        Assert.True(stale.Count == 0, "ManPages.Pages has pages for commands that do not exist:\n  " + string.Join("\n  ", stale));
    }

    [Fact]
    public void The_hand_written_parts_agree_with_the_commands()
    {
        // The binary checks every example against its own parser and every SEE ALSO command against its tree.
        var (code, output) = PosternProcess.Cli("help", "--lint");
        Assert.True(code == 0 && output.Trim().Length == 0, "postern help --lint:\n" + output);
        // SEE ALSO entries that are not commands are documents of this repository.
        var repo = TestWorld.Instance.RepoRoot;
        var missingDocs = ManPages.Pages
            .SelectMany(p => p.Value.SeeAlso.Where(s => !s.StartsWith(ManPages.ProgramName, StringComparison.Ordinal))
                .Where(s => !File.Exists(Path.Combine(repo, s))).Select(s => $"{p.Key}: {s}"))
            .ToList();
        Assert.True(missingDocs.Count == 0, "SEE ALSO names documents that do not exist:\n  " + string.Join("\n  ", missingDocs));
        foreach (var (path, page) in ManPages.Pages)
        {
            Assert.False(string.IsNullOrWhiteSpace(page.Description), $"{path}: no description");
            Assert.True(page.Examples.Length is >= 1 and <= 3, $"{path}: {page.Examples.Length} examples (one to three)");
            Assert.NotEmpty(page.SeeAlso);
        }
    }

    [Fact]
    public void Destconfig_new_help_is_a_manual_page_with_the_real_options()
    {
        var output = Cli(0, "destconfig", "new", "--help");
        var lines = Lines(output);
        // The sections, flush left and in man's order.
        var positions = Sections.Select(s => Array.IndexOf(lines, s)).ToList();
        Assert.True(positions.All(p => p >= 0), output);
        Assert.Equal(positions.Order(), positions);
        Assert.DoesNotContain("Usage:", output);   // not System.CommandLine's default help

        Assert.Equal("postern destconfig new - Add a destination", Section(output, "NAME").Trim());
        var synopsis = string.Join(' ', Section(output, "SYNOPSIS").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("postern destconfig new DOMAIN ", synopsis);
        foreach (var element in new[] { "[--tls TLS]", "[--dane DANE]", "[--mta-sts MTA-STS]", "[--concurrency CONCURRENCY]", "[--config FILE]" })
            Assert.Contains(element, synopsis);

        Assert.Contains("postern commit", Section(output, "DESCRIPTION"));   // hand-written: staged, commit applies it
        Assert.Contains("DOMAIN", Section(output, "ARGUMENTS"));
        var options = Section(output, "OPTIONS");
        // Each real option, with the description it has in the code.
        Assert.Contains("       --tls TLS\n              no | preferred | required", options);
        Assert.Contains("       --dane DANE\n              none | opportunistic | mandatory", options);
        Assert.Contains("       --mta-sts MTA-STS\n", options);
        Assert.Contains("       --bounce-profile BOUNCE-PROFILE\n", options);
        Assert.Contains("       -c, --config FILE\n              Configuration file (JSON)", options);
        Assert.Contains("       -?, -h, --help\n              Print this manual page", options);
        Assert.Contains("postern destconfig new example.com --tls requiredVerify --mta-sts on", Section(output, "EXAMPLES"));
        Assert.Contains("postern destconfig edit", Section(output, "SEE ALSO"));

        // Not a terminal: wrapped to 80 columns.
        Assert.All(lines, l => Assert.True(l.Length <= 80, $"longer than 80 columns: {l}"));
    }

    [Fact]
    public void Short_help_options_and_the_help_command_print_the_same_page()
    {
        var page = Cli(0, "destconfig", "new", "--help");
        Assert.Equal(page, Cli(0, "destconfig", "new", "-h"));
        Assert.Equal(page, Cli(0, "destconfig", "new", "-?"));
        Assert.Equal(page, Cli(0, "help", "destconfig", "new"));
    }

    [Fact]
    public void Help_commit_equals_commit_help()
    {
        var page = Cli(0, "help", "commit");
        Assert.Equal(page, Cli(0, "commit", "--help"));
        Assert.StartsWith("NAME\n       postern commit - ", page.Replace("\r", ""));
        Assert.Contains("[--comment COMMENT]", Section(page, "SYNOPSIS"));
    }

    [Fact]
    public void The_overview_page_lists_the_commands()
    {
        var page = Cli(0, "help");
        Assert.Equal(page, Cli(0, "--help"));
        var commands = Section(page, "COMMANDS");
        foreach (var command in new[] { "serve", "commit", "destconfig", "certconfig", "queue", "help [COMMAND...]" })
            Assert.Contains("       " + command + " ", commands);
        // A group's page lists its subcommands with their arguments.
        Assert.Contains("       show MID ", Section(Cli(0, "help", "queue"), "COMMANDS"));
    }

    [Fact]
    public void Help_works_without_the_required_arguments_and_options()
    {
        // certconfig create requires --cn, certconfig upload a name and --cert: help is printed anyway, exit 0.
        var create = Cli(0, "certconfig", "create", "--help");
        var synopsis = Section(create, "SYNOPSIS");
        Assert.Contains(" --cn CN ", synopsis);          // required: no brackets
        Assert.DoesNotContain("[--cn CN]", synopsis);
        Assert.Contains("(required)", Section(create, "OPTIONS"));
        Assert.Contains("(default: 365)", Section(create, "OPTIONS"));   // --days
        Assert.Contains("NAME", Cli(0, "certconfig", "upload", "--help"));
        Assert.Contains("postern certconfig ca custom add - ", Cli(0, "certconfig", "ca", "custom", "add", "-h"));
    }

    [Fact]
    public void Help_for_an_unknown_command_fails()
    {
        var output = Cli(1, "help", "nosuchcommand");
        Assert.Contains("there is no command 'postern nosuchcommand'", output);
    }
}
