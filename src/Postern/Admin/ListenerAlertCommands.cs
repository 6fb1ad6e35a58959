using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Postern.Inbound;
using Postern.Security;

namespace Postern.Admin;

/// <summary>
/// Listeners, HAT sender groups and mail flow policies, and alert recipients, as application
/// services: each change is made on the working (staged) configuration, checked whole, and
/// staged. `listenerconfig` and `alertconfig` (scriptable forms and dialogues) are their front ends.
/// </summary>
/// <param name="storedCertificates">The certificate store's certificates (certconfig), read when a listener's certificate is chosen.</param>
/// <param name="who">Who the change is staged as (the web interface's user); null = the user running the CLI.</param>
public sealed class ListenerService(ConfigService config, PosternConfig fallback, Func<IReadOnlyList<CertificateInfo>>? storedCertificates = null, string? who = null)
{
    /// <summary>A fresh copy each time: a refused change leaves no trace a dialogue would keep using.</summary>
    public PosternConfig Working => config.Working(fallback);

    private void Stage(PosternConfig c)
    {
        c.Validate();
        config.Stage(c, who);
    }

    private static ListenerSettings Find(PosternConfig c, string name) =>
        c.Listeners.FirstOrDefault(l => l.Name.Equals(name, StringComparison.OrdinalIgnoreCase)) ?? throw new ConfigException($"there is no listener '{name}'");

