using System.CommandLine;
using System.Text.Json;

namespace Postern.Admin;

/// <summary>
/// Listeners, HAT sender groups and mail flow policies, and alert recipients, as application
/// services: each change is made on the working (staged) configuration, checked whole, and
/// staged. `listenerconfig` and `alertconfig` (scriptable forms) are their front ends.
/// </summary>
public sealed class ListenerService(ConfigService config, PosternConfig fallback)
{
    public PosternConfig Working => config.Working(fallback);

    private void Stage(PosternConfig c)
    {
        c.Validate();
        config.Stage(c);
    }

    private static ListenerSettings Find(PosternConfig c, string name) =>
        c.Listeners.FirstOrDefault(l => l.Name.Equals(name, StringComparison.OrdinalIgnoreCase)) ?? throw new ConfigException($"there is no listener '{name}'");

    public void New(ListenerSettings listener)
    {
        var c = Working;
        if (c.Listeners.Any(l => l.Name.Equals(listener.Name, StringComparison.OrdinalIgnoreCase))) throw new ConfigException($"listener '{listener.Name}' already exists");
        c.Listeners.Add(listener);
        Stage(c);
    }

    public void Edit(string name, Action<ListenerSettings> change)
    {
        var c = Working;
        change(Find(c, name));
        Stage(c);
    }

    public void Delete(string name)
    {
        var c = Working;
        c.Listeners.Remove(Find(c, name));
        Stage(c);
    }

    /// <summary>Adds (or replaces) a HAT sender group; the order of groups is the order of matching.</summary>
    public void SetGroup(string listener, SenderGroup group)
    {
        var c = Working;
        var l = Find(c, listener);
        var i = l.SenderGroups.FindIndex(g => g.Name.Equals(group.Name, StringComparison.OrdinalIgnoreCase));
        if (i >= 0) l.SenderGroups[i] = group; else l.SenderGroups.Add(group);
        Stage(c);
    }

    public void RemoveGroup(string listener, string group)
    {
        var c = Working;
        if (Find(c, listener).SenderGroups.RemoveAll(g => g.Name.Equals(group, StringComparison.OrdinalIgnoreCase)) == 0)
            throw new ConfigException($"listener '{listener}' has no sender group '{group}'");
        Stage(c);
    }

    /// <summary>Creates or changes a mail flow policy.</summary>
    public void SetPolicy(string name, Action<MailFlowPolicy> change)
    {
        var c = Working;
        if (!c.MailFlowPolicies.TryGetValue(name, out var policy)) c.MailFlowPolicies[name] = policy = new MailFlowPolicy();
        change(policy);
        Stage(c);
    }

    /// <summary>The appliance's "Do you want to allow encrypted TLS connections? 1. No 2. Preferred 3. Required".</summary>
    public static InboundTls ParseTls(string value) => value.ToLowerInvariant() switch
    {
        "1" or "no" => InboundTls.No,
        "2" or "preferred" => InboundTls.Preferred,
        "3" or "required" => InboundTls.Required,
        _ => throw new ConfigException($"tls '{value}' is not one of no, preferred, required (or 1-3)"),
    };
}

public sealed class AlertConfigService(ConfigService config, PosternConfig fallback)
{
    public PosternConfig Working => config.Working(fallback);

    private void Stage(PosternConfig c)
    {
        c.Validate();
        config.Stage(c);
    }

    public void Add(string address, IEnumerable<AlertSeverity> severities, IEnumerable<AlertType> types)
    {
        var c = Working;
        c.Alerts.Recipients.RemoveAll(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase));
        c.Alerts.Recipients.Add(new AlertRecipient { Address = address, Severities = severities.ToList(), Types = types.ToList() });
        Stage(c);
    }

    public void Remove(string address)
    {
        var c = Working;
        if (c.Alerts.Recipients.RemoveAll(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase)) == 0) throw new ConfigException($"'{address}' is not an alert recipient");
        Stage(c);
    }

    public void Throttle(int seconds)
    {
        var c = Working;
        c.Alerts.ThrottleSeconds = seconds;
        Stage(c);
    }
}

