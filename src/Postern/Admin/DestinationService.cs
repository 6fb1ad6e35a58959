using System.CommandLine;
using System.Text.Json;
using Postern.Dns;

namespace Postern.Admin;

/// <summary>The changes one destconfig command asks for; null = leave as it is, "default" = inherit.</summary>
public sealed record DestinationChanges(string? Tls = null, string? Dane = null, string? MtaSts = null, string? Concurrency = null,
    string? MaxMessages = null, string? BounceVerification = null, string? BounceProfile = null);

/// <summary>
/// Destination Controls as an application service: each operation changes the working
/// (staged) configuration, checks the result, and stages it. The CLI is one front end; the
/// web interface will be another.
/// </summary>
/// <param name="storedCertificates">The certificate store's certificates, for the outbound client certificate of SETUP.</param>
/// <param name="who">Who stages the changes (the web interface's user); null = the user running the CLI.</param>
public sealed class DestinationService(ConfigService config, PosternConfig fallback, Func<IReadOnlyList<Security.CertificateInfo>>? storedCertificates = null, string? who = null)
{
    public static readonly string[] TlsChoices = ["no", "preferred", "required", "preferredVerify", "requiredVerify", "requiredVerifyHostedDomains"];

    public PosternConfig Working => config.Working(fallback);

    public IReadOnlyList<string> New(string domain, DestinationChanges changes)
    {
        var c = Working;
        var d = DomainNames.IsValidDomainPattern(domain) ? domain.ToLowerInvariant() : throw new ConfigException($"'{domain}' is not a domain or .domain pattern");
        if (c.DestinationControls.Entries.Any(e => e.Domain.Equals(d, StringComparison.OrdinalIgnoreCase)))
            throw new ConfigException($"destination '{d}' already exists (use edit)");
        var entry = new DestinationEntry { Domain = d };
        Apply(entry, changes, isDefault: false);
        c.DestinationControls.Entries.Add(entry);
        return Stage(c, d);
    }

    public IReadOnlyList<string> Edit(string domain, DestinationChanges changes)
    {
        var c = Working;
        var isDefault = domain.Equals("default", StringComparison.OrdinalIgnoreCase);
        var entry = isDefault ? c.DestinationControls.Default
            : c.DestinationControls.Entries.FirstOrDefault(e => e.Domain.Equals(domain, StringComparison.OrdinalIgnoreCase))
              ?? throw new ConfigException($"there is no destination '{domain}' (use new)");
        Apply(entry, changes, isDefault);
        return Stage(c, entry.Domain);
    }

    /// <summary>
    /// Saves a whole entry (the web form): a new one when <paramref name="original"/> is null,
    /// the Default entry when it is "default", else the entry it names (which may be renamed).
    /// </summary>
    public IReadOnlyList<string> Save(string? original, DestinationEntry entry)
    {
        var c = Working;
        var isDefault = original?.Equals("default", StringComparison.OrdinalIgnoreCase) == true;
        if (isDefault)
        {
            entry.Domain = "Default";
            c.DestinationControls.Default = entry;
            return Stage(c, "default");
        }
        entry.Domain = DomainNames.IsValidDomainPattern(entry.Domain) ? entry.Domain.ToLowerInvariant() : throw new ConfigException($"'{entry.Domain}' is not a domain or .domain pattern");
        var entries = c.DestinationControls.Entries;
        var at = original is null ? -1 : entries.FindIndex(e => e.Domain.Equals(original, StringComparison.OrdinalIgnoreCase));
        if (original is not null && at < 0) throw new ConfigException($"there is no destination '{original}'");
        if (entries.Where((e, i) => i != at).Any(e => e.Domain.Equals(entry.Domain, StringComparison.OrdinalIgnoreCase)))
            throw new ConfigException($"destination '{entry.Domain}' already exists");
        if (at >= 0) entries[at] = entry; else entries.Add(entry);
        return Stage(c, entry.Domain);
    }

