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

    /// <summary>The configuration store (the data directory's, or the cluster's).</summary>
    public static int WithService(FileInfo? file, Func<FileInfo?, PosternConfig?> loadConfig, Func<ConfigService, PosternConfig, int> action)
    {
        var config = loadConfig(file);
        if (config is null) return 2;
        try
        {
            using var store = Cluster.Stores.Config(config);
            return action(Cluster.Stores.ConfigService(store, config, c => ConfigPreflight.Problems(c, checkBind: false)), config);
        }
        catch (Exception e) when (e is ConfigException or Security.CertificateException)
        {
            Console.Error.WriteLine($"postern: {e.Message}");
            return 2;
        }
    }

    /// <summary>The configuration a running gateway uses: the latest committed version, else the given file's.</summary>
    public static PosternConfig InForce(PosternConfig fromFile)
    {
        using var store = Cluster.Stores.Config(fromFile);
        return Cluster.Stores.ConfigService(store, fromFile).Committed() ?? fromFile;
    }

    /// <summary>A plain configuration document, or a bundle written by `config export --with-certificates`.</summary>
    private static (PosternConfig Config, IReadOnlyList<ExportedCertificate> Certificates) ReadExport(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ConfigException($"cannot read {path}: {e.Message}"); }
        System.Text.Json.Nodes.JsonNode? node;
        try { node = System.Text.Json.Nodes.JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new ConfigException($"{path} is not valid JSON{(e.LineNumber is { } l ? $" (line {l + 1})" : "")}: {e.Message}"); }
        if (node is System.Text.Json.Nodes.JsonObject o && o.ContainsKey("configuration") && o.ContainsKey("certificates"))
        {
            ConfigurationBundle? bundle;
            try { bundle = o.Deserialize<ConfigurationBundle>(PosternConfig.JsonOptions); }
            catch (JsonException e) { throw new ConfigException($"{path} is not a configuration export: {e.Message}"); }
            if (bundle?.Configuration is null || bundle.Certificates is null) throw new ConfigException($"{path} is not a configuration export");
            return (PosternConfig.Parse(bundle.Configuration.ToJsonString(), $"configuration in {path}"), bundle.Certificates);
        }
        return (PosternConfig.Parse(text, $"configuration file {path}"), []);
    }

    private static string Passphrase(string? given, FileInfo? file)
    {
        if (given is not null && file is not null) throw new ConfigException("give --passphrase or --passphrase-file, not both");
        if (file is not null)
        {
            try { return File.ReadLines(file.FullName).FirstOrDefault() ?? ""; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ConfigException($"cannot read {file.FullName}: {e.Message}"); }
        }
        return given ?? throw new ConfigException("the certificates need a passphrase (--passphrase or --passphrase-file)");
    }

    /// <summary>Said after every commit.</summary>
    public const string AppliedAtStart = "A running gateway applies it within about a second (its mail log says so); DNS, log, metrics and web interface settings need a restart.";

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

        var withCertificates = new Option<bool>("--with-certificates") { Description = "Include every stored certificate with its private key, encrypted (PKCS#12, PBES2/AES-256) under the passphrase" };
        var passphrase = new Option<string?>("--passphrase") { Description = "Passphrase for the certificates (at least 8 characters)" };
        var passphraseFile = new Option<FileInfo?>("--passphrase-file") { Description = "File whose first line is the passphrase" };
        var export = new Command("export", "Write the configuration in force (or the staged one) to a file, optionally with the certificates") { fileArgument, withCertificates, passphrase, passphraseFile, configOption };
        export.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, config) =>
        {
            var file = parse.GetValue(fileArgument)!;
            var working = service.Working(config);
            if (!parse.GetValue(withCertificates))
            {
                File.WriteAllText(file.FullName, working.ToJson() + "\n");
                Console.WriteLine($"Configuration written to {file.FullName} (no certificates: --with-certificates adds them, keys encrypted).");
                return 0;
            }
            var secret = Passphrase(parse.GetValue(passphrase), parse.GetValue(passphraseFile));
            using var store = Security.CertificateStore.Open(config);
            var bundle = new ConfigurationBundle(System.Text.Json.Nodes.JsonNode.Parse(working.ToJson())!, new CertificateService(service, config, store).ExportAll(secret));
            Security.ServerCertificate.WritePrivate(file.FullName, System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(bundle, PosternConfig.JsonOptions) + "\n"));
            Console.WriteLine($"Configuration and {bundle.Certificates.Count} certificate(s) written to {file.FullName} (mode 0600; private keys encrypted under the passphrase, never in clear).");
            return 0;
        }));

        var import = new Command("import", "Stage the configuration of a file (postern commit applies it); certificates in it are added to the store") { fileArgument, passphrase, passphraseFile, configOption };
        import.SetAction(parse => WithService(parse.GetValue(configOption), loadConfig, (service, config) =>
        {
            var path = parse.GetValue(fileArgument)!.FullName;
            var (imported, certificates) = ReadExport(path);
            var added = 0;
            if (certificates.Count > 0)
            {
                using var store = Security.CertificateStore.Open(config);
                try { added = new CertificateService(service, config, store).ImportAll(certificates, Passphrase(parse.GetValue(passphrase), parse.GetValue(passphraseFile))); }
                catch (Security.CertificateException e) { throw new ConfigException(e.Message); }
            }
            service.Stage(imported);
            Console.WriteLine(certificates.Count == 0 ? "Imported and staged; postern commit applies it."
                : $"{added} certificate(s) added to the store ({certificates.Count - added} were here already); the configuration is staged; postern commit applies it.");
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