public static class ListenerAlertCommands
{
    private static T[] ParseList<T>(string? value, string what) where T : struct, Enum =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => Enum.TryParse<T>(v, true, out var e) ? e : throw new ConfigException($"{what} '{v}' is not one of {string.Join(", ", Enum.GetNames<T>())}")).ToArray();

    private static int Staged(ConfigService service, string said)
    {
        Console.WriteLine(said + " Changes are staged: postern commit applies them, postern clearchanges discards them.");
        return 0;
    }

    public static void AddTo(RootCommand root, Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        int With(ParseResult p, Func<ConfigService, PosternConfig, int> action) => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, action);

        var listener = new Command("listenerconfig", "Listeners, HAT sender groups and mail flow policies (changes are staged; postern commit applies them)");
        var name = new Argument<string>("name") { Description = "Listener name" };
        var type = new Option<ListenerType?>("--type") { Description = "public | private" };
        var address = new Option<string?>("--address") { Description = "IP address to bind" };
        var port = new Option<int?>("--port") { Description = "TCP port" };
        var maxConcurrency = new Option<int?>("--max-concurrency") { Description = "sessions at once" };
        var defaultPolicy = new Option<string?>("--default-policy") { Description = "mail flow policy for hosts no sender group matches" };

        var list = new Command("list", "Listeners with their sender groups, and the mail flow policies") { configOption, jsonOption };
        list.SetAction(p => With(p, (s, c) =>
        {
            var w = new ListenerService(s, c).Working;
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(new { w.Listeners, w.MailFlowPolicies }, PosternConfig.JsonOptions)); return 0; }
            foreach (var l in w.Listeners)
            {
                Console.WriteLine($"{l.Name} ({l.Type.ToString().ToLowerInvariant()}) on {l.Address}:{l.Port}, max {l.MaxConcurrency} sessions, default policy {l.DefaultPolicy}");
                foreach (var g in l.SenderGroups) Console.WriteLine($"  sender group {g.Name}: {string.Join(", ", g.Senders)} -> {g.Policy}");
            }
            foreach (var (n, pol) in w.MailFlowPolicies)
                Console.WriteLine($"policy {n}: {pol.Action.ToString().ToLowerInvariant()}, TLS {pol.Tls.ToString().ToLowerInvariant()}, max size {pol.MaxMessageSize}, max recipients {pol.MaxRecipientsPerMessage}");
            if (s.HasStagedChanges) Console.WriteLine("(includes staged changes not yet committed)");
            return 0;
        }));

        var create = new Command("new", "Add a listener") { name, type, address, port, maxConcurrency, defaultPolicy, configOption };
        create.SetAction(p => With(p, (s, c) =>
        {
            new ListenerService(s, c).New(new ListenerSettings
            {
                Name = p.GetValue(name)!, Type = p.GetValue(type) ?? ListenerType.Public, Address = p.GetValue(address) ?? "127.0.0.1",
                Port = p.GetValue(port) ?? 25, MaxConcurrency = p.GetValue(maxConcurrency) ?? 50, DefaultPolicy = p.GetValue(defaultPolicy) ?? "ACCEPTED",
            });
            return Staged(s, $"Listener {p.GetValue(name)} added (a new listener is bound at the next start).");
        }));

        var edit = new Command("edit", "Change a listener") { name, type, address, port, maxConcurrency, defaultPolicy, configOption };
        edit.SetAction(p => With(p, (s, c) =>
        {
            new ListenerService(s, c).Edit(p.GetValue(name)!, l =>
            {
                if (p.GetValue(type) is { } t) l.Type = t;
                if (p.GetValue(address) is { } a) l.Address = a;
                if (p.GetValue(port) is { } po) l.Port = po;
                if (p.GetValue(maxConcurrency) is { } m) l.MaxConcurrency = m;
                if (p.GetValue(defaultPolicy) is { } d) l.DefaultPolicy = d;
            });
            return Staged(s, $"Listener {p.GetValue(name)} changed.");
        }));

        var delete = new Command("delete", "Remove a listener") { name, configOption };
        delete.SetAction(p => With(p, (s, c) => { new ListenerService(s, c).Delete(p.GetValue(name)!); return Staged(s, $"Listener {p.GetValue(name)} removed."); }));

        var group = new Argument<string>("group") { Description = "Sender group name" };
        var senders = new Option<string>("--senders") { Description = "IP, CIDR, host name or .domain, comma-separated", Required = true };
        var policy = new Option<string>("--policy") { Description = "Mail flow policy name", Required = true };
        var hatSet = new Command("hat-set", "Add or replace a HAT sender group of a listener") { name, group, senders, policy, configOption };
        hatSet.SetAction(p => With(p, (s, c) =>
        {
            new ListenerService(s, c).SetGroup(p.GetValue(name)!, new SenderGroup
            {
                Name = p.GetValue(group)!, Policy = p.GetValue(policy)!,
                Senders = p.GetValue(senders)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList(),
            });
            return Staged(s, $"Sender group {p.GetValue(group)} of {p.GetValue(name)} set.");
        }));
        var hatRemove = new Command("hat-remove", "Remove a HAT sender group") { name, group, configOption };
        hatRemove.SetAction(p => With(p, (s, c) => { new ListenerService(s, c).RemoveGroup(p.GetValue(name)!, p.GetValue(group)!); return Staged(s, $"Sender group {p.GetValue(group)} removed."); }));

        var policyName = new Argument<string>("policy") { Description = "Mail flow policy name" };
        var action = new Option<PolicyAction?>("--action") { Description = "accept | relay | reject | tcpRefuse" };
        var tls = new Option<string?>("--tls") { Description = "Do you want to allow encrypted TLS connections? 1. No 2. Preferred 3. Required" };
        var maxSize = new Option<long?>("--max-message-size") { Description = "bytes" };
        var maxRecipients = new Option<int?>("--max-recipients") { Description = "recipients per message" };
        var policyCommand = new Command("policy", "Create or change a mail flow policy") { policyName, action, tls, maxSize, maxRecipients, configOption };
        policyCommand.SetAction(p => With(p, (s, c) =>
        {
            new ListenerService(s, c).SetPolicy(p.GetValue(policyName)!, pol =>
            {
                if (p.GetValue(action) is { } a) pol.Action = a;
                if (p.GetValue(tls) is { } t)
                {
                    pol.Tls = ListenerService.ParseTls(t);
                    if (pol.Tls != InboundTls.No) Console.WriteLine("You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.");
                }
                if (p.GetValue(maxSize) is { } m) pol.MaxMessageSize = m;
                if (p.GetValue(maxRecipients) is { } r) pol.MaxRecipientsPerMessage = r;
            });
            return Staged(s, $"Mail flow policy {p.GetValue(policyName)} set.");
        }));
        foreach (var c in new[] { list, create, edit, delete, hatSet, hatRemove, policyCommand }) listener.Subcommands.Add(c);
        root.Subcommands.Add(listener);

        var alert = new Command("alertconfig", "Alert recipients and throttling (changes are staged; postern commit applies them)");
        var recipient = new Argument<string>("address") { Description = "Alert recipient address" };
        var severities = new Option<string?>("--severities") { Description = "info,warning,critical (default: all)" };
        var types = new Option<string?>("--types") { Description = "system,hardware,updater,antivirus,messageDelivery (default: all)" };
        var alertList = new Command("list", "Alert recipients and the throttle") { configOption, jsonOption };
        alertList.SetAction(p => With(p, (s, c) =>
        {
            var a = new AlertConfigService(s, c).Working.Alerts;
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(a, PosternConfig.JsonOptions)); return 0; }
            foreach (var r in a.Recipients)
                Console.WriteLine($"{r.Address}: severities {(r.Severities.Count == 0 ? "all" : string.Join(", ", r.Severities))}; types {(r.Types.Count == 0 ? "all" : string.Join(", ", r.Types))}");
            Console.WriteLine($"At most one alert of a kind per subject every {a.ThrottleSeconds} s.");
            return 0;
        }));
        var add = new Command("new", "Add (or replace) an alert recipient") { recipient, severities, types, configOption };
        add.SetAction(p => With(p, (s, c) =>
        {
            new AlertConfigService(s, c).Add(p.GetValue(recipient)!, ParseList<AlertSeverity>(p.GetValue(severities), "severity"), ParseList<AlertType>(p.GetValue(types), "type"));
            return Staged(s, $"Alert recipient {p.GetValue(recipient)} set.");
        }));
        var remove = new Command("delete", "Remove an alert recipient") { recipient, configOption };
        remove.SetAction(p => With(p, (s, c) => { new AlertConfigService(s, c).Remove(p.GetValue(recipient)!); return Staged(s, $"Alert recipient {p.GetValue(recipient)} removed."); }));
        var seconds = new Argument<int>("seconds") { Description = "At most one alert of a kind per subject per this many seconds" };
        var throttle = new Command("throttle", "Set the alert throttle") { seconds, configOption };
        throttle.SetAction(p => With(p, (s, c) => { new AlertConfigService(s, c).Throttle(p.GetValue(seconds)); return Staged(s, "Alert throttle set."); }));
        foreach (var c in new[] { alertList, add, remove, throttle }) alert.Subcommands.Add(c);
        root.Subcommands.Add(alert);
    }
}