    public void Delete(string domain)
    {
        var c = Working;
        if (c.DestinationControls.Entries.RemoveAll(e => e.Domain.Equals(domain, StringComparison.OrdinalIgnoreCase)) == 0)
            throw new ConfigException($"there is no destination '{domain}'");
        Stage(c, domain);
    }

    public IReadOnlyList<Security.CertificateInfo> StoredCertificates() =>
        storedCertificates?.Invoke() ?? throw new ConfigException("the certificate store is not available here");

    /// <summary>The global settings (destconfig SETUP): the alert on a failed required TLS connection, the outbound client certificate ("none" clears it).</summary>
    public void Setup(bool? alertOnRequiredTlsFailure, string? clientCertificate)
    {
        var c = Working;
        if (alertOnRequiredTlsFailure is { } alert) c.DestinationControls.AlertOnRequiredTlsFailure = alert;
        if (clientCertificate is not null)
            c.DestinationControls.ClientCertificate = clientCertificate.Equals("none", StringComparison.OrdinalIgnoreCase) ? null
                : CertificateService.StoredName(StoredCertificates(), clientCertificate);
        Stage(c, "default");
    }

    /// <summary>The whole table (Default, entries and global settings) as the document destconfig EXPORT writes and IMPORT reads.</summary>
    public string Export() => JsonSerializer.Serialize(Working.DestinationControls, PosternConfig.JsonOptions) + "\n";

    /// <summary>Replaces the whole table with an exported one, checked whole; returns notes.</summary>
    public IReadOnlyList<string> Import(string document, string source)
    {
        DestinationControls table;
        try { table = JsonSerializer.Deserialize<DestinationControls>(document, PosternConfig.JsonOptions) ?? throw new ConfigException($"{source} is empty"); }
        catch (JsonException e) { throw new ConfigException($"{source} is not a destination table{(e.LineNumber is { } l ? $" (line {l + 1})" : "")}: {e.Message}"); }
        if (table.Default is null || table.Entries is null) throw new ConfigException($"{source}: a destination table needs \"default\" and \"entries\"");
        var c = Working;
        c.DestinationControls = table;
        var notes = Stage(c, "default").ToList();
        notes.Insert(0, $"{table.Entries.Count} destination(s) and the Default entry imported from {source}.");
        return notes;
    }

    public IReadOnlyList<EffectiveDestination> List()
    {
        var c = Working;
        return c.DestinationControls.Entries.Select(e => c.DestinationControls.Resolve(e.Domain.TrimStart('.')) with { Entry = e.Domain })
            .Prepend(c.DestinationControls.Resolve("default.invalid") with { Entry = "Default" }).ToList();
    }

    /// <summary>Validates the whole changed document (refusing the change with the reasons) and stages it; returns notes.</summary>
    private IReadOnlyList<string> Stage(PosternConfig c, string domain)
    {
        c.Validate();
        config.Stage(c, who);
        var notes = new List<string>();
        var effective = c.DestinationControls.Resolve(domain.TrimStart('.'));
        if (effective.MtaSts == MtaStsSupport.On && c.SmtpRoutes.Any(r => DomainNames.MatchesPattern(domain.TrimStart('.'), r.Domain)))
            notes.Add($"Note: {domain} has an SMTP route; MTA-STS is not enforced for domains with SMTP routes.");
        return notes;
    }

