using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Text;
using System.Text.RegularExpressions;

namespace Postern.Admin;

/// <summary>
/// Manual pages for every command, in the manner of `man postconf`: NAME, SYNOPSIS,
/// DESCRIPTION, COMMANDS, ARGUMENTS, OPTIONS, EXAMPLES, SEE ALSO. What can be generated
/// (the one-line name, the synopsis, the commands, arguments and options with their
/// descriptions and defaults) is read from the live System.CommandLine tree, so it never
/// drifts from the code; what cannot (the description, the examples, the related commands)
/// is written by hand in <see cref="Pages"/>, one entry per command path.
/// `postern COMMAND --help` (-h, -?) and `postern help COMMAND` print the same page.
/// </summary>
public static partial class ManPages
{
    /// <summary>The hand-written part of a page. Paragraphs of the description are separated by a blank line;
    /// an example is one command line, optionally followed by " # " and what it does.</summary>
    public sealed record Page(string Description, string[] Examples, string[] SeeAlso);

    /// <summary>The name pages use for the root command, whatever the binary is called.</summary>
    public const string ProgramName = "postern";

    /// <summary>man(7)'s indents: the body, and the text of a tagged paragraph.</summary>
    private const int Indent = 7, TagIndent = 14;

    /// <summary>Replaces the default help of every command with its page and adds `postern help`; call it after every command is added.</summary>
    public static void Install(RootCommand root)
    {
        root.Subcommands.Add(BuildHelpCommand(root));
        foreach (var command in All(root).Prepend(root))
            foreach (var help in command.Options.OfType<HelpOption>())
            {
                help.Action = new ManPageAction();
                help.Description = "Print this manual page";
            }
    }

