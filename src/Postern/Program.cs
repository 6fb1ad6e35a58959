using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using Postern;
using Postern.Admin;
using Postern.Queue;

var configOption = new Option<FileInfo?>("--config", "-c") { Description = "Configuration file (JSON); without it the embedded default is used" };
var jsonOption = new Option<bool>("--json") { Description = "Machine-readable output" };

var root = new RootCommand("Postern secure email gateway");

var serve = new Command("serve", "Run the gateway (listeners, queue, delivery)") { configOption };
serve.SetAction(async (parse, ct) =>
{
    var file = parse.GetValue(configOption);
    var config = LoadConfig(file);
    if (config is null) return 2;
    try
    {
        using var versions = Postern.Cluster.Stores.Config(config);
        var service = Postern.Cluster.Stores.ConfigService(versions, config);
        if (file is not null)
        {
            var (inForce, committed) = service.FromFile(config, file.FullName);
            config = inForce;
            if (committed is not null) Console.WriteLine($"configuration file {file.FullName} committed as version {committed.Number}");
            if (service.Ignored is { } ignored) Console.WriteLine($"WARNING: {ignored}");
        }
        else if (service.Committed() is { } latest) config = latest;   // the embedded default yields to committed versions
        using (var certificates = Postern.Security.CertificateStore.Open(config))
            if (new CertificateService(service, config, certificates).MigrateLegacySettings() is { } moved)
            {
                Console.WriteLine(moved);
                config = service.Committed()!;
            }
        if (service.HasStagedChanges)
            Console.WriteLine("WARNING: there are staged configuration changes that are not committed (postern commit applies them, postern clearchanges discards them)");
    }
    catch (Exception e) when (e is ConfigException or Postern.Security.CertificateException)
    {
        Console.Error.WriteLine($"postern: {e.Message}");
        return 2;
    }
    var problems = ConfigPreflight.Problems(config, checkBind: false);
    foreach (var problem in problems) Console.Error.WriteLine($"postern: {problem}");
    if (problems.Count > 0) return 2;
    foreach (var warning in ConfigPreflight.Warnings(config)) Console.WriteLine($"WARNING: {warning}");
    Gateway gateway;
    try { gateway = Gateway.Start(config, Console.Out); }
    catch (Exception e)
    {
        // One clear line, never a stack trace: the administrator fixes the cause and starts again.
        Console.Error.WriteLine($"postern: cannot start: {e.Message}");
        return 2;
    }
    var stop = new TaskCompletionSource();
    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
    using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
    // SIGHUP: re-read the configuration file and commit it when it changed (the `postfix reload`
    // habit); the running gateway applies the new version within a second.
    using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
    {
        c.Cancel = true;
        if (file is null) { Console.WriteLine("SIGHUP: no --config file to re-read"); return; }
        try
        {
            var reread = PosternConfig.Load(file.FullName);
            using var versions = Postern.Cluster.Stores.Config(reread);
            var (_, committed) = Postern.Cluster.Stores.ConfigService(versions, reread).FromFile(reread, file.FullName);
            var text = committed is null ? $"SIGHUP: {file.FullName} is unchanged" : $"SIGHUP: {file.FullName} committed as version {committed.Number}";
            Console.WriteLine(text);
            gateway.Events.Publish(new Postern.Observability.SystemNotice(text));
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"postern: SIGHUP: {e.Message}");
            gateway.Events.Publish(new Postern.Observability.SystemWarning($"SIGHUP: configuration file refused, nothing changed: {e.Message.Replace('\n', ' ')}"));
        }
    });
    // Only now, with every signal handled, say that we run: a SIGHUP or SIGTERM right after
    // readiness must not meet the default action (which ends the process).
    Console.WriteLine($"Postern running as {config.Hostname}; data in {gateway.DataDirectory}; mail log {gateway.MailLog.CurrentPath}");
    ServiceInstaller.Notify("READY=1");   // systemd Type=notify: the listeners are bound
    await stop.Task.WaitAsync(ct).ContinueWith(_ => { }, TaskScheduler.Default);
    Console.WriteLine("Postern stopping");
    ServiceInstaller.Notify("STOPPING=1");
    await gateway.DisposeAsync();
    return 0;
});
root.Subcommands.Add(serve);

var configCommand = new Command("config", "Show or check configuration");
var showDefault = new Command("default", "Print the embedded default configuration");
showDefault.SetAction(_ => { Console.WriteLine(PosternConfig.CreateDefault().ToJson()); return 0; });
var check = new Command("check", "Validate a configuration file") { configOption };
check.SetAction(parse =>
{
    var config = LoadConfig(parse.GetValue(configOption));
    if (config is null) return 2;
    var problems = ConfigPreflight.Problems(config, checkBind: true);
    foreach (var problem in problems) Console.Error.WriteLine($"postern: {problem}");
    if (problems.Count > 0) return 2;
    foreach (var warning in ConfigPreflight.Warnings(config)) Console.WriteLine($"warning: {warning}");
    Console.WriteLine("configuration is valid");
    return 0;
});
configCommand.Subcommands.Add(showDefault);
configCommand.Subcommands.Add(check);
ConfigCommands.AddTo(configCommand, root, configOption, jsonOption, LoadConfig);
root.Subcommands.Add(configCommand);
root.Subcommands.Add(DestConfigCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(ServiceInstaller.Build());
OperatorCommands.AddTo(root, configOption, jsonOption, LoadConfig);
HostStatusCommands.AddTo(root, configOption, jsonOption, LoadConfig);
ListenerAlertCommands.AddTo(root, configOption, jsonOption, LoadConfig);

root.Subcommands.Add(QueueCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(TrackCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(CertConfigCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(DaneCheckCommand.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(StsCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(StsCommands.BuildCheck(configOption, jsonOption, LoadConfig));
var tlsrpt = TlsRptCommands.Build(configOption, jsonOption, LoadConfig);
TlsRptSendingCommands.AddTo(tlsrpt, configOption, jsonOption, LoadConfig);
root.Subcommands.Add(tlsrpt);
root.Subcommands.Add(AdminUserCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(InterfaceCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(ClusterCommands.Build(configOption, jsonOption, LoadConfig));
root.Subcommands.Add(ClusterCommands.BuildStore(configOption, LoadConfig));
ManPages.Install(root);   // after every command: `--help` and `postern help` print the manual pages

// No response files: an argument like "@example.com" (track --sender) is an argument, not a file to read.
return await root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null }).InvokeAsync();

static PosternConfig? LoadConfig(FileInfo? file)
{
    try { return file is null ? PosternConfig.CreateDefault() : PosternConfig.Load(file.FullName); }
    catch (ConfigException e)
    {
        Console.Error.WriteLine($"postern: {e.Message}");
        return null;
    }
}