    private static void Apply(DestinationEntry e, DestinationChanges x, bool isDefault)
    {
        string? Inherit(string? v) => v is null ? null : v.Equals("default", StringComparison.OrdinalIgnoreCase) && !isDefault ? "" : v;
        if (Inherit(x.Tls) is { } tls) e.Tls = tls == "" ? TlsLevel.Default : ParseTls(tls);
        if (Inherit(x.Dane) is { } dane) e.Dane = dane == "" ? DaneSupport.Default : ParseEnum<DaneSupport>(dane, "dane", "none, opportunistic, mandatory");
        if (Inherit(x.MtaSts) is { } sts) e.MtaSts = sts == "" ? MtaStsSupport.Default : ParseEnum<MtaStsSupport>(sts, "mta-sts", "on, off");
        if (Inherit(x.Concurrency) is { } n) e.ConcurrentConnections = n == "" ? null : ParseInt(n, "concurrency");
        if (Inherit(x.MaxMessages) is { } m) e.MaxMessagesPerConnection = m == "" ? null : ParseInt(m, "max-messages");
        if (Inherit(x.BounceVerification) is { } bv) e.BounceVerification = bv == "" ? null : ParseEnum<MtaStsSupport>(bv, "bounce-verification", "on, off") == MtaStsSupport.On;
        if (Inherit(x.BounceProfile) is { } bp) e.BounceProfile = bp == "" ? null : bp;
    }

    /// <summary>A TLS level by name or by the appliance's menu number (1 No ... 6 Required - Verify Hosted Domains).</summary>
    public static TlsLevel ParseTls(string value)
    {
        if (int.TryParse(value, out var n) && n is >= 1 and <= 6) return (TlsLevel)n;
        var i = Array.FindIndex(TlsChoices, c => c.Equals(value, StringComparison.OrdinalIgnoreCase));
        return i >= 0 ? (TlsLevel)(i + 1) : throw new ConfigException($"tls '{value}' is not one of {string.Join(", ", TlsChoices)} (or 1-6)");
    }

    private static T ParseEnum<T>(string value, string name, string choices) where T : struct, Enum =>
        Enum.TryParse<T>(value, ignoreCase: true, out var v) && !value.Equals("default", StringComparison.OrdinalIgnoreCase) && !int.TryParse(value, out _)
            ? v : throw new ConfigException($"{name} '{value}' is not one of {choices}");

    private static int ParseInt(string value, string name) =>
        int.TryParse(value, out var v) ? v : throw new ConfigException($"{name} '{value}' is not a number");
}

