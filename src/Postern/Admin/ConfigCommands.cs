using System.CommandLine;
using System.Text.Json;

namespace Postern.Admin;

/// <summary>
/// `postern config versions|show|diff|rollback|export|import`, `postern commit`,
/// `postern clearchanges` and `postern destconfig` (non-interactive forms): front ends of
/// <see cref="ConfigService"/> and <see cref="DestinationService"/>.
/// </summary>
public static class ConfigCommands
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };

    /// <summary>The store of the configuration's data directory.</summary>
    public static int WithService(FileInfo? file, Func<FileInfo?, PosternConfig?> loadConfig, Func<ConfigService, PosternConfig, int> action)
    {
        var config = loadConfig(file);
        if (config is null) return 2;
        using var store = new SqliteConfigStore(SqliteConfigStore.PathFor(Path.GetFullPath(config.DataDirectory)));
        try { return action(new ConfigService(store, c => ConfigPreflight.Problems(c, checkBind: false)), config); }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"postern: {e.Message}");
            return 2;
        }
    }

    /// <summary>The configuration a running gateway uses: the latest committed version, else the given file's.</summary>
    public static PosternConfig InForce(PosternConfig fromFile)
    {
        using var store = new SqliteConfigStore(SqliteConfigStore.PathFor(Path.GetFullPath(fromFile.DataDirectory)));
        return new ConfigService(store).Committed() ?? fromFile;
    }

    /// <summary>Said after every commit.</summary>
    public const string AppliedAtStart = "A running gateway applies it within about a second (its mail log says so); listener addresses, DNS and log settings need a restart.";

    public static void AddTo(Command configCommand, RootCommand root, Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var number = new Argument<int>("version") { Description = "Version number" };
        var other = new Argument<int?>("other") { Description = "Second version (default: the staged changes, else the latest version)", Arity = ArgumentArity.ZeroOrOne };
        var fileArgument = new Argument<FileInfo>("file") { Description = "JSON file" };

        var versions = new Command("versions", "List committed configuration versions") { configOption, jsonOption };
        versions.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var list = service.Versions();
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(list.Select(v => new { v.Number, v.Time, v.Who, v.Comment }), Json)); return 0; }
            if (list.Count == 0) Console.WriteLine("No configuration has been committed yet.");
            foreach (var v in list) Console.WriteLine($"{v.Number,4}  {v.Time.UtcDateTime:u}  {v.Who,-12} {v.Comment}");
            if (service.HasStagedChanges) Console.WriteLine("There are staged changes (postern commit applies them, postern clearchanges discards them).");
            return 0;
        }));

        var show = new Command("show", "Print one version's document") { number, configOption };
        show.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var v = service.Version(parse.GetValue(number)) ?? throw new ConfigException($"there is no configuration version {parse.GetValue(number)}");
            Console.WriteLine(v.Document);
            return 0;
        }));

        var diff = new Command("diff", "Differences between two versions (0 = the staged changes)") { number, other, configOption };
        diff.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var lines = service.Diff(parse.GetValue(number), parse.GetValue(other));
            foreach (var l in lines) Console.WriteLine(l);
            if (lines.Count == 0) Console.WriteLine("(no differences)");
            return 0;
        }));

        var rollback = new Command("rollback", "Stage an earlier version's content (postern commit applies it)") { number, configOption };
        rollback.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            service.Rollback(parse.GetValue(number));
            Console.WriteLine($"Version {parse.GetValue(number)} is staged; postern commit applies it.");
            return 0;
        }));

        var export = new Command("export", "Write the configuration in force (or the staged one) to a file") { fileArgument, configOption };
        export.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, config) =>
        {
            var file = parse.GetValue(fileArgument)!;
            File.WriteAllText(file.FullName, service.Working(config).ToJson() + "\n");
            Console.WriteLine($"Configuration written to {file.FullName} (no private keys: certificates stay in the certificate store).");
            return 0;
        }));

        var import = new Command("import", "Stage the configuration of a file (postern commit applies it)") { fileArgument, configOption };
        import.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var imported = PosternConfig.Load(parse.GetValue(fileArgument)!.FullName);
            service.Stage(imported);
            Console.WriteLine("Imported and staged; postern commit applies it.");
            return 0;
        }));

        foreach (var c in new[] { versions, show, diff, rollback, export, import }) configCommand.Subcommands.Add(c);

        var comment = new Option<string>("--comment") { Description = "Why (kept with the version)", DefaultValueFactory = _ => "" };
        var commit = new Command("commit", "Validate the staged changes and commit them as a new version") { configOption, comment };
        commit.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var v = service.Commit(parse.GetValue(comment) ?? "");
            Console.WriteLine($"Changes committed: version {v.Number} by {v.Who} at {v.Time.UtcDateTime:u}.");
            Console.WriteLine(AppliedAtStart);
            return 0;
        }));
        var clear = new Command("clearchanges", "Discard the staged changes") { configOption };
        clear.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, _) =>
        {
            var had = service.HasStagedChanges;
            service.ClearChanges();
            Console.WriteLine(had ? "Staged changes discarded." : "There were no staged changes.");
            return 0;
        }));
        root.Subcommands.Add(commit);
        root.Subcommands.Add(clear);
    }
}