    /// <summary>`--help` as a page: printed for the command the parse arrived at, even when its required arguments are missing.</summary>
    private sealed class ManPageAction : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.Write(Render(parseResult.CommandResult.Command, TerminalWidth()));
            return 0;
        }
    }

    /// <summary>The terminal's width; 80 when the output is not a terminal.</summary>
    public static int TerminalWidth()
    {
        if (Console.IsOutputRedirected) return 80;
        try { return Console.WindowWidth is var w && w > 0 ? Math.Max(w, 40) : 80; }
        catch (IOException) { return 80; }
    }

    private static Command BuildHelpCommand(RootCommand root)
    {
        var words = new Argument<string[]>("command") { Description = "The command as typed after postern (e.g. destconfig new); without it, the overview page", Arity = ArgumentArity.ZeroOrMore };
        var list = new Option<bool>("--list") { Description = "List every command with its one-line description" };
        var lint = new Option<bool>("--lint") { Description = "Check the hand-written pages against the command tree (for developers)", Hidden = true };
        var help = new Command("help", "Print the manual page of a command") { words, list, lint };
        help.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(lint))
            {
                var problems = Lint(root);
                foreach (var p in problems) output.WriteLine(p);
                return problems.Count == 0 ? 0 : 1;
            }
            if (parse.GetValue(list))
            {
                foreach (var c in All(root).Prepend(root)) output.WriteLine($"{PathOf(c)} - {c.Description}");
                return 0;
            }
            var asked = (parse.GetValue(words) ?? []).SkipWhile((w, i) => i == 0 && w == ProgramName).ToList();
            Command target = root;
            foreach (var word in asked)
            {
                if (target.Subcommands.FirstOrDefault(c => !c.Hidden && (c.Name == word || c.Aliases.Contains(word))) is not { } next)
                {
                    parse.InvocationConfiguration.Error.WriteLine($"postern help: there is no command '{ProgramName} {string.Join(' ', asked)}' (postern help --list lists them)");
                    return 1;
                }
                target = next;
            }
            output.Write(Render(target, TerminalWidth()));
            return 0;
        });
        return help;
    }

    // ----- the tree -----

    /// <summary>Every visible command under root (not root itself), depth first, in the order they were added.</summary>
    public static IEnumerable<Command> All(Command root)
    {
        foreach (var c in root.Subcommands.Where(c => !c.Hidden))
        {
            yield return c;
            foreach (var d in All(c)) yield return d;
        }
    }

    /// <summary>"postern certconfig ca custom add": the words that invoke the command.</summary>
    public static string PathOf(Command command)
    {
        var names = new List<string>();
        for (Command? c = command; c is not null; c = c.Parents.OfType<Command>().FirstOrDefault())
            names.Add(c is RootCommand ? ProgramName : c.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    private static IEnumerable<Option> VisibleOptions(Command command)
    {
        // The command's own options, then the ones it inherits (--help is recursive from the root).
        var own = command.Options.Where(o => !o.Hidden).ToList();
        var inherited = new List<Option>();
        for (var c = command.Parents.OfType<Command>().FirstOrDefault(); c is not null; c = c.Parents.OfType<Command>().FirstOrDefault())
            inherited.AddRange(c.Options.Where(o => o.Recursive && !o.Hidden && !own.Contains(o) && !inherited.Contains(o)));
        return own.Concat(inherited);
    }

    private static string? ValueName(Option option)
    {
        if (option is HelpOption or VersionOption) return null;
        var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
        if (type == typeof(bool) || option.Arity.MaximumNumberOfValues == 0) return null;
        var element = type.IsArray ? type.GetElementType()! : type;
        element = Nullable.GetUnderlyingType(element) ?? element;
        var name = option.HelpName is { Length: > 0 } h ? h.ToUpperInvariant()
            : element == typeof(FileInfo) ? "FILE"
            : element == typeof(DirectoryInfo) ? "DIR"
            : element == typeof(int) || element == typeof(long) ? "N"
            : option.Name.TrimStart('-', '/').ToUpperInvariant();
        return type.IsArray ? name + "..." : name;
    }

    private static string OptionNames(Option option) =>
        string.Join(", ", option.Aliases.Append(option.Name).Distinct().Where(a => !a.StartsWith('/'))
            .OrderBy(a => a.StartsWith("--", StringComparison.Ordinal) ? 1 : 0).ThenBy(a => a.Length).ThenBy(a => a, StringComparer.Ordinal));

    private static string ArgumentLabel(Argument argument)
    {
        var name = (argument.HelpName is { Length: > 0 } h ? h : argument.Name).ToUpperInvariant();
        if (argument.Arity.MaximumNumberOfValues > 1) name += "...";
        return argument.Arity.MinimumNumberOfValues == 0 ? $"[{name}]" : name;
    }

    private static string? DefaultText(Symbol symbol)
    {
        object? value;
        try
        {
            value = symbol switch
            {
                Option { HasDefaultValue: true } o => o.GetDefaultValue(),
                Argument { HasDefaultValue: true } a => a.GetDefaultValue(),
                _ => null,
            };
        }
        catch (InvalidOperationException) { return null; }
        return value switch
        {
            null or false or "" => null,
            System.Collections.IEnumerable e and not string when !e.Cast<object>().Any() => null,
            System.Collections.IEnumerable e and not string => string.Join(", ", e.Cast<object>()),
            _ => value.ToString(),
        };
    }

    private static string SymbolText(Symbol symbol, bool required)
    {
        var text = symbol.Description ?? "";
        if (required) text += " (required)";
        if (DefaultText(symbol) is { } d) text += $" (default: {d})";
        return text.Trim();
    }

    private static List<string> SynopsisWords(Command command)
    {
        var words = command.Arguments.Where(a => !a.Hidden).Select(ArgumentLabel).ToList();
        foreach (var o in command.Options.Where(o => !o.Hidden && o is not HelpOption && o is not VersionOption))
        {
            var value = ValueName(o);
            var word = value is null ? o.Name : $"{o.Name} {value}";
            words.Add(o.Required ? word : $"[{word}]");
        }
        return words;
    }

    // ----- the page -----

    /// <summary>The page of a command, wrapped to width columns.</summary>
    public static string Render(Command command, int width)
    {
        var path = PathOf(command);
        Pages.TryGetValue(path, out var page);
        var w = new PageWriter(Math.Max(width, 40));
        var subcommands = command.Subcommands.Where(c => !c.Hidden).ToList();

        w.Section("NAME");
        w.Paragraph($"{path} - {command.Description}", hanging: path.Length + 3);

        w.Section("SYNOPSIS");
        if (command.Action is not null || subcommands.Count == 0) w.Synopsis(path, SynopsisWords(command));
        if (subcommands.Count > 0) w.Synopsis(path, ["COMMAND", "[ARGUMENTS]", "[OPTIONS]"]);

        w.Section("DESCRIPTION");
        var description = page?.Description ?? command.Description ?? "";
        foreach (var paragraph in ParagraphBreak().Split(description.Trim())) w.Paragraph(paragraph);

        if (subcommands.Count > 0)
        {
            w.Section("COMMANDS");
            w.Columns(subcommands.Select(c => (string.Join(' ', c.Arguments.Where(a => !a.Hidden).Select(ArgumentLabel).Prepend(c.Name)), c.Description ?? "")).ToList());
        }

        var arguments = command.Arguments.Where(a => !a.Hidden).ToList();
        if (arguments.Count > 0)
        {
            w.Section("ARGUMENTS");
            foreach (var a in arguments) w.Tagged(ArgumentLabel(a), SymbolText(a, required: false));
        }

        var options = VisibleOptions(command).ToList();
        if (options.Count > 0)
        {
            w.Section("OPTIONS");
            foreach (var o in options)
                w.Tagged(ValueName(o) is { } value ? $"{OptionNames(o)} {value}" : OptionNames(o), SymbolText(o, o.Required));
        }

        if (page is { Examples.Length: > 0 })
        {
            w.Section("EXAMPLES");
            foreach (var example in page.Examples)
            {
                var (line, comment) = SplitExample(example);
                w.Command(line);
                if (comment is not null) w.Paragraph(comment, indent: TagIndent);
                else w.Blank();
            }
        }

        if (page is { SeeAlso.Length: > 0 })
        {
            w.Section("SEE ALSO");
            w.Items(page.SeeAlso);
        }
        return w.ToString();
    }

    private static (string Command, string? Comment) SplitExample(string example)
    {
        var i = example.IndexOf(" # ", StringComparison.Ordinal);
        return i < 0 ? (example.Trim(), null) : (example[..i].Trim(), example[(i + 3)..].Trim());
    }

    [GeneratedRegex(@"\n[ \t]*\n")]
    private static partial Regex ParagraphBreak();

    /// <summary>Plain text in man's layout: section headings flush left, the body indented, words wrapped.</summary>
    private sealed class PageWriter(int width)
    {
        private readonly StringBuilder _text = new();

        public void Section(string title)
        {
            if (_text.Length > 0 && !_text.ToString().EndsWith("\n\n", StringComparison.Ordinal)) _text.Append('\n');
            _text.Append(title).Append('\n');
        }

        public void Blank() => _text.Append('\n');

        /// <summary>A paragraph wrapped at indent; continuation lines indented further by hanging.</summary>
        public void Paragraph(string text, int indent = Indent, int hanging = 0)
        {
            Wrap(Words(text), indent, indent + hanging);
            _text.Append('\n');
        }

        /// <summary>One synopsis line: the elements are never broken, continuation lines align after the command path.</summary>
        public void Synopsis(string path, IReadOnlyList<string> elements)
        {
            var hang = Indent + path.Length + 1;
            if (width - hang < 30) hang = TagIndent;
            Wrap(path.Split(' ').Concat(elements), Indent, hang);
        }

        /// <summary>A list whose items are never broken: "a, b, c".</summary>
        public void Items(IReadOnlyList<string> items)
        {
            Wrap(items.Select((item, i) => i < items.Count - 1 ? item + "," : item), Indent, Indent);
            _text.Append('\n');
        }

        /// <summary>Two aligned columns (a table of commands): a name too long for the first column gets a line of its own.</summary>
        public void Columns(IReadOnlyList<(string Name, string Text)> rows)
        {
            var column = Indent + Math.Min(rows.Max(r => r.Name.Length), 22) + 2;
            if (width - column < 30) column = TagIndent;
            foreach (var (name, text) in rows)
            {
                var words = Words(text);
                if (Indent + name.Length + 2 <= column) Wrap(words, column, column, new string(' ', Indent) + name.PadRight(column - Indent));
                else
                {
                    _text.Append(' ', Indent).Append(name).Append('\n');
                    Wrap(words, column, column);
                }
            }
            _text.Append('\n');
        }

        /// <summary>A tagged paragraph (man's .TP): the tag at the body indent, its text at the tag indent, on the same line when the tag is short.</summary>
        public void Tagged(string tag, string text)
        {
            var pad = new string(' ', Indent);
            if (Indent + tag.Length + 2 <= TagIndent && text.Length > 0)
            {
                var first = pad + tag.PadRight(TagIndent - Indent);
                Wrap(Words(text), TagIndent, TagIndent, first);
            }
            else
            {
                _text.Append(pad).Append(tag).Append('\n');
                if (text.Length > 0) Wrap(Words(text), TagIndent, TagIndent);
            }
            _text.Append('\n');
        }

        /// <summary>A command line as the shell takes it: too long, it is continued with a backslash.</summary>
        public void Command(string line)
        {
            var words = ShellWords(line);
            var current = new StringBuilder(new string(' ', Indent));
            var start = true;
            for (var i = 0; i < words.Count; i++)
            {
                var word = words[i];
                if (!start && current.Length + 1 + word.Length + (i < words.Count - 1 ? 2 : 0) > width)
                {
                    _text.Append(current).Append(" \\\n");
                    current.Clear().Append(' ', Indent + 4);
                    start = true;
                }
                if (!start) current.Append(' ');
                current.Append(word);
                start = false;
            }
            _text.Append(current).Append('\n');
        }

        private void Wrap(IEnumerable<string> words, int firstIndent, int restIndent, string? firstPrefix = null)
        {
            var line = new StringBuilder(firstPrefix ?? new string(' ', firstIndent));
            var empty = true;
            foreach (var word in words)
            {
                if (!empty && line.Length + 1 + word.Length > width)
                {
                    _text.Append(line.ToString().TrimEnd()).Append('\n');
                    line.Clear().Append(' ', restIndent);
                    empty = true;
                }
                if (!empty) line.Append(' ');
                line.Append(word);
                empty = false;
            }
            _text.Append(line.ToString().TrimEnd()).Append('\n');
        }

        /// <summary>The words of prose; a `quoted command` is kept on one line.</summary>
        private static List<string> Words(string text)
        {
            var words = new List<string>();
            var open = false;
            foreach (var word in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            {
                if (open) words[^1] += " " + word; else words.Add(word);
                if (word.Count(c => c == '`') % 2 == 1) open = !open;
            }
            return words;
        }

        /// <summary>The words of a command line as written, a quoted string being one word.</summary>
        private static List<string> ShellWords(string line)
        {
            var words = new List<string>();
            var word = new StringBuilder();
            char quote = '\0';
            foreach (var ch in line)
            {
                if (quote != '\0') { word.Append(ch); if (ch == quote) quote = '\0'; }
                else if (ch is '"' or '\'') { word.Append(ch); quote = ch; }
                else if (ch == ' ') { if (word.Length > 0) words.Add(word.ToString()); word.Clear(); }
                else word.Append(ch);
            }
            if (word.Length > 0) words.Add(word.ToString());
            return words;
        }

        public override string ToString() => _text.ToString().TrimEnd('\n') + "\n";
    }

    // ----- checks -----

    /// <summary>
    /// The hand-written pages against the live tree: commands without a page, pages without a
    /// command, SEE ALSO naming a command that does not exist, examples that do not parse.
    /// </summary>
    public static IReadOnlyList<string> Lint(RootCommand root)
    {
        var problems = new List<string>();
        var paths = All(root).Prepend(root).Select(PathOf).ToList();
        foreach (var path in paths.Where(p => !Pages.ContainsKey(p))) problems.Add($"{path}: no hand-written page in ManPages.Pages");
        foreach (var (path, page) in Pages)
        {
            if (!paths.Contains(path)) problems.Add($"{path}: a page for a command that does not exist");
            if (string.IsNullOrWhiteSpace(page.Description)) problems.Add($"{path}: no description");
            if (page.Examples.Length == 0) problems.Add($"{path}: no example");
            foreach (var see in page.SeeAlso.Where(s => s.StartsWith(ProgramName + " ", StringComparison.Ordinal) || s == ProgramName))
                if (!paths.Contains(see)) problems.Add($"{path}: SEE ALSO names '{see}', which is not a command");
            foreach (var example in page.Examples)
            {
                var commands = ShellCommands(SplitExample(example).Command).Where(c => c.Count > 0 && c[0] == ProgramName).ToList();
                if (commands.Count == 0) problems.Add($"{path}: example '{example}' runs no postern command");
                foreach (var words in commands)
                {
                    var parse = root.Parse(words.Skip(1).ToList());
                    if (parse.Errors.Count > 0)
                        problems.Add($"{path}: example '{string.Join(' ', words)}' does not parse: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
                }
            }
        }
        return problems;
    }

    /// <summary>The simple commands of a shell line (split at &amp;&amp;, ||, | and ;), with quotes removed and redirections dropped.</summary>
    private static List<List<string>> ShellCommands(string line)
    {
        var commands = new List<List<string>> { new() };
        var word = new StringBuilder();
        var inWord = false;
        var skipNext = false;
        void End()
        {
            if (!inWord) return;
            var w = word.ToString();
            word.Clear();
            inWord = false;
            if (skipNext) { skipNext = false; return; }
            if (w is "&&" or "||" or "|" or ";") { commands.Add([]); return; }
            if (w is ">" or ">>" or "<" or "2>" or "2>>") { skipNext = true; return; }
            commands[^1].Add(w);
        }
        for (var i = 0; i < line.Length; i++)
        {
            var ch = line[i];
            if (ch is '\'' or '"')
            {
                var close = line.IndexOf(ch, i + 1);
                if (close < 0) close = line.Length;
                word.Append(line, i + 1, close - i - 1);
                inWord = true;
                i = close;
            }
            else if (char.IsWhiteSpace(ch)) End();
            else { word.Append(ch); inWord = true; }
        }
        End();
        return commands;
    }
}

public static partial class ManPages
{
    /// <summary>
    /// The hand-written part of every page, keyed by command path. A command added without an
    /// entry here still gets a generated page, and fails HelpTests until its entry is written.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, Page> Pages = new Dictionary<string, Page>(StringComparer.Ordinal)
    {
        ["postern"] = new(
            """
            Postern is a secure email gateway. `postern serve` runs it: listeners receive mail over SMTP under a Host Access
            Table and mail flow policies, every accepted message is queued durably, and delivery sends it on under the
            per-destination transport security of Destination Controls (TLS levels, DANE, MTA-STS).

            The other commands administer it, in the manner of the appliance's CLI and of the Postfix tools. The
            configuration commands (destconfig, listenerconfig, alertconfig, config import, config rollback) stage their
            changes; `postern commit` validates the staged document and commits it as a new version, which a running gateway
            applies within about a second. The operator commands (suspenddel, resumedel, suspendlistener, resumelistener,
            delivernow, queue) act at once on the data directory; status, hoststatus and tophosts read what the running
            gateway writes there.

            Every command that works on a gateway's data takes --config FILE, the configuration file that names the data
            directory (without it, the embedded default with its data in ./postern-data), and works while `postern serve`
            runs. `postern help COMMAND` or `postern COMMAND --help` prints a command's page; `postern help --list` lists
            every command.
            """,
            ["postern serve --config /etc/postern/postern.json # Run the gateway.",
             "postern help destconfig new # The page of one command.",
             "postern help --list # Every command, with one line each."],
            ["postern serve", "postern commit", "postern status", "postern help", "README.md", "docs/ADMINISTRATION.md"]),

        ["postern cluster"] = new(
            """
            Commands about the cluster this machine belongs to. A cluster is several Postern machines that share one
            PostgreSQL database: configuration versions, the queue and the operator holds live there, so a commit made on any
            member applies to all of them and any member may deliver any queued message. A machine joins by a cluster section
            in its own configuration file (cluster.postgres, the connection string; cluster.passwordFile; cluster.member, its
            name; cluster.leaseSeconds). Without that section the machine runs alone on SQLite files in its data directory.
            See docs/CLUSTER.md.
            """,
            ["postern cluster status --config /etc/postern/member1.json # Who is up, and who delivers what."],
            ["postern cluster status", "docs/CLUSTER.md"]),

        ["postern cluster status"] = new(
            """
            Lists the members the shared store knows: name, host, process, whether it is up (a heartbeat within three beat
            intervals; a member beats every few seconds), the configuration version it runs, its listeners, how many messages
            it accepted and how many recipients it delivered since it first joined (and its share of the cluster's deliveries),
            and how many messages it took over from members whose claims lapsed. The first line names the store (without its
            password), its schema version, the latest configuration version and the queue's size.

            A member that stopped cleanly is shown as stopped; one that crashed as DOWN until it starts again. --json gives the
            same as one document. Exit status 2 when the configuration has no cluster section, 1 when the store cannot be
            reached.
            """,
            ["postern cluster status --config member1.json # The members, as a table.",
             "postern cluster status --config member1.json --json | jq '.members[] | {name, alive, deliveryShare}' # Shares."],
            ["postern cluster", "postern status", "docs/CLUSTER.md"]),

        ["postern store"] = new(
            """
            Commands about where this machine keeps its queue and configuration: SQLite files in its data directory (one
            machine), or a cluster's PostgreSQL database (docs/CLUSTER.md).
            """,
            ["postern store migrate --to postgres 'Host=db;Database=postern;Username=postern' --password-file pw --config postern.json # Join a cluster."],
            ["postern store migrate", "postern cluster status"]),

        ["postern store migrate"] = new(
            """
            Moves a single machine's stores into an empty cluster database: every queued message with its body and the state
            of its recipients, every configuration version with its number, author and time, staged changes, operator holds
            (for this member), certificates (sealed with this machine's certificate-store key, which every other member must
            then share) and the MTA-STS policy cache. The ID sequences move up so the cluster never reuses one of this
            machine's message IDs.

            The gateway must be stopped (a running one is refused). The database must be empty. Every message is counted in
            the database before the SQLite queue is renamed to queue.db.migrated-TIME (never deleted), so a machine started
            again without its cluster section cannot deliver the same mail twice. The command prints the cluster section to
            add to the configuration file. CONNECTION is an Npgsql connection string without the password; --password-file
            names a file holding it; --member names this machine in the cluster (default: its hostname).
            """,
            ["postern store migrate --to postgres 'Host=127.0.0.1;Database=postern;Username=postern' --password-file /etc/postern/db-password --member mx1 --config /etc/postern/postern.json # Move, then add the printed section."],
            ["postern store", "postern cluster status", "docs/CLUSTER.md"]),

        ["postern help"] = new(
            """
            Prints the manual page of COMMAND, the words that follow `postern` (`postern help certconfig ca custom add`). It
            is the same page as `postern COMMAND --help`, -h or -?. Without COMMAND it prints the overview page of postern.

            Pages are wrapped to the width of the terminal, and to 80 columns when the output is not a terminal (a pipe or a
            file). --list prints every command with its one-line description, one per line, as `man -k` does.
            """,
            ["postern help commit # The same as postern commit --help.",
             "postern help --list | grep cert # The commands that deal with certificates."],
            ["postern"]),

        ["postern serve"] = new(
            """
            Runs the gateway in the foreground: binds the listeners, starts the queue and delivery, writes the mail log
            (<data>/logs/mail.current), and prints `Postern running as HOST` once every listener is bound (under systemd
            it then sends READY=1). SIGTERM or SIGINT stops it: sessions and deliveries end, and queued mail stays queued.

            With --config FILE, the file is validated and, when it changed since it was last imported, committed as a new
            configuration version; when it is unchanged, the latest committed version is in force, so commits made with the
            CLI survive a restart. Without --config, the latest committed version runs, else the embedded default. Staged
            changes that are not committed are warned about. A configuration that does not validate, names a file that is
            missing or cannot start ends the command with one line per problem and exit status 2.

            While it runs, the gateway applies each newly committed version within about a second and takes operator holds
            (suspenddel, suspendlistener) as they change. SIGHUP re-reads the --config file and commits it when it changed
            (the `postfix reload` habit); a file that does not parse or validate is refused with a log line, and nothing
            changes.
            """,
            ["postern serve # The embedded default: listeners on 127.0.0.1:2525 and 2587, data in ./postern-data.",
             "postern serve --config /etc/postern/postern.json"],
            ["postern config check", "postern commit", "postern status", "postern install-service", "docs/CONFIGURATION.md"]),

        ["postern config"] = new(
            """
            Shows, checks and versions the configuration. `config default` and `config check` work on configuration files.
            versions, show, diff, rollback, export and import work on the versioned configuration kept in
            <data>/config/versions.db: every committed version with its number, time, author, comment and whole document.

            rollback and import stage their result like every configuration change; `postern commit` commits it as a new
            version, `postern clearchanges` discards it.
            """,
            ["postern config versions",
             "postern config diff 0 # What postern commit would change.",
             "postern config check --config /etc/postern/postern.json"],
            ["postern commit", "postern clearchanges", "docs/ADMINISTRATION.md", "docs/CONFIGURATION.md"]),

        ["postern config default"] = new(
            """
            Prints the embedded default configuration as JSON: the configuration `postern serve` runs without --config
            before any version is committed. Redirect it to a file to start a configuration of your own. Nothing is changed.
            """,
            ["postern config default > /etc/postern/postern.json"],
            ["postern config check", "postern serve", "docs/CONFIGURATION.md"]),

        ["postern config check"] = new(
            """
            Validates a configuration file and checks it against this machine: the document itself (unknown keys and invalid
            values are errors), every file it names (certificates, keys, CA lists, valid-recipient lists) exists and parses,
            and every listener address can be bound, so a port that is already taken is found before the gateway starts.
            Without --config it checks the embedded default.

            Problems are printed one per line on standard error, with exit status 2. Warnings (settings that are stored but
            not yet in force, DANE without a resolver trusted to validate DNSSEC, MTA-STS on the Default entry) are printed
            too and do not fail the check. Nothing is changed or committed.
            """,
            ["postern config check --config /etc/postern/postern.json"],
            ["postern config default", "postern serve", "docs/CONFIGURATION.md"]),

        ["postern config versions"] = new(
            """
            Lists the committed configuration versions, oldest first: number, time (UTC), who committed it and the comment.
            Versions come from `postern commit`, and from `postern serve --config FILE` or SIGHUP when the file changed (with
            the comment `imported from FILE`). The highest number is the version in force. When there are staged changes
            the list says so. --json prints number, time, who and comment as a JSON array.
            """,
            ["postern config versions", "postern config versions --json"],
            ["postern config show", "postern config diff", "postern config rollback", "postern commit"]),

        ["postern config show"] = new(
            """
            Prints the whole JSON document of the committed version VERSION, as it was committed. `postern config versions`
            lists the numbers.
            """,
            ["postern config show 3"],
            ["postern config versions", "postern config diff", "postern config export"]),

        ["postern config diff"] = new(
            """
            Shows the line differences between two configuration documents: a line starting with - is only in the first,
            one starting with + only in the second. Version 0 stands for the staged changes.

            `diff 0` compares the latest committed version with the staged changes: what `postern commit` would change.
            `diff N` compares version N with the staged changes, or with the latest version when nothing is staged.
            `diff N M` compares two versions. When the documents are the same it prints (no differences).
            """,
            ["postern config diff 0 # The staged changes against the version in force.",
             "postern config diff 2 3"],
            ["postern config versions", "postern commit", "postern clearchanges"]),

        ["postern config rollback"] = new(
            """
            Stages the document of an earlier version VERSION, replacing any staged changes. `postern commit` then commits it
            as a new version (the history is never rewritten) and a running gateway applies it within about a second;
            `postern clearchanges` abandons the rollback.
            """,
            ["postern config rollback 2 && postern commit --comment \"back to 2\""],
            ["postern config versions", "postern config diff", "postern commit", "postern clearchanges"]),

        ["postern config export"] = new(
            """
            Writes the working configuration to FILE as JSON: the staged document when there are staged changes, else the
            latest committed version, else the configuration of --config (or the embedded default). Certificate assignments
            and the CA lists are part of it. Without --with-certificates the certificates themselves are not written (they
            stay in the certificate store), and the file can be edited and staged again with `postern config import`, or
            given to `postern serve --config`.

            With --with-certificates the file is a bundle: the document and every stored certificate with its chain and
            private key as PKCS#12 (PBES2 / AES-256), encrypted under the passphrase; the file is written 0600 and no key
            is ever in clear. `postern config import` on another machine restores both.
            """,
            ["postern config export current.json",
             "postern config export move.json --with-certificates --passphrase-file /root/export.pass"],
            ["postern config import", "postern config show", "postern certconfig export"]),

        ["postern config import"] = new(
            """
            Reads FILE as a whole configuration document, or a bundle written by `config export --with-certificates`, and
            stages the configuration, replacing any staged changes. A bundle's certificates are added to the certificate
            store first (with --passphrase or --passphrase-file): a certificate already stored under its name with the same
            thumbprint is skipped; a different one under the same name, a wrong passphrase, or a document that does not
            validate refuse the whole import with the reason, and nothing is stored or staged. `postern config diff 0`
            shows what it changes; `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern config import new.json && postern config diff 0",
             "postern config import move.json --passphrase-file /root/export.pass"],
            ["postern config export", "postern config diff", "postern commit", "postern clearchanges"]),

        ["postern commit"] = new(
            """
            Validates the whole staged document and commits it as a new configuration version, with who committed it (the
            user running the command), when, and --comment. A staged document that does not validate is refused with one
            line per problem and nothing is committed: the staged changes stay, to be fixed, or discarded with `postern
            clearchanges`. Without staged changes there is nothing to commit; staged changes identical to the latest version
            are discarded.

            A running gateway applies the new version within about a second and logs `Configuration version N applied`. New
            sessions get the new HAT, mail flow policies, RAT and listener limits; the next delivery uses the new Destination
            Controls, SMTP routes, bounce profiles and delivery settings, while sessions and deliveries under way finish under
            the version they started with. Alert recipients, the throttle, certificate assignments and the CA lists apply at
            once; new listeners are bound, moved ones are bound at their new address before the old one closes, removed
            ones stop accepting (open sessions finish). What is read only at start (the data directory, DNS and mail log
            settings, the certificate watch settings, the verification checks, MTA-STS fetch, metrics and web interface
            settings) applies at the next start, and the mail log names it in a warning.
            """,
            ["postern commit --comment \"require verified TLS for example.com\""],
            ["postern config diff", "postern clearchanges", "postern config versions", "postern config rollback", "docs/ADMINISTRATION.md"]),

        ["postern clearchanges"] = new(
            """
            Discards the staged changes, whatever staged them (destconfig, listenerconfig, alertconfig, config import, config
            rollback). The committed versions and the running gateway are not touched. It says so when nothing was staged.
            """,
            ["postern clearchanges"],
            ["postern commit", "postern config diff"]),

        ["postern destconfig"] = new(
            """
            Destination Controls: how Postern delivers to each destination domain. An entry sets the TLS level, DANE,
            MTA-STS, the limits on concurrent connections and on messages per connection, Bounce Verification and the bounce
            profile for a domain (example.com) or for a domain and its subdomains (.example.com). The Default entry applies to
            every other domain, and a field an entry does not set is inherited from it. The global settings are the alert on
            a failed required TLS connection and the outbound client certificate.

            Without a subcommand, destconfig runs the appliance's dialogue (NEW, EDIT, DELETE, DEFAULT, LIST, DETAIL, CLEAR,
            IMPORT, EXPORT, SETUP) with its questions and the defaults in brackets; an empty answer at the menu ends it. It
            reads the answers from standard input, so it can be scripted with a pipe; input that ends in the middle stages
            nothing (exit status 1). The subcommands are the scriptable forms.

            Either way, every change is checked against the whole configuration, refused with the reason when the result
            would be invalid, and staged. `postern commit` applies it: the next delivery to the domain uses it.
            """,
            ["postern destconfig # The dialogue.",
             "postern destconfig list",
             "postern destconfig new example.com --tls requiredVerify --mta-sts on"],
            ["postern commit", "postern hoststatus", "postern check", "postern dane check", "docs/ADMINISTRATION.md"]),

        ["postern destconfig setup"] = new(
            """
            Changes the global settings of Destination Controls. --alert-on-tls-failure on sends a warning alert (to the
            alert recipients who take system warnings) when a destination whose TLS level requires TLS cannot get it.
            --client-certificate NAME makes the stored certificate NAME (see `certconfig list`) the client certificate
            Postern presents when a receiving server asks for one; `none` removes it. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern destconfig setup --alert-on-tls-failure on",
             "postern destconfig setup --client-certificate client.example.com"],
            ["postern alertconfig", "postern certconfig assign", "postern commit"]),

        ["postern destconfig import"] = new(
            """
            Replaces the whole Destination Controls table with the one in FILE (written by `destconfig export`, or by hand in
            the same shape). The table is checked with the whole configuration: a file that is not a table, or a table with
            an invalid entry, is refused with the reason and nothing is staged. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern destconfig import destinations.json"],
            ["postern destconfig export", "postern config diff", "postern commit"]),

        ["postern destconfig export"] = new(
            """
            Writes the whole Destination Controls table to FILE as JSON: the Default entry, every entry, and the global
            settings (alertOnRequiredTlsFailure, the outbound client certificate). Staged changes are included. The file is
            what `destconfig import` (and the dialogue's IMPORT) reads, on this machine or another one.
            """,
            ["postern destconfig export destinations.json"],
            ["postern destconfig import", "postern config export"]),

        ["postern destconfig new"] = new(
            """
            Adds a Destination Controls entry for DOMAIN: example.com for that domain alone, .example.com for the domain and
            its subdomains. An entry that exists already is refused (use edit). The options set the entry's fields; a field
            not given, or given as `default`, is inherited from the Default entry.

            --tls takes a TLS level by name or by the appliance's menu number: 1 No, 2 Preferred, 3 Required, 4 Preferred
            (Verify), 5 Required (Verify), 6 Required - Verify Hosted Domains. The Verify levels check the receiving
            server's certificate against the trusted CAs. DANE needs a TLS level from Preferred up. Turning MTA-STS on for a
            domain with an SMTP route prints a note: MTA-STS is not enforced for domains with SMTP routes.

            The entry is checked with the whole configuration; an invalid result is refused with the reason and nothing is
            staged. Otherwise the change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern destconfig new example.com --tls requiredVerify --mta-sts on",
             "postern destconfig new .example.net --dane opportunistic # The domain and its subdomains."],
            ["postern destconfig edit", "postern destconfig list", "postern check", "postern dane check", "postern commit"]),

        ["postern destconfig edit"] = new(
            """
            Changes the Destination Controls entry for DOMAIN, or the Default entry when DOMAIN is `default`. Only the
            options given change. On an entry, the value `default` makes a field inherit from the Default entry again; the
            Default entry itself needs real values. The values are those of `destconfig new`.

            The result is checked with the whole configuration and refused with the reason when invalid; otherwise it is
            staged, and `postern commit` applies it to the next delivery.
            """,
            ["postern destconfig edit example.com --dane mandatory",
             "postern destconfig edit example.com --concurrency default # Inherit the limit again.",
             "postern destconfig edit default --tls preferred"],
            ["postern destconfig new", "postern destconfig list", "postern commit"]),

        ["postern destconfig delete"] = new(
            """
            Removes the Destination Controls entry for DOMAIN. Mail to the domain then follows the entry that matches it
            next (a .domain entry for a parent domain), else the Default entry, which cannot be deleted. The change is
            staged; `postern commit` applies it.
            """,
            ["postern destconfig delete example.com"],
            ["postern destconfig list", "postern commit", "postern clearchanges"]),

        ["postern destconfig list"] = new(
            """
            Prints every Destination Controls entry, the Default entry first, with the settings in force for it after
            inheritance: TLS level, DANE, MTA-STS, concurrent connections, messages per connection and bounce profile. When
            there are staged changes it shows them, and says so. `postern hoststatus DOMAIN` shows what the running gateway
            applies to one domain. --json prints the same as an array.
            """,
            ["postern destconfig list", "postern destconfig list --json"],
            ["postern destconfig", "postern hoststatus", "postern config diff"]),

        ["postern install-service"] = new(
            """
            Installs Postern as a systemd service, as administrators install an MTA: copies the binary to
            /usr/local/bin/postern (this binary, or --binary FILE), writes the unit /etc/systemd/system/postern.service, and
            writes /etc/postern/postern.json (the embedded default, with its data in /var/lib/postern) unless it exists. Then
            it adds the system user postern and runs `systemctl daemon-reload`; `systemctl enable --now postern` starts it.
            Run it as root, from the published single-file binary (under `dotnet postern.dll` give --binary).

            The unit is Type=notify (Postern sends READY=1 once its listeners are bound), runs as user postern with its data
            in /var/lib/postern, binds port 25 through CAP_NET_BIND_SERVICE only, and is hardened. `systemctl reload
            postern` sends SIGHUP: the configuration file is read again and committed when it changed.

            --root DIR installs into a directory tree instead of / (for packaging) and, like --no-systemctl, leaves out
            useradd and systemctl.
            """,
            ["postern install-service",
             "postern install-service --root /tmp/pkgroot --binary out/postern # Build a package tree."],
            ["postern serve", "postern status", "docs/ADMINISTRATION.md", "docs/HARDENING.md"]),

        ["postern interfaceconfig"] = new(
            """
            IP interfaces, as the appliance's interfaceconfig shows them: the addresses the gateway serves on, with the
            services on each (SMTP listeners, the HTTPS administration interface, the metrics endpoint), and the HTTPS
            service itself ("Enabling HTTPS": on which address and port, with which certificate). Changes are staged;
            `postern commit` applies them: the certificate at the next HTTPS handshake, a new address or port (or turning
            HTTPS off) at the next start of the gateway, which the mail log says after the commit.
            """,
            ["postern interfaceconfig list",
             "postern interfaceconfig https --enable on --address 192.0.2.10 --port 443 --certificate admin.example.com"],
            ["postern certconfig assign", "postern listenerconfig", "docs/WEB.md"]),

        ["postern interfaceconfig https"] = new(
            """
            Turns the HTTPS administration interface on or off (--enable on|off) and sets its address, port and
            certificate (a stored certificate from `certconfig list`, or demo). An address and port that a listener
            already uses are refused. The change is staged; `postern commit` applies it: the certificate at the next
            handshake, the address, port and on/off at the next start.
            """,
            ["postern interfaceconfig https --port 443 --certificate admin.example.com",
             "postern interfaceconfig https --enable off"],
            ["postern interfaceconfig list", "postern certconfig assign", "postern commit"]),

        ["postern interfaceconfig list"] = new(
            """
            Lists every IP address the working configuration serves on and the services there: each SMTP listener with
            its port, HTTPS with its port and certificate, and the metrics endpoint. --json prints the same as an array.
            """,
            ["postern interfaceconfig list"],
            ["postern interfaceconfig https", "postern listenerconfig list"]),

        ["postern adminuser"] = new(
            """
            The local accounts of the HTTPS web interface. Each has a role: administrator (everything, including
            configuration changes and commits), operator (the queue and message tracking; configuration read-only) or
            readonly (looks only). Passwords are kept as ASP.NET Core password hashes (PBKDF2), never in clear. The first
            start of the web interface creates 'admin' with a generated password, printed once to the console and kept in
            <data>/web/initial-admin-password (mode 0600). Changes apply at once: a deleted account, or one whose role
            changed, is signed out at its next request.
            """,
            ["postern adminuser list",
             "postern adminuser add alice --role operator --password-file /root/alice.pass"],
            ["postern adminuser passwd", "docs/WEB.md"]),

        ["postern adminuser delete"] = new(
            """
            Deletes an account; its open sessions end at their next request. The last administrator cannot be deleted.
            """,
            ["postern adminuser delete bob"],
            ["postern adminuser list"]),

        ["postern adminuser role"] = new(
            """
            Changes an account's role; its open sessions end. The last administrator cannot be made anything else.
            """,
            ["postern adminuser role bob operator"],
            ["postern adminuser list"]),

        ["postern adminuser passwd"] = new(
            """
            Sets an account's password (read like `adminuser add` reads it) and lifts a lock-out. Use it for the initial
            administrator too.
            """,
            ["postern adminuser passwd admin"],
            ["postern adminuser list"]),

        ["postern adminuser add"] = new(
            """
            Adds an account with --role administrator, operator or readonly (default readonly). The password (at least 10
            characters) is read from --password-file, else from standard input, hidden on a terminal; never from the
            command line, where other users could see it in the process list.
            """,
            ["postern adminuser add alice --role administrator",
             "postern adminuser add bob --role readonly --password-file /root/bob.pass"],
            ["postern adminuser passwd", "postern adminuser role"]),

        ["postern adminuser list"] = new(
            """
            Lists the accounts with their roles, and which are locked out after too many failed logins (and until when).
            --json prints the same as an array.
            """,
            ["postern adminuser list"],
            ["postern adminuser passwd", "postern adminuser add"]),

        ["postern suspenddel"] = new(
            """
            Holds deliveries to DOMAIN, or to every domain when DOMAIN is omitted (the appliance's suspenddel). Messages stay
            in the queue and nothing is attempted: no connection is made and no attempt is counted; the mail log says
            `suspended by the administrator`. Mail is still received and queued.

            A hold is state, not configuration: it is written to the data directory at once, needs no commit, and is not
            versioned. A running gateway takes it within a second and logs who suspended what. It lasts, across restarts,
            until `postern resumedel`; `postern status` lists the holds.
            """,
            ["postern suspenddel example.com", "postern suspenddel # Every domain."],
            ["postern resumedel", "postern status", "postern suspendlistener"]),

        ["postern resumedel"] = new(
            """
            Lifts a hold made by suspenddel: the hold on DOMAIN, or, without DOMAIN, the hold on all domains (holds on single
            domains stay until they are resumed by name). A running gateway takes it within a second and looks at the held
            recipients again within 10 seconds; `postern delivernow` makes them due at once. No commit is needed.
            """,
            ["postern resumedel example.com && postern delivernow example.com"],
            ["postern suspenddel", "postern delivernow", "postern status"]),

        ["postern suspendlistener"] = new(
            """
            Stops accepting connections on the listener LISTENER: new connections get `421 4.3.2` and are closed, while the
            sessions already open go on. The listener stays bound. The name must be a listener of the configuration. Like
            suspenddel it is a hold, written at once and taken by a running gateway within a second, with no commit; it
            lasts until `postern resumelistener`.
            """,
            ["postern suspendlistener IncomingMail"],
            ["postern resumelistener", "postern status", "postern listenerconfig list"]),

        ["postern resumelistener"] = new(
            """
            Accepts connections again on a listener suspended by suspendlistener. A running gateway takes it within a second;
            no commit is needed.
            """,
            ["postern resumelistener IncomingMail"],
            ["postern suspendlistener", "postern status"]),

        ["postern delivernow"] = new(
            """
            Makes the deferred recipients of DOMAIN, or every pending recipient when DOMAIN is omitted, due now, like
            Postfix's `postqueue -f` and `postqueue -s`. The queue in the data directory is changed at once and a running
            gateway picks them up within 5 seconds. It does not lift a suspenddel hold.
            """,
            ["postern delivernow example.com", "postern delivernow"],
            ["postern queue retry", "postern resumedel", "postern hoststatus"]),

        ["postern status"] = new(
            """
            Shows the running gateway: its pid, uptime and configuration version, each listener with its open sessions
            (SUSPENDED when held), and counters since start (messages queued, recipients delivered and bounced, deferrals,
            connections); then the queue (messages, pending recipients, the oldest) and the operator holds.

            The gateway rewrites <data>/status.json every 2 seconds. When none was written in the last 10 seconds, status
            says that Postern is not running and exits with status 1, so it serves scripts and health checks. --json prints
            everything as one object.
            """,
            ["postern status --config /etc/postern/postern.json", "postern status --json"],
            ["postern hoststatus", "postern tophosts", "postern queue list", "postern serve"]),

        ["postern hoststatus"] = new(
            """
            Shows one destination domain as delivery sees it: the Destination Controls entry that applies to it and the
            settings in force from the committed version (TLS level, DANE, MTA-STS, connections, messages per connection,
            bounce profile), the connections the running gateway has open to it now, the last TLS outcome since the gateway
            started (encrypted, certificate verified or not, TLS not possible, with protocol, level, MX host and time), and
            its pending recipients, the first 20 with MID, attempts, next attempt and the last answer. Staged changes are
            not shown (see `postern destconfig list`).
            """,
            ["postern hoststatus example.com", "postern hoststatus example.com --json"],
            ["postern tophosts", "postern destconfig list", "postern delivernow", "postern queue show"]),

        ["postern tophosts"] = new(
            """
            Lists the destination domains with the most pending recipients (at most 20), with the connections the running
            gateway has open to each, like the appliance's tophosts. Domains with open connections and nothing pending are
            listed too.
            """,
            ["postern tophosts", "postern tophosts --json"],
            ["postern hoststatus", "postern status", "postern queue list"]),

        ["postern listenerconfig"] = new(
            """
            Listeners, the Host Access Table (HAT) of each, and the mail flow policies. A listener receives SMTP on an
            address and port. A public listener takes mail from the Internet for the domains of the Recipient Access Table; a
            private one relays mail for the hosts of its sender groups. A connecting host is matched against the listener's
            sender groups in order, and the first match's mail flow policy decides what it may do (accept, relay, reject,
            TCP refuse; TLS; limits); the listener's default policy applies when no group matches.

            Without a subcommand, listenerconfig runs the appliance's dialogue: NEW, EDIT (NAME, INTERFACE, LIMITS,
            HOSTACCESS with the sender groups and the mail flow policies, CERTIFICATE) and DELETE, reading the answers from
            standard input. The subcommands are the scriptable forms.

            Every change is checked with the whole configuration (a relay policy on a public listener, an unknown policy, a
            bad sender pattern are refused with the reason) and staged. After `postern commit`, new sessions get the new
            sender groups, policies, limits and certificate within about a second; a new, removed or moved listener needs a
            restart.
            """,
            ["postern listenerconfig # The dialogue.",
             "postern listenerconfig list",
             "postern listenerconfig hat-set IncomingMail TRUSTED --senders 192.0.2.0/24 --policy TRUSTED"],
            ["postern commit", "postern suspendlistener", "postern certconfig assign", "docs/ADMINISTRATION.md", "docs/CONFIGURATION.md"]),

        ["postern listenerconfig policy-delete"] = new(
            """
            Deletes the mail flow policy POLICY. A policy that a listener uses (as its default policy or in a sender group
            of its HAT) is refused, naming the users: change those first. The change is staged; `postern commit` applies it.
            """,
            ["postern listenerconfig policy-delete TRIAL"],
            ["postern listenerconfig policy", "postern listenerconfig list", "postern commit"]),

        ["postern listenerconfig list"] = new(
            """
            Prints each listener (type, address, port, session limit, default policy) with its HAT sender groups in matching
            order, then every mail flow policy (action, TLS, maximum message size, maximum recipients). When there are staged
            changes it shows them, and says so. --json prints the listeners and policies as in the configuration document.
            """,
            ["postern listenerconfig list", "postern listenerconfig list --json"],
            ["postern listenerconfig", "postern status"]),

        ["postern listenerconfig new"] = new(
            """
            Adds the listener NAME. What is not given is: --type public, --address 127.0.0.1, --port 25, --max-concurrency
            50 sessions, --default-policy ACCEPTED. It has no sender groups until `listenerconfig hat-set` adds them. The
            change is checked and staged; after `postern commit` a running gateway binds it within a second or two.
            """,
            ["postern listenerconfig new OutgoingMail --type private --address 192.0.2.25 --port 587"],
            ["postern listenerconfig hat-set", "postern listenerconfig edit", "postern certconfig assign", "postern commit"]),

        ["postern listenerconfig edit"] = new(
            """
            Changes the listener NAME; only the options given change. The change is checked and staged; after `postern
            commit` a running gateway applies it to new sessions; a new address or port is bound first, then the old socket
            closes while its open sessions finish (a failed bind keeps the old address, with a warning in the mail log).
            """,
            ["postern listenerconfig edit IncomingMail --max-concurrency 200"],
            ["postern listenerconfig list", "postern listenerconfig policy", "postern commit"]),

        ["postern listenerconfig delete"] = new(
            """
            Removes the listener NAME with its sender groups. The change is staged; after `postern commit` a running gateway
            stops accepting connections on it, and the sessions open on it finish.
            """,
            ["postern listenerconfig delete OutgoingMail"],
            ["postern listenerconfig list", "postern suspendlistener", "postern commit"]),

        ["postern listenerconfig hat-set"] = new(
            """
            Adds the sender group GROUP to the HAT of the listener NAME, or replaces the group of that name where it stands.
            --senders lists who belongs to it, comma-separated: IP addresses, CIDR ranges, host names and .domain patterns
            (names are matched by forward-confirmed reverse DNS). --policy names the mail flow policy its hosts get. A new
            group is added last: groups are matched in order and the first match wins. The change is checked and staged;
            `postern commit` applies it to new sessions.
            """,
            ["postern listenerconfig hat-set OutgoingMail RELAYLIST --senders 10.0.0.0/8,.corp.example --policy RELAYED"],
            ["postern listenerconfig hat-remove", "postern listenerconfig policy", "postern listenerconfig list", "postern commit"]),

        ["postern listenerconfig hat-remove"] = new(
            """
            Removes the sender group GROUP from the HAT of the listener NAME; its hosts then fall to the next group that
            matches them, else the listener's default policy. The change is staged; `postern commit` applies it.
            """,
            ["postern listenerconfig hat-remove OutgoingMail RELAYLIST"],
            ["postern listenerconfig hat-set", "postern commit"]),

        ["postern listenerconfig policy"] = new(
            """
            Creates the mail flow policy POLICY, or changes it; only the options given change, and a new policy starts from
            the defaults. --action is accept (mail for the domains of the Recipient Access Table), relay (mail to any
            domain; refused on a public listener), reject (a 554 greeting, then only QUIT) or tcpRefuse (the connection is
            closed at once). --tls answers the appliance's question: 1 No, 2 Preferred (STARTTLS is offered), 3 Required
            (mail without TLS is refused with 530); turning TLS on reminds you to check the listener's certificate with
            certconfig. --max-message-size is in bytes.

            The change is checked and staged; after `postern commit` new sessions get the new policy.
            """,
            ["postern listenerconfig policy TRUSTED --action accept --tls 3 --max-message-size 52428800"],
            ["postern listenerconfig hat-set", "postern certconfig assign", "postern commit"]),

        ["postern alertconfig"] = new(
            """
            Who gets alerts by email, and how often. Postern mails an alert (for example when TLS that a destination
            requires fails, when DANE fails for every MX host of a domain, or when a certificate in service is about to
            expire) to the recipients who want its severity and type, at most one alert of a kind per subject per throttle
            window.

            Without a subcommand, alertconfig runs the appliance's dialogue (NEW, EDIT, DELETE, CLEAR, SETUP), reading the
            answers from standard input. Changes are checked and staged; after `postern commit` a running gateway uses the
            new recipients and throttle at once, without a restart.
            """,
            ["postern alertconfig # The dialogue.",
             "postern alertconfig list",
             "postern alertconfig new postmaster@example.com --severities warning,critical"],
            ["postern commit", "docs/ADMINISTRATION.md"]),

        ["postern alertconfig list"] = new(
            """
            Prints each alert recipient with the severities and types it gets, and the throttle. Staged changes are included.
            --json prints the alert settings as in the configuration document.
            """,
            ["postern alertconfig list"],
            ["postern alertconfig new", "postern alertconfig throttle"]),

        ["postern alertconfig new"] = new(
            """
            Adds ADDRESS as an alert recipient, or replaces its settings when it is one already. --severities (info, warning,
            critical) and --types (system, hardware, updater, antivirus, messageDelivery) restrict what it gets,
            comma-separated; omitted, it gets every severity and every type. The change is checked and staged; `postern
            commit` applies it.
            """,
            ["postern alertconfig new postmaster@example.com",
             "postern alertconfig new noc@example.com --severities critical --types messageDelivery"],
            ["postern alertconfig delete", "postern alertconfig list", "postern commit"]),

        ["postern alertconfig delete"] = new(
            """
            Removes the alert recipient ADDRESS. The change is staged; `postern commit` applies it.
            """,
            ["postern alertconfig delete noc@example.com"],
            ["postern alertconfig new", "postern commit"]),

        ["postern alertconfig throttle"] = new(
            """
            Sets the throttle: at most one alert of a kind per subject (for example per destination domain) in SECONDS
            seconds, so that a failing destination does not flood the recipients. The change is staged; `postern commit`
            applies it.
            """,
            ["postern alertconfig throttle 3600"],
            ["postern alertconfig list", "postern commit"]),

        ["postern queue"] = new(
            """
            The delivery queue. Every accepted message is kept in <data>/queue/queue.db until each of its recipients is
            delivered, bounced, or has been in the queue too long; deferred recipients are retried with backoff. These
            commands read and change the queue directly: at once, without a commit, and also while the gateway runs.
            """,
            ["postern queue list", "postern queue show 1042"],
            ["postern delivernow", "postern hoststatus", "postern tophosts", "README.md"]),

        ["postern queue list"] = new(
            """
            Lists the queued messages: MID, time received (UTC), size in bytes, the number of recipients still pending, and
            the envelope sender. --json prints every message with its recipients.
            """,
            ["postern queue list", "postern queue list --json --config /etc/postern/postern.json"],
            ["postern queue show", "postern tophosts"]),

        ["postern queue show"] = new(
            """
            Shows the message MID: its sender, when and on which listener it was received, its ICID and client address, its
            size; and each recipient with its RID, state, attempts, next attempt and the last answer of the receiving
            server. Exit status 1 when MID is not in the queue.
            """,
            ["postern queue show 1042", "postern queue show 1042 --json"],
            ["postern queue list", "postern queue retry", "postern hoststatus"]),

        ["postern queue retry"] = new(
            """
            Makes the deferred recipients of the message MID, or of every message, due now; a running gateway tries them
            within seconds. `postern delivernow DOMAIN` does the same for one destination domain.
            """,
            ["postern queue retry 1042", "postern queue retry"],
            ["postern delivernow", "postern queue show"]),

        ["postern queue delete"] = new(
            """
            Deletes the message MID and all its recipients from the queue. No bounce (DSN) is sent: the message is gone. Exit
            status 1 when MID is not in the queue.
            """,
            ["postern queue delete 1042"],
            ["postern queue list", "postern suspenddel"]),

        ["postern track"] = new(
            """
            Message tracking: searches the life of every message the gateway handled, newest first. A running gateway
            records it from its event stream in <data>/tracking/tracking.db (when tracking.enabled is on, the default;
            a member of a cluster records it in the cluster's database, so each message's story is whole on every member):
            the inbound connection (ICID, client address and reverse DNS, listener, sender group, mail flow policy, TLS),
            the envelope, Message-ID, subject and size; each delivery attempt (DCID, MX host and address, TLS protocol,
            cipher and peer names, the Destination Controls entry and TLS level, the DANE and MTA-STS decisions with
            their reasons) and the receiving server's reply; the final status. Messages older than
            tracking.retentionDays (30 by default) are deleted daily.

            Every option given must hold. --sender and --recipient take an address (case-insensitive) or a domain
            (example.com; not @example.com, which the command line reads as a response file). --subject finds text
            (3 characters or more) anywhere in the Subject header. --since and --until take a date and time (UTC unless an offset is given) or
            an age such as 90m, 12h, 7d. --status is queued, deferred, delivered, bounced, partial (finished, some
            recipients delivered and the others bounced) or rejected (refused at the end of DATA). --tls is the TLS
            outcome of the latest delivery attempt: dane (the certificate matched a TLSA record), mta-sts (an MTA-STS
            policy applied and passed), verified (by the trusted CAs), encrypted (not verified), clear, failed (TLS,
            DANE or MTA-STS failed, so the host was not used) or none (no attempt reached a host yet).

            The table shows MID, time received (UTC), status, TLS outcome, sender, recipients and subject; text that
            came from a peer is shown with control characters escaped (\xNN) and cut to the column. --json prints every
            field, recipients with their status, TLS outcome and last reply. `postern track show MID` tells one
            message's story. The database is read only: the command works while the gateway runs.
            """,
            ["postern track --recipient bob@example.com",
             "postern track --sender example.org --since 2h --status deferred",
             "postern track --tls failed --limit 20 # The latest messages whose TLS, DANE or MTA-STS failed."],
            ["postern track show", "postern queue show", "postern hoststatus", "docs/ADMINISTRATION.md"]),

        ["postern track show"] = new(
            """
            Tells the life of the message MID as a story, one sentence per step with its time (UTC): how it was received
            (client, reverse DNS, listener, ICID, sender group, policy, TLS), MAIL FROM and each RCPT TO, the Message-ID,
            subject and size, its queueing; each delivery attempt with its DCID, MX host and address, TLS protocol, cipher
            and the peer's certificate names; and each recipient's outcome with the facts of the connection that carried
            it, for example: Delivered to <bob@example.com> via mx1.example.com [192.0.2.25] over TLSv1.3, certificate
            verified by DANE-EE (3 1 1); MTA-STS not applied because DANE succeeded; Destination Controls entry
            example.com: TLS Required (Verify). Reply: 250 2.0.0 Ok.

            A deferral with no connection behind it (every MX host failed DANE, MTA-STS or TLS, or could not be reached)
            is preceded by the hosts tried for that domain just before, each with what went wrong. Text that came from a
            peer (subject, replies, certificate names, reasons quoting a server) is shown with control characters escaped
            (\xNN) and cut to a length; --json gives the steps with their fields as recorded, and the story. Exit status
            1 when MID is not tracked.
            """,
            ["postern track show 1042", "postern track show 1042 --json"],
            ["postern track", "postern queue show", "postern hoststatus"]),

        ["postern certconfig"] = new(
            """
            Certificates and the trusted certificate authorities, in the appliance's style. The certificate store in
            <data>/certs holds the certificates with their chains and sealed private keys: they are data, created, renewed,
            imported and deleted at once. Which service uses which certificate (a listener for inbound STARTTLS, the outbound
            client certificate, the HTTPS interface) and which CA lists are trusted are part of the versioned configuration:
            those changes are staged, and `postern commit` applies them. A running gateway then presents the new certificate
            and trusts the new lists for new connections within a second or two; established sessions keep theirs. Renewing
            a certificate in place (upload, intermediates) applies within a second, no commit needed.

            Without a subcommand, certconfig runs the appliance-like menu (NEW, IMPORT, EXPORT, DELETE, PRINT), reading the
            answers from standard input; an empty answer ends it. The subcommands are the scriptable forms. Errors end with
            exit status 1 and one line, and change nothing.
            """,
            ["postern certconfig list",
             "postern certconfig create --cn mx.example.com --org Example --country NL",
             "postern certconfig assign mx.example.com --listener IncomingMail"],
            ["postern certconfig ca", "postern commit", "postern listenerconfig policy", "docs/CERTIFICATES.md"]),

        ["postern certconfig list"] = new(
            """
            Lists the stored certificates: name, subject, issuer (and whether it is self-signed), expiry, and the services
            each is assigned to. An expired certificate is flagged, with `** EXPIRED and in use **` when it is still
            assigned. A warning names every listener that falls back to the demo certificate. --json prints the details of
            each.
            """,
            ["postern certconfig list", "postern certconfig list --json"],
            ["postern certconfig show", "postern certconfig assign"]),

        ["postern certconfig show"] = new(
            """
            Shows the certificate NAME: subject, issuer, DNS names, validity, key type, number of intermediates, scope
            (machine or cluster), SHA-1 thumbprint and the services it is assigned to.
            """,
            ["postern certconfig show mx.example.com", "postern certconfig show mx.example.com --json"],
            ["postern certconfig list", "postern certconfig csr"]),

        ["postern certconfig create"] = new(
            """
            Creates a self-signed certificate with a new private key and stores it under --name (by default the common
            name). --cn is the host's fully qualified name and --san adds DNS names; --org, --unit, --city, --state and
            --country fill in the subject. The key is RSA 2048 bits unless --key says otherwise; rsa1024 is refused without
            --insecure and warned about even then. --validate-fqdn requires every name to be a fully qualified domain name.
            The scope is cluster for a wildcard or multi-name certificate, else machine, unless --scope says otherwise.

            A self-signed certificate is enough for STARTTLS with most senders. For a CA-signed one, print a CSR with
            `certconfig csr` and load the issued certificate with `certconfig upload`. The certificate is used once it is
            assigned (`certconfig assign`).
            """,
            ["postern certconfig create --cn mx.example.com --org Example --country NL",
             "postern certconfig create --cn mx.example.com --san mail.example.com --key ecdsa-p256 --days 825"],
            ["postern certconfig csr", "postern certconfig assign", "postern certconfig import", "docs/CERTIFICATES.md"]),

        ["postern certconfig csr"] = new(
            """
            Prints a PEM certificate signing request (PKCS#10) for the stored certificate NAME, with its subject, its names
            and its public key, signed with its private key. Send it to a certificate authority and load the certificate it
            issues with `certconfig upload`. --out writes the request to a file.
            """,
            ["postern certconfig csr mx.example.com --out mx.csr"],
            ["postern certconfig upload", "postern certconfig create"]),

        ["postern certconfig upload"] = new(
            """
            Replaces the certificate NAME with the CA-signed certificate in the PEM file --cert, keeping its private key: the
            public key must match, else nothing changes. --intermediates adds the CA's intermediate certificates, which are
            sent in every handshake with it. Services the certificate is assigned to use the new one for new connections
            within a second.
            """,
            ["postern certconfig upload mx.example.com --cert mx.crt --intermediates chain.pem"],
            ["postern certconfig csr", "postern certconfig intermediates", "postern certconfig show"]),

        ["postern certconfig intermediates"] = new(
            """
            Sets the intermediate certificates (the PEM file FILE) that are sent with the certificate NAME in TLS handshakes,
            replacing the ones it had. A server that verifies needs the chain up to a root it trusts.
            """,
            ["postern certconfig intermediates mx.example.com chain.pem"],
            ["postern certconfig upload", "postern certconfig show"]),

        ["postern certconfig import"] = new(
            """
            Imports a certificate, its private key and its chain from a PKCS#12 file (.p12, .pfx) and stores them under
            NAME. The passphrase is given with --passphrase, or as the first line of --passphrase-file (which keeps it out of
            the shell history and the process list); a wrong passphrase imports nothing. --scope as for create.
            """,
            ["postern certconfig import mx.example.com --pkcs12 mx.p12 --passphrase-file /root/mx.pass"],
            ["postern certconfig export", "postern certconfig assign", "postern certconfig create"]),

        ["postern certconfig export"] = new(
            """
            Writes the certificate NAME with its private key and chain to a PKCS#12 file (PBES2, AES-256-CBC, SHA-256),
            mode 0600: the only way a private key leaves the store. With --passphrase, --confirm must repeat it;
            --passphrase-file reads it from a file instead, and needs no confirmation.
            """,
            ["postern certconfig export mx.example.com --pkcs12 mx.p12 --passphrase-file /root/mx.pass"],
            ["postern certconfig import", "postern config export"]),

        ["postern certconfig assign"] = new(
            """
            Assigns the stored certificate NAME to one service: --listener LISTENER (the certificate the listener offers for
            inbound STARTTLS), --outbound (the client certificate Postern presents when it delivers) or --https (the HTTPS
            administration interface). Exactly one service per command. The change is staged: `postern commit` applies it, `postern clearchanges` discards it. A commit that names a
            certificate the store does not hold is refused with the reason.
            """,
            ["postern certconfig assign mx.example.com --listener IncomingMail",
             "postern certconfig assign client.example.com --outbound"],
            ["postern certconfig unassign", "postern certconfig list", "postern commit", "docs/CERTIFICATES.md"]),

        ["postern certconfig unassign"] = new(
            """
            Removes the certificate assignment of one service (--listener LISTENER, --outbound or --https). A listener then
            falls back to its configured certificateFile, else to the demo certificate (which is warned about); the outbound
            client certificate falls back to destinationControls.clientCertificateFile. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig unassign --listener IncomingMail"],
            ["postern certconfig assign", "postern certconfig list", "postern commit"]),

        ["postern certconfig delete"] = new(
            """
            Deletes the certificate NAME and its private key from the store. A certificate that the committed configuration
            or the staged changes assign is refused: unassign it (and commit) first. Export it first if the key may be needed
            again.
            """,
            ["postern certconfig delete old.example.com"],
            ["postern certconfig unassign", "postern certconfig export"]),

        ["postern certconfig ca"] = new(
            """
            The certificate authorities Postern trusts when it verifies a certificate: a receiving server's under the Verify
            TLS levels, and an MTA-STS policy host's. There are two lists, each switched on and off in the configuration
            (certificateAuthorities.systemListEnabled, customListEnabled). The system list is the operating system's bundle;
            the custom list is Postern's own, kept in the configuration document (certificateAuthorities.customList, plus
            customListFile when set). Every change to the lists is staged; `postern commit` applies it.
            """,
            ["postern certconfig ca system list",
             "postern certconfig ca custom import my-ca.pem"],
            ["postern certconfig ca system", "postern certconfig ca custom", "docs/CERTIFICATES.md"]),

        ["postern certconfig ca system"] = new(
            """
            The operating system's CA bundle (certificateAuthorities.systemBundle). Postern cannot change or delete it: it can
            switch it on and off, list it, reload it after an update of the ca-certificates package, and export it.
            """,
            ["postern certconfig ca system list", "postern certconfig ca system update"],
            ["postern certconfig ca custom", "postern certconfig ca"]),

        ["postern certconfig ca system list"] = new(
            """
            Lists the certificates of the system bundle (subject, expiry) and says whether the system list is enabled and
            where the bundle is. --json prints the same as one object.
            """,
            ["postern certconfig ca system list"],
            ["postern certconfig ca system enable", "postern certconfig ca custom list"]),

        ["postern certconfig ca system enable"] = new(
            """
            Trusts the system list again (certificateAuthorities.systemListEnabled). The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca system enable"],
            ["postern certconfig ca system disable", "postern certconfig ca system list"]),

        ["postern certconfig ca system disable"] = new(
            """
            Stops trusting the system list: only the custom list (when enabled) is trusted. Destinations under a Verify TLS
            level whose certificates chain to a public CA then fail verification, unless that CA is in the custom list.
            The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca system disable"],
            ["postern certconfig ca system enable", "postern certconfig ca custom import"]),

        ["postern certconfig ca system update"] = new(
            """
            Reads the operating system's bundle again (after the ca-certificates package was updated) and reports how many
            certificates it holds, the file's date and the ca-certificates package version. A running gateway reloads it
            within a second; nothing is staged.
            """,
            ["postern certconfig ca system update"],
            ["postern certconfig ca system list"]),

        ["postern certconfig ca system export"] = new(
            """
            Writes every certificate of the system bundle to FILE, in PEM.
            """,
            ["postern certconfig ca system export system-cas.pem"],
            ["postern certconfig ca custom export", "postern certconfig ca system list"]),

        ["postern certconfig ca custom"] = new(
            """
            Postern's own list of trusted CAs, kept in the configuration document: for private CAs, and for servers whose CA
            is not in the system bundle. It is trusted while it is enabled (`ca custom enable|disable`), whether the system
            list is enabled or not. Every change is staged; `postern commit` applies it.
            """,
            ["postern certconfig ca custom list",
             "postern certconfig ca custom import my-ca.pem"],
            ["postern certconfig ca system", "postern certconfig ca"]),

        ["postern certconfig ca custom disable"] = new(
            """
            Stops trusting the custom list; its certificates stay in the configuration. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca custom disable"],
            ["postern certconfig ca custom enable", "postern certconfig ca system list"]),

        ["postern certconfig ca custom enable"] = new(
            """
            Trusts the custom list (certificateAuthorities.customListEnabled) for every verification. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca custom enable"],
            ["postern certconfig ca custom disable", "postern certconfig ca custom list"]),

        ["postern certconfig ca custom list"] = new(
            """
            Says whether the custom list is enabled, and lists its CAs: SHA-256 fingerprint, subject and expiry. The
            fingerprint is what `ca custom remove` takes. Staged changes are included. --json prints the same as one object.
            """,
            ["postern certconfig ca custom list"],
            ["postern certconfig ca custom remove", "postern certconfig ca system list"]),

        ["postern certconfig ca custom import"] = new(
            """
            Adds every CA certificate in the PEM file FILE to the custom list; the ones already there are skipped, and a
            certificate that is not a CA (basicConstraints CA:FALSE) refuses the whole file. It says how many were added,
            and warns when the custom list is disabled. The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca custom import my-ca.pem"],
            ["postern certconfig ca custom add", "postern certconfig ca custom enable"]),

        ["postern certconfig ca custom add"] = new(
            """
            Adds the one CA certificate in the PEM file FILE to the custom list; a file with more than one certificate is
            refused (use import). It says when the CA is in the list already, and warns when the list is disabled.
            The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca custom add my-ca.pem"],
            ["postern certconfig ca custom import", "postern certconfig ca custom remove"]),

        ["postern certconfig ca custom remove"] = new(
            """
            Removes the CA with the SHA-256 fingerprint FINGERPRINT (as `ca custom list` prints it) from the custom list.
            The change is staged: `postern commit` applies it, `postern clearchanges` discards it.
            """,
            ["postern certconfig ca custom remove 50D858E0985ECC7F60418AAF0CC5AB587F42C2570A884095A9E8CCACD0F6545C"],
            ["postern certconfig ca custom list", "postern commit"]),

        ["postern certconfig ca custom export"] = new(
            """
            Writes every certificate of the custom list to FILE, in PEM.
            """,
            ["postern certconfig ca custom export custom-cas.pem"],
            ["postern certconfig ca custom import", "postern certconfig ca system export"]),

        ["postern dane"] = new(
            """
            DANE for SMTP (RFC 7672) tools. Whether DANE is used for a destination is a Destination Controls setting
            (`postern destconfig edit DOMAIN --dane opportunistic|mandatory`); DANE needs a validating resolver that Postern
            trusts (dns.trustedResolvers; by default only resolvers on loopback addresses).
            """,
            ["postern dane check example.com"],
            ["postern dane check", "postern destconfig edit", "docs/DANE.md"]),

        ["postern dane check"] = new(
            """
            Shows, for each MX host of DOMAIN, what delivery would do with DANE: the DNSSEC status of the MX records and of
            the host's addresses; the TLSA records at _25._tcp.HOST (following CNAMEs as RFC 7672 says) and whether each is
            usable; the decision for the host (Authenticate, EncryptOnly, NotApplicable or Unusable, with the reason); and a
            live STARTTLS connection whose certificate chain is matched against the TLSA records. It uses delivery's
            resolver, decision and SMTP client. --no-probe looks at DNS only.

            The last line is the verdict. Exit status 0 when DANE works or does not apply, 1 when some MX host fails it.
            Nothing is changed.
            """,
            ["postern dane check example.com", "postern dane check example.com --no-probe --json"],
            ["postern check", "postern destconfig edit", "postern hoststatus", "docs/DANE.md"]),

        ["postern sts"] = new(
            """
            The MTA-STS (RFC 8461) policy cache in <data>/queue/mta-sts.db: the policies fetched for destinations with
            MTA-STS on, kept across restarts and refreshed before they expire for domains that had mail in the last day. A
            failed fetch keeps an unexpired cached policy in force. These commands read and change the cache in place, also
            while the gateway runs.
            """,
            ["postern sts list", "postern sts refresh example.com"],
            ["postern check", "postern destconfig edit", "docs/MTA-STS.md"]),

        ["postern sts list"] = new(
            """
            Lists the cached policies: domain, policy id, mode, MX patterns and max_age, expiry and when each was last used.
            --json prints each with its policy text.
            """,
            ["postern sts list"],
            ["postern sts show", "postern sts refresh"]),

        ["postern sts show"] = new(
            """
            Shows the cached policy of DOMAIN: its id, when it was fetched, when it expires, when it was last used, and the
            policy text. Exit status 1 when nothing is cached for DOMAIN.
            """,
            ["postern sts show example.com"],
            ["postern sts list", "postern sts refresh"]),

        ["postern sts refresh"] = new(
            """
            Looks up the TXT record _mta-sts.DOMAIN and fetches the policy from https://mta-sts.DOMAIN/.well-known/mta-sts.txt
            now, whatever the cache holds, as delivery would (Postern's resolver, a verified certificate), and caches the
            result. The mail log lines of the lookup and the fetch are printed, then the policy. Exit status 1 when the
            domain has no usable policy.
            """,
            ["postern sts refresh example.com"],
            ["postern sts flush", "postern check"]),

        ["postern sts flush"] = new(
            """
            Removes the cached policy of DOMAIN; the next delivery to it looks up the TXT record and fetches the policy again.
            Exit status 1 when nothing was cached.
            """,
            ["postern sts flush example.com"],
            ["postern sts refresh", "postern sts list"]),

        ["postern tlsrpt"] = new(
            """
            SMTP TLS Reporting (RFC 8460), both ways.

            Sending (tlsReporting.enabled, off by default; postern tlsrpt setup): every outbound TLS session to an MX host
            is counted under the policy it was made under (DANE's TLSA records, the MTA-STS policy, or none) with the RFC's
            result type when it failed, per policy domain and UTC day. From tlsReporting.sendHourUtc on, each domain that
            publishes a _smtp._tls record and had traffic the day before gets its aggregate report: by mail through the
            queue (application/tlsrpt+gzip, with the TLS-Report-Domain and TLS-Report-Submitter headers) and by HTTPS POST,
            retried when refused. Report mail goes with TLS preferred and no DANE or MTA-STS (RFC 8460 §5.3) and its own
            sessions are never counted. postern tlsrpt status shows the counts and the reports.

            Receiving: other organisations' MTAs that send mail to our domains report daily how their
            TLS sessions with us went (which MTA-STS or DANE policy they applied, how many sessions succeeded and failed,
            and why: expired certificate, STARTTLS not offered, name mismatch ...), if our domains publish a TLSRPT record
            (_smtp._tls.DOMAIN TXT "v=TLSRPTv1; rua=...") pointing at Postern.

            Postern receives them two ways. By mail: tlsReporting.mailbox names an address (its domain must be in the
            Recipient Access Table of a public listener); mail to it is read as a report (the application/tlsrpt+gzip or
            application/tlsrpt+json part, RFC 8460 §5.3) and stored, never delivered on and never bounced; a mail without a
            readable report is discarded with a warning in the mail log. By HTTPS: with tlsReporting.httpsEndpoint on,
            the web interface accepts POST /tlsrpt (no login; RFC 8460 §5.2) and answers 201 when stored, 200 for a
            report stored before, 400 with the reason for one it cannot read, 413 over 10 MB, 404 while the setting is off.

            Reports are kept in <data>/queue/tlsrpt-received.db (a cluster keeps them in its database) for 400 days. The
            same report-id from the same organization-name is stored once, however often and by whichever way it comes.
            A report may be at most 10 MB as received and 20 MB once decompressed. The submitter's headers and the report's
            text are the sender's word (no DKIM check); everything a sender wrote is shown escaped.
            """,
            ["postern tlsrpt setup --enable on --organization \"Example Corp\"", "postern tlsrpt status", "postern tlsrpt list --failed"],
            ["postern tlsrpt status", "postern tlsrpt setup", "postern tlsrpt list", "postern tlsrpt show", "postern tlsrpt import", "docs/TLSRPT.md"]),

        ["postern tlsrpt status"] = new(
            """
            The sending side: whether TLS reporting is on, then per policy domain the outbound TLS sessions counted on DAY
            (--day YYYY-MM-DD, UTC; today by default) with the policy types, successful and failed counts and each kind of
            failure (result type, count, MX host and address, sending address, first reason), then the daily reports of the
            last week: day, domain, state (Sent, NotRequested: the domain asks for none; Retry: a lookup or POST failed and
            is tried again; Failed; TooLarge) and what was done. A cluster member shows the cluster's counts. --json prints
            the same as one object.
            """,
            ["postern tlsrpt status", "postern tlsrpt status --day 2026-11-29 --json"],
            ["postern tlsrpt setup", "docs/TLSRPT.md"]),

        ["postern tlsrpt setup"] = new(
            """
            Changes the TLS reporting settings; only the options given change, and the change is staged (postern commit
            applies it). --enable on|off counts sessions and sends the daily reports; --organization and --contact are
            written in reports (none = the hostname, postmaster@hostname); --from is the report mail's sender; --send-hour
            is the UTC hour from which the previous day's reports go out; --max-report-bytes caps a gzipped report;
            --mailbox ADDRESS|none and --https-endpoint on|off receive reports. A value out of range is refused with the
            reason; settings that cannot take effect (a mailbox the Recipient Access Table refuses, an HTTPS endpoint
            without the web interface) are warned about.
            """,
            ["postern tlsrpt setup --enable on --organization \"Example Corp\" --contact mailto:tls@example.com", "postern tlsrpt setup --mailbox tlsrpt@example.com"],
            ["postern tlsrpt status", "postern commit", "docs/TLSRPT.md"]),

        ["postern tlsrpt list"] = new(
            """
            Lists the received reports, newest first: number, when it arrived (UTC), the sending organisation, the policy
            domains it reports on, its date range, and its successful and failed session counts. --domain keeps the reports
            about one of our domains, --failed those with failed sessions, --since those received since a time.
            Warnings say when the configuration in force keeps reports from arriving (a report mailbox the Recipient
            Access Table refuses, an HTTPS endpoint without the web interface). --json prints each report's summary.
            """,
            ["postern tlsrpt list", "postern tlsrpt list --domain example.com --since 7d --json"],
            ["postern tlsrpt show", "postern tlsrpt import"]),

        ["postern tlsrpt show"] = new(
            """
            Shows received report ID in whole: the sending organisation, its contact, the report-id, the date range, the
            TLS-Report-Submitter and TLS-Report-Domain headers of a mailed report, and per policy its type (sts, tlsa or
            no-policy-found), policy domain, policy strings, MX hosts and session counts, with each failure: its result
            type, count, sending MTA address, receiving MX host and address, and the sender's reason code. --json prints
            the report's JSON as it was received (characters that could act on a terminal written as \uXXXX escapes).
            Exit status 1 when no report has that number.
            """,
            ["postern tlsrpt show 3", "postern tlsrpt show 3 --json"],
            ["postern tlsrpt list"]),

        ["postern tlsrpt import"] = new(
            """
            Stores a report that reached the administrator some other way: FILE is the report's JSON, gzipped (.json.gz)
            or not, or a mail carrying it (.eml, or any file that is neither gzip nor a JSON object). It is read and
            stored exactly as a report arriving by mail would be. Exit status 1, with the reason, when FILE holds no
            readable report; a report stored before is not stored again.
            """,
            ["postern tlsrpt import report.json.gz", "postern tlsrpt import report.eml"],
            ["postern tlsrpt list", "postern tlsrpt show"]),

        ["postern check"] = new(
            """
            The domain checker: is it safe to enforce MTA-STS for DOMAIN (`postern destconfig edit DOMAIN --mta-sts on`)?
            It shows the TXT record _mta-sts.DOMAIN, the policy fetch with the policy host's certificate, the policy, and each
            MX host: whether the policy allows it, and a live STARTTLS probe judged as enforcement would judge it (TLS 1.2 or
            newer, a certificate valid for that MX host name under the trusted CAs). The DANE status follows, as `postern dane
            check --no-probe` gives it.

            The verdict is `SAFE to enable MTA-STS enforcement ...` with exit status 0, or `NOT READY: ...` with the reason
            and exit status 1. Nothing is changed, not even the policy cache.
            """,
            ["postern check example.com", "postern check example.com --json"],
            ["postern dane check", "postern sts refresh", "postern destconfig edit", "docs/MTA-STS.md"]),
    };
}