/// <summary>`postern destconfig new|edit|delete|list|export|import|setup` (the scriptable forms), and the appliance's dialogue without a subcommand.</summary>
public static class DestConfigCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var dest = new Command("destconfig", "Destination Controls: per-domain TLS, DANE, MTA-STS, limits (changes are staged; postern commit applies them)");
        var domain = new Argument<string>("domain") { Description = "example.com, .example.com, or 'default' (edit only)" };
        var tls = new Option<string?>("--tls") { Description = "no | preferred | required | preferredVerify | requiredVerify | requiredVerifyHostedDomains | 1-6 | default" };
        var dane = new Option<string?>("--dane") { Description = "none | opportunistic | mandatory | default" };
        var sts = new Option<string?>("--mta-sts") { Description = "on | off | default" };
        var concurrency = new Option<string?>("--concurrency") { Description = "concurrent connections (1-1000) | default" };
        var maxMessages = new Option<string?>("--max-messages") { Description = "messages per connection (1-1000) | default" };
        var bounceVerification = new Option<string?>("--bounce-verification") { Description = "on | off | default" };
        var bounceProfile = new Option<string?>("--bounce-profile") { Description = "a bounce profile name | default" };
        Option[] changeOptions = [tls, dane, sts, concurrency, maxMessages, bounceVerification, bounceProfile];

        DestinationChanges Changes(ParseResult p) => new(p.GetValue(tls), p.GetValue(dane), p.GetValue(sts), p.GetValue(concurrency),
            p.GetValue(maxMessages), p.GetValue(bounceVerification), p.GetValue(bounceProfile));

        int Run(ParseResult p, Func<DestinationService, IReadOnlyList<string>> action, string done) =>
            ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
            {
                foreach (var note in action(new DestinationService(service, config, () => CertificateService.StoredCertificates(config)))) Console.WriteLine(note);
                Console.WriteLine(done + " Changes are staged: postern commit applies them, postern clearchanges discards them.");
                return 0;
            });

        var create = new Command("new", "Add a destination") { domain, configOption };
        foreach (var o in changeOptions) create.Options.Add(o);
        create.SetAction(p => Run(p, s => s.New(p.GetValue(domain)!, Changes(p)), $"Destination {p.GetValue(domain)} added."));

        var edit = new Command("edit", "Change a destination (or the Default entry)") { domain, configOption };
        foreach (var o in changeOptions) edit.Options.Add(o);
        edit.SetAction(p => Run(p, s => s.Edit(p.GetValue(domain)!, Changes(p)), $"Destination {p.GetValue(domain)} changed."));

        var delete = new Command("delete", "Remove a destination") { domain, configOption };
        delete.SetAction(p => Run(p, s => { s.Delete(p.GetValue(domain)!); return []; }, $"Destination {p.GetValue(domain)} deleted."));

        var list = new Command("list", "The destinations and the settings in force for each (staged changes included)") { configOption, jsonOption };
        list.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
        {
            var rows = new DestinationService(service, config).List();
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(rows, PosternConfig.JsonOptions)); return 0; }
            Console.WriteLine($"{"Destination",-28} {"TLS",-34} {"DANE",-14} {"MTA-STS",-8} {"Conns",5} {"Msgs",5} Bounce profile");
            foreach (var r in rows)
                Console.WriteLine($"{r.Entry,-28} {EffectiveDestination.LevelName(r.Tls),-34} {r.Dane.ToString().ToLowerInvariant(),-14} {r.MtaSts.ToString().ToLowerInvariant(),-8} {r.ConcurrentConnections,5} {r.MaxMessagesPerConnection,5} {r.BounceProfile}");
            if (service.HasStagedChanges) Console.WriteLine("(includes staged changes not yet committed)");
            return 0;
        }));

        var fileArgument = new Argument<FileInfo>("file") { Description = "JSON file with the destination table" };
        var export = new Command("export", "Write the destination table (Default, entries, global settings; staged changes included) to a file") { fileArgument, configOption };
        export.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
        {
            var file = p.GetValue(fileArgument)!;
            File.WriteAllText(file.FullName, new DestinationService(service, config).Export());
            Console.WriteLine($"The destination table was exported to {file.FullName}.");
            return 0;
        }));
        var import = new Command("import", "Replace the destination table with one from a file (staged)") { fileArgument, configOption };
        import.SetAction(p => Run(p, s =>
        {
            var file = p.GetValue(fileArgument)!;
            string text;
            try { text = File.ReadAllText(file.FullName); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ConfigException($"cannot read {file.FullName}: {e.Message}"); }
            return s.Import(text, file.FullName);
        }, "Destination table imported."));
        var alertOption = new Option<string?>("--alert-on-tls-failure") { HelpName = "on|off", Description = "on | off: send an alert when a required TLS connection fails" };
        var clientCertificate = new Option<string?>("--client-certificate") { HelpName = "NAME|none", Description = "A stored certificate (certconfig list) presented on outbound TLS when asked, or none" };
        var setup = new Command("setup", "Change the global settings of Destination Controls") { alertOption, clientCertificate, configOption };
        setup.SetAction(p => Run(p, s =>
        {
            bool? alert = p.GetValue(alertOption) switch
            {
                null => null,
                var v when v.Equals("on", StringComparison.OrdinalIgnoreCase) => true,
                var v when v.Equals("off", StringComparison.OrdinalIgnoreCase) => false,
                var v => throw new ConfigException($"--alert-on-tls-failure '{v}' is not on or off"),
            };
            s.Setup(alert, p.GetValue(clientCertificate));
            return [];
        }, "Global settings changed."));

        foreach (var c in new[] { create, edit, delete, list, export, import, setup }) dest.Subcommands.Add(c);
        // Without a subcommand: the appliance's dialogue on the terminal (or piped answers).
        dest.Options.Add(configOption);
        dest.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
            new DestConfigDialogue(new DestinationService(service, config, () => CertificateService.StoredCertificates(config)), Console.In, Console.Out).Run()));
        return dest;
    }
}