    public void New(ListenerSettings listener)
    {
        ParseName(listener.Name, "listener name");
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

    public void Rename(string name, string newName)
    {
        ParseName(newName, "listener name");
        var c = Working;
        var listener = Find(c, name);
        if (!listener.Name.Equals(newName, StringComparison.OrdinalIgnoreCase) && c.Listeners.Any(l => l.Name.Equals(newName, StringComparison.OrdinalIgnoreCase)))
            throw new ConfigException($"listener '{newName}' already exists");
        listener.Name = newName;
        Stage(c);
    }

    /// <summary>The certificates of the certificate store, by name.</summary>
    public IReadOnlyList<CertificateInfo> StoredCertificates() =>
        storedCertificates?.Invoke() ?? throw new ConfigException("the certificate store is not available here");

    /// <summary>Makes the listener present a stored certificate for STARTTLS; null = its PEM files, else the demo certificate.</summary>
    public void SetCertificate(string listener, string? certificate)
    {
        string? stored = null;
        if (certificate is not null)
            stored = CertificateService.StoredName(StoredCertificates(), certificate);
        var c = Working;
        Find(c, listener).Certificate = stored;
        Stage(c);
    }

    /// <summary>Adds (or replaces) a HAT sender group; the order of groups is the order of matching.</summary>
    public void SetGroup(string listener, SenderGroup group)
    {
        ParseName(group.Name, "sender group name");
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

    /// <summary>Moves a sender group to a position (1 = matched first).</summary>
    public void MoveGroup(string listener, string group, int position)
    {
        var c = Working;
        var groups = Find(c, listener).SenderGroups;
        var i = groups.FindIndex(g => g.Name.Equals(group, StringComparison.OrdinalIgnoreCase));
        if (i < 0) throw new ConfigException($"listener '{listener}' has no sender group '{group}'");
        if (position < 1 || position > groups.Count) throw new ConfigException($"position {position} is not from 1 to {groups.Count}");
        var moved = groups[i];
        groups.RemoveAt(i);
        groups.Insert(position - 1, moved);
        Stage(c);
    }

    /// <summary>Creates or changes a mail flow policy.</summary>
    public void SetPolicy(string name, Action<MailFlowPolicy> change)
    {
        var c = Working;
        if (!c.MailFlowPolicies.TryGetValue(name, out var policy)) c.MailFlowPolicies[ParseName(name, "policy name")] = policy = new MailFlowPolicy();
        change(policy);
        Stage(c);
    }

    /// <summary>Deletes a mail flow policy that no listener uses (as default or in a sender group).</summary>
    public void DeletePolicy(string name)
    {
        var c = Working;
        if (!c.MailFlowPolicies.ContainsKey(name)) throw new ConfigException($"there is no mail flow policy '{name}'");
        var users = c.Listeners.SelectMany(l => l.SenderGroups.Where(g => g.Policy.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(g => $"{l.Name} sender group {g.Name}")
            .Concat(l.DefaultPolicy.Equals(name, StringComparison.OrdinalIgnoreCase) ? [$"{l.Name} (default policy)"] : [])).ToList();
        if (users.Count > 0) throw new ConfigException($"mail flow policy '{name}' is used by {string.Join(", ", users)}; change those first");
        c.MailFlowPolicies.Remove(name);
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

    // What an administrator types, checked before it is used; each throws ConfigException with the reason.

    /// <summary>Names of listeners, sender groups and policies: they appear in logs and commands, so plain ASCII.</summary>
    public static string ParseName(string value, string what) =>
        value.Length is >= 1 and <= 64 && value.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')
            ? value : throw new ConfigException($"{what} '{value}' is not usable (1-64 letters, digits, '.', '-' or '_')");

    /// <summary>An IPv6 address or a dotted quad: .NET also reads "25" as 0.0.0.25, which an administrator never means.</summary>
    public static string ParseAddress(string value) =>
        IPAddress.TryParse(value, out _) && (value.Contains(':') || value.Count(ch => ch == '.') == 3) ? value : throw new ConfigException($"'{value}' is not an IP address");

    /// <summary>0 binds any free port (tests and labs).</summary>
    public static int ParsePort(string value) => ParseNumber(value, "the port", 0, 65535);

    public static int ParseMaxConcurrency(string value) => ParseNumber(value, "the maximum concurrency", 1, 10000);

    public static int ParseMaxMessagesPerConnection(string value) => ParseNumber(value, "the maximum number of messages per connection", 1, 100000);

    public static int ParseMaxRecipients(string value) => ParseNumber(value, "the maximum number of recipients per message", 1, 100000);

    /// <summary>IPs, CIDR ranges, host names and .domain patterns, separated by commas.</summary>
    public static List<string> ParseSenders(string value)
    {
        var senders = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        if (senders.Count == 0) throw new ConfigException("a sender group needs at least one sender");
        foreach (var sender in senders)
            if (!SenderPattern.TryParse(sender, out _)) throw new ConfigException($"'{sender}' is not an IP, CIDR or host-name pattern");
        return senders;
    }

    /// <summary>The appliance's sizes: bytes, or a trailing k (kilobytes) or M (megabytes).</summary>
    public static long ParseMessageSize(string value)
    {
        var factor = value.EndsWith('k') || value.EndsWith('K') ? 1024L : value.EndsWith('m') || value.EndsWith('M') ? 1024L * 1024 : 1L;
        var digits = factor == 1 ? value : value[..^1];
        if (digits.Length is >= 1 and <= 10 && digits.All(char.IsAsciiDigit) && long.Parse(digits, CultureInfo.InvariantCulture) * factor is var size and >= 1024 and <= 1L << 31)
            return size;
        throw new ConfigException($"'{value}' is not a message size from 1k to 2048M");
    }

    /// <summary>How <see cref="ParseMessageSize"/> reads it back.</summary>
    public static string FormatMessageSize(long size) =>
        size % (1024 * 1024) == 0 ? $"{size / (1024 * 1024)}M" : size % 1024 == 0 ? $"{size / 1024}k" : size.ToString(CultureInfo.InvariantCulture);

    internal static int ParseNumber(string value, string what, int min, int max) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n : throw new ConfigException($"{what} must be a number from {min} to {max}");
}

/// <param name="who">Who the change is staged as (the web interface's user); null = the user running the CLI.</param>
public sealed class AlertConfigService(ConfigService config, PosternConfig fallback, string? who = null)
{
    public PosternConfig Working => config.Working(fallback);

    private void Stage(PosternConfig c)
    {
        c.Validate();
        config.Stage(c, who);
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

    /// <summary>Changes a recipient in place (its address too); the order of recipients stays.</summary>
    public void Edit(string address, string newAddress, IEnumerable<AlertSeverity> severities, IEnumerable<AlertType> types)
    {
        var c = Working;
        var recipients = c.Alerts.Recipients;
        var i = recipients.FindIndex(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase));
        if (i < 0) throw new ConfigException($"'{address}' is not an alert recipient");
        if (!address.Equals(newAddress, StringComparison.OrdinalIgnoreCase) && recipients.Any(r => r.Address.Equals(newAddress, StringComparison.OrdinalIgnoreCase)))
            throw new ConfigException($"'{newAddress}' is an alert recipient already");
        recipients[i] = new AlertRecipient { Address = newAddress, Severities = severities.ToList(), Types = types.ToList() };
        Stage(c);
    }

    /// <summary>Removes every recipient: no alerts are sent.</summary>
    public void Clear()
    {
        var c = Working;
        c.Alerts.Recipients.Clear();
        Stage(c);
    }

    public void Throttle(int seconds)
    {
        var c = Working;
        c.Alerts.ThrottleSeconds = seconds;
        Stage(c);
    }

    // The appliance's menus, in its order and words; the last number (or "all") means every one.
    public static readonly IReadOnlyList<(AlertType Value, string Name)> TypeChoices =
        [(AlertType.System, "System"), (AlertType.Hardware, "Hardware"), (AlertType.Updater, "Updater"), (AlertType.Antivirus, "Anti-Virus"), (AlertType.MessageDelivery, "Message Delivery")];
    public static readonly IReadOnlyList<(AlertSeverity Value, string Name)> SeverityChoices =
        [(AlertSeverity.Critical, "Critical"), (AlertSeverity.Warning, "Warning"), (AlertSeverity.Info, "Information")];

    public static string ParseAddress(string value) =>
        SmtpSyntax.IsValidMailbox(value) ? value : throw new ConfigException($"'{value}' is not an email address (local-part@domain)");

    public static int ParseThrottle(string value) => ListenerService.ParseNumber(value, "the number of seconds", 0, 7 * 86400);

    /// <summary>"1,3", "system, anti-virus" or "all"; empty list = all.</summary>
    public static List<AlertType> ParseTypes(string answer) => ParseChoices(answer, TypeChoices, "alert class");

    public static List<AlertSeverity> ParseSeverities(string answer) => ParseChoices(answer, SeverityChoices, "severity level");

    /// <summary>The answer the menus show for a current selection (numbers; the All number for all).</summary>
    public static string FormatChoices<T>(IReadOnlyCollection<T> selected, IReadOnlyList<(T Value, string Name)> choices) where T : struct, Enum =>
        selected.Count == 0 || choices.All(c => selected.Contains(c.Value))
            ? (choices.Count + 1).ToString(CultureInfo.InvariantCulture)
            : string.Join(",", choices.Select((c, i) => (c, i)).Where(x => selected.Contains(x.c.Value)).Select(x => (x.i + 1).ToString(CultureInfo.InvariantCulture)));

    private static List<T> ParseChoices<T>(string answer, IReadOnlyList<(T Value, string Name)> choices, string what) where T : struct, Enum
    {
        static string Plain(string s) => new(s.Where(char.IsAsciiLetterOrDigit).Select(char.ToLowerInvariant).ToArray());
        var chosen = new List<T>();
        foreach (var token in answer.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (token.Equals("all", StringComparison.OrdinalIgnoreCase) || token == (choices.Count + 1).ToString(CultureInfo.InvariantCulture)) return [];
            var i = int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= choices.Count ? n - 1
                : choices.ToList().FindIndex(c => Plain(c.Name) == Plain(token) || c.Value.ToString().Equals(token, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw new ConfigException($"{what} '{token}' is not one of 1-{choices.Count + 1}, {string.Join(", ", choices.Select(c => c.Name))} or all");
            if (!chosen.Contains(choices[i].Value)) chosen.Add(choices[i].Value);
        }
        if (chosen.Count == 0) throw new ConfigException($"choose at least one {what}");
        return chosen.Count == choices.Count ? [] : chosen;
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

        var listener = new Command("listenerconfig", "Listeners, HAT sender groups, mail flow policies and listener certificates; alone, the appliance's dialogue (changes are staged; postern commit applies them)");
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
            return Staged(s, $"Listener {p.GetValue(name)} added (a running gateway binds it once committed).");
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
        var policyDelete = new Command("policy-delete", "Delete a mail flow policy that no listener uses") { policyName, configOption };
        policyDelete.SetAction(p => With(p, (s, c) => { new ListenerService(s, c).DeletePolicy(p.GetValue(policyName)!); return Staged(s, $"Mail flow policy {p.GetValue(policyName)} deleted."); }));
        foreach (var c in new[] { list, create, edit, delete, hatSet, hatRemove, policyCommand, policyDelete }) listener.Subcommands.Add(c);
        // Without a subcommand: the appliance's dialogue on the terminal (or piped answers).
        listener.Options.Add(configOption);
        listener.SetAction(p => With(p, (s, c) =>
            new ListenerConfigDialogue(new ListenerService(s, c, () => CertificateService.StoredCertificates(c)), Console.In, Console.Out).Run()));
        root.Subcommands.Add(listener);

        var alert = new Command("alertconfig", "Alert recipients and throttling; alone, the appliance's dialogue (changes are staged; postern commit applies them)");
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
        alert.Options.Add(configOption);
        alert.SetAction(p => With(p, (s, c) => new AlertConfigDialogue(new AlertConfigService(s, c), Console.In, Console.Out).Run()));
        root.Subcommands.Add(alert);
    }

}
