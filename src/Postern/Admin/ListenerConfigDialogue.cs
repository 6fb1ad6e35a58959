using System.Globalization;
using Postern.Security;

namespace Postern.Admin;

/// <summary>
/// The appliance's interactive `listenerconfig`: listeners (NEW, EDIT, DELETE), and for one
/// listener its name, interface, limits, Host Access Table with the mail flow policies, and
/// certificate. Every change goes through <see cref="ListenerService"/> and is staged.
/// </summary>
public sealed class ListenerConfigDialogue(ListenerService service, TextReader input, TextWriter output)
{
    private readonly DialoguePrompts _ask = new(input, output);

    /// <summary>Runs the menu until an empty answer; returns the exit status.</summary>
    public int Run()
    {
        try
        {
            while (true)
            {
                var listeners = service.Working.Listeners;
                output.WriteLine();
                output.WriteLine("Currently configured listeners:");
                for (var i = 0; i < listeners.Count; i++) output.WriteLine($"{i + 1}. {Summary(listeners[i])}");
                output.WriteLine();
                output.WriteLine("Choose the operation you want to perform:");
                output.WriteLine("- NEW - Create a new listener.");
                output.WriteLine("- EDIT - Modify a listener.");
                output.WriteLine("- DELETE - Remove a listener.");
                var op = _ask.Operation();
                try
                {
                    switch (op)
                    {
                        case "": return 0;
                        case "NEW": New(); break;
                        case "EDIT": if (PickListener("edit") is { } edited) Edit(edited); break;
                        case "DELETE": Delete(); break;
                        default: output.WriteLine($"'{DialoguePrompts.Shown(op)}' is not an operation of listenerconfig."); break;
                    }
                }
                catch (ConfigException e) { output.WriteLine($"The change was not made: {e.Message}"); }
            }
        }
        catch (EndOfStreamException)
        {
            output.WriteLine();
            output.WriteLine("listenerconfig: input ended");
            return 1;
        }
    }

    /// <summary>The listener being edited; null (and said) when someone else removed it meanwhile.</summary>
    private ListenerSettings? Listener(PosternConfig working, string name)
    {
        var listener = working.Listeners.FirstOrDefault(x => x.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
        if (listener is null) output.WriteLine($"There is no listener '{name}' any more.");
        return listener;
    }

    private static string Summary(ListenerSettings l) => $"{l.Name} (on {l.Address}) SMTP TCP Port {l.Port} {l.Type}";

    private static string CertificateName(ListenerSettings l) =>
        l.Certificate ?? (l.CertificateFile is not null ? $"PEM files ({l.CertificateFile})" : "Demo");

    private List<string> PolicyNames() => service.Working.MailFlowPolicies.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList();

    private string ChoosePolicy(string question, string current)
    {
        var names = PolicyNames();
        var choice = _ask.Choose(question, names, Math.Max(1, names.FindIndex(n => n.Equals(current, StringComparison.OrdinalIgnoreCase)) + 1));
        return names[choice - 1];
    }

    /// <summary>A listener by name or number; null (and said why) when there is none such.</summary>
    private string? PickListener(string verb)
    {
        var names = service.Working.Listeners.Select(l => l.Name).ToList();
        return _ask.Pick($"Enter the name or number of the listener you wish to {verb}.", names, "listener");
    }

    private void New()
    {
        var working = service.Working;
        var name = _ask.Valid("Please create a name for this listener (Ex: \"OutboundMail\"):", "", v => ListenerService.ParseName(v, "the name"));
        if (working.Listeners.Any(l => l.Name.Equals(name, StringComparison.OrdinalIgnoreCase)))
        {
            output.WriteLine($"{name} already exists; use EDIT.");
            return;
        }
        var type = _ask.Choose("Please select the type of listener you want to create.", ["Public", "Private"], 1) == 1 ? ListenerType.Public : ListenerType.Private;
        var address = _ask.Valid("Please enter the IP address for this listener.", working.Listeners.FirstOrDefault()?.Address ?? "127.0.0.1", ListenerService.ParseAddress);
        var port = _ask.Valid("Please enter the IP port for this listener.", "25", ListenerService.ParsePort);
        var policy = ChoosePolicy("Choose the mail flow policy for hosts no sender group matches.", type == ListenerType.Public ? "ACCEPTED" : "BLOCKED");
        service.New(new ListenerSettings { Name = name, Type = type, Address = address, Port = port, DefaultPolicy = policy });
        output.WriteLine("A new listener is bound at the next start of the gateway.");
        Staged($"Listener {name}");
    }

    private void Delete()
    {
        if (PickListener("delete") is not { } name) return;
        service.Delete(name);
        Staged($"The removal of listener {name}");
    }

    /// <summary>The sub-menu of one listener, until an empty answer.</summary>
    private void Edit(string name)
    {
        while (true)
        {
            if (Listener(service.Working, name) is not { } l) return;
            output.WriteLine();
            output.WriteLine($"Name: {l.Name}");
            output.WriteLine($"Type: {l.Type}");
            output.WriteLine($"Interface: {l.Address} TCP Port {l.Port}");
            output.WriteLine($"Max Concurrency: {l.MaxConcurrency}");
            output.WriteLine($"Sender Groups: {l.SenderGroups.Count}; Default Policy: {l.DefaultPolicy}");
            output.WriteLine($"Certificate: {CertificateName(l)}");
            output.WriteLine();
            output.WriteLine("Choose the operation you want to perform:");
            output.WriteLine("- NAME - Change the name of the listener.");
            output.WriteLine("- INTERFACE - Change the interface.");
            output.WriteLine("- LIMITS - Change the injection limits.");
            output.WriteLine("- HOSTACCESS - Modify the Host Access Table.");
            output.WriteLine("- CERTIFICATE - Choose the certificate.");
            var op = _ask.Operation();
            try
            {
                switch (op)
                {
                    case "": return;
                    case "NAME":
                    {
                        var newName = _ask.Valid("Please enter a new name for this listener.", l.Name, v => ListenerService.ParseName(v, "the name"));
                        service.Rename(l.Name, newName);
                        name = newName;
                        Staged($"The new name {newName}");
                        break;
                    }
                    case "INTERFACE":
                    {
                        var address = _ask.Valid("Please enter the IP address for this listener.", l.Address, ListenerService.ParseAddress);
                        var port = _ask.Valid("Please enter the IP port for this listener.", l.Port.ToString(CultureInfo.InvariantCulture), ListenerService.ParsePort);
                        service.Edit(l.Name, x => { x.Address = address; x.Port = port; });
                        output.WriteLine("A new address or port is bound at the next start of the gateway.");
                        Staged($"The interface of {l.Name}");
                        break;
                    }
                    case "LIMITS":
                    {
                        var max = _ask.Valid("Enter the maximum number of concurrent connections allowed.", l.MaxConcurrency.ToString(CultureInfo.InvariantCulture), ListenerService.ParseMaxConcurrency);
                        service.Edit(l.Name, x => x.MaxConcurrency = max);
                        Staged($"The concurrency limit of {l.Name}");
                        break;
                    }
                    case "HOSTACCESS": HostAccess(l.Name); break;
                    case "CERTIFICATE": Certificate(l); break;
                    default: output.WriteLine($"'{DialoguePrompts.Shown(op)}' is not an operation of this menu."); break;
                }
            }
            catch (ConfigException e) { output.WriteLine($"The change was not made: {e.Message}"); }
            catch (CertificateException e) { output.WriteLine($"The change was not made: {e.Message}"); }
        }
    }

    private void Certificate(ListenerSettings l)
    {
        var stored = service.StoredCertificates();
        if (stored.Count == 0)
        {
            output.WriteLine("No certificates are stored. Please use the 'certconfig' command to create or import one.");
            return;
        }
        var choices = stored.Select(c => $"{c.Name} ({c.Subject}, expires {c.NotAfter:yyyy-MM-dd})").Prepend(l.CertificateFile is not null ? $"PEM files ({l.CertificateFile})" : "Demo").ToList();
        var current = l.Certificate is null ? 1 : stored.ToList().FindIndex(c => c.Name.Equals(l.Certificate, StringComparison.OrdinalIgnoreCase)) + 2;
        var choice = _ask.Choose("Choose the certificate:", choices, Math.Max(1, current));
        var chosen = choice == 1 ? null : stored[choice - 2];
        service.SetCertificate(l.Name, chosen?.Name);
        if (chosen is not null && chosen.IsExpired(DateTimeOffset.UtcNow)) output.WriteLine($"Note: {chosen.Name} expired on {chosen.NotAfter:yyyy-MM-dd}.");
        Staged($"Certificate {chosen?.Name ?? choices[0]} for {l.Name}");
    }

    /// <summary>The Host Access Table of one listener, and the mail flow policies its groups use.</summary>
    private void HostAccess(string listener)
    {
        while (true)
        {
            if (Listener(service.Working, listener) is not { } l) return;
            output.WriteLine();
            output.WriteLine($"Host Access Table of {l.Name} (the first matching sender group wins):");
            for (var i = 0; i < l.SenderGroups.Count; i++)
                output.WriteLine($"{i + 1}. {l.SenderGroups[i].Name}: {string.Join(", ", l.SenderGroups[i].Senders)} -> {l.SenderGroups[i].Policy}");
            output.WriteLine($"Hosts no sender group matches: {l.DefaultPolicy}");
            output.WriteLine($"Mail flow policies (shared by all listeners): {string.Join(", ", PolicyNames())}");
            output.WriteLine();
            output.WriteLine("Choose the operation you want to perform:");
            output.WriteLine("- NEW - Create a new sender group.");
            output.WriteLine("- EDIT - Modify a sender group.");
            output.WriteLine("- DELETE - Remove a sender group.");
            output.WriteLine("- MOVE - Move a sender group.");
            output.WriteLine("- POLICY - Create or modify a mail flow policy.");
            output.WriteLine("- DEFAULT - Choose the policy for hosts no sender group matches.");
            var op = _ask.Operation();
            try
            {
                var groups = l.SenderGroups.Select(g => g.Name).ToList();
                switch (op)
                {
                    case "": return;
                    case "NEW":
                    {
                        var name = _ask.Valid("Enter a name for this sender group.", "", v => ListenerService.ParseName(v, "the name"));
                        if (groups.Contains(name, StringComparer.OrdinalIgnoreCase)) { output.WriteLine($"{name} already exists; use EDIT."); break; }
                        GroupQuestions(l.Name, new SenderGroup { Name = name, Senders = [], Policy = l.DefaultPolicy });
                        break;
                    }
                    case "EDIT":
                        if (_ask.Pick("Enter the name or number of the sender group you wish to edit.", groups, "sender group") is { } edited)
                            GroupQuestions(l.Name, l.SenderGroups.First(g => g.Name == edited));
                        break;
                    case "DELETE":
                        if (_ask.Pick("Enter the name or number of the sender group you wish to delete.", groups, "sender group") is { } deleted)
                        {
                            service.RemoveGroup(l.Name, deleted);
                            Staged($"The removal of sender group {deleted}");
                        }
                        break;
                    case "MOVE":
                        if (_ask.Pick("Enter the name or number of the sender group you wish to move.", groups, "sender group") is { } moved)
                        {
                            var position = _ask.Valid("Enter the position to move it to (1 is matched first).", "1",
                                v => ListenerService.ParseNumber(v, "the position", 1, groups.Count));
                            service.MoveGroup(l.Name, moved, position);
                            Staged($"Sender group {moved} at position {position}");
                        }
                        break;
                    case "POLICY": Policy(); break;
                    case "DEFAULT":
                    {
                        var policy = ChoosePolicy("Choose the mail flow policy for hosts no sender group matches.", l.DefaultPolicy);
                        service.Edit(l.Name, x => x.DefaultPolicy = policy);
                        Staged($"The default policy {policy} of {l.Name}");
                        break;
                    }
                    default: output.WriteLine($"'{DialoguePrompts.Shown(op)}' is not an operation of this menu."); break;
                }
            }
            catch (ConfigException e) { output.WriteLine($"The change was not made: {e.Message}"); }
        }
    }

    private void GroupQuestions(string listener, SenderGroup current)
    {
        var senders = _ask.Valid("Enter the senders of this sender group (IP addresses, CIDR ranges, host names or .domains). Separate multiple hosts with commas.",
            string.Join(", ", current.Senders), ListenerService.ParseSenders);
        var policy = ChoosePolicy("Choose the mail flow policy for this sender group.", current.Policy);
        service.SetGroup(listener, new SenderGroup { Name = current.Name, Senders = senders, Policy = policy });
        Staged($"Sender group {current.Name} of {listener}");
    }

    /// <summary>The mail flow policy questions (the appliance's HAT policy parameters).</summary>
    private void Policy()
    {
        var policies = service.Working.MailFlowPolicies;
        var names = PolicyNames();
        output.WriteLine("Mail flow policies:");
        for (var i = 0; i < names.Count; i++)
        {
            var p = policies[names[i]];
            output.WriteLine($"{i + 1}. {names[i]}: {p.Action}, TLS {p.Tls}, max size {ListenerService.FormatMessageSize(p.MaxMessageSize)}");
        }
        var name = _ask.Valid("Enter the name or number of the mail flow policy to modify, or a new name to create one.", "", v =>
            int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n >= 1 && n <= names.Count ? names[n - 1] : throw new ConfigException($"there is no policy number {n}")
            : names.FirstOrDefault(x => x.Equals(v, StringComparison.OrdinalIgnoreCase)) ?? ListenerService.ParseName(v, "the name"));
        var current = names.Contains(name) ? policies[name] : new MailFlowPolicy();
        if (!names.Contains(name)) output.WriteLine($"Creating the mail flow policy {name}.");

        PolicyAction[] actions = [PolicyAction.Accept, PolicyAction.Relay, PolicyAction.Reject, PolicyAction.TcpRefuse];
        var action = actions[_ask.Choose("Choose the action of this policy.", ["Accept", "Relay", "Reject", "TCP Refuse"], Array.IndexOf(actions, current.Action) + 1) - 1];
        long size = current.MaxMessageSize;
        int messages = current.MaxMessagesPerConnection, recipients = current.MaxRecipientsPerMessage;
        var tls = current.Tls;
        // Refused senders never send a message: the message parameters would mean nothing.
        if (action is PolicyAction.Accept or PolicyAction.Relay)
        {
            size = _ask.Valid("Enter the maximum message size. Add a trailing k for kilobytes, M for megabytes, or no letter for bytes.",
                ListenerService.FormatMessageSize(current.MaxMessageSize), ListenerService.ParseMessageSize);
            messages = _ask.Valid("Enter the maximum number of messages per connection.", current.MaxMessagesPerConnection.ToString(CultureInfo.InvariantCulture), ListenerService.ParseMaxMessagesPerConnection);
            recipients = _ask.Valid("Enter the maximum number of recipients per message.", current.MaxRecipientsPerMessage.ToString(CultureInfo.InvariantCulture), ListenerService.ParseMaxRecipients);
            tls = (InboundTls)(_ask.Choose("Do you want to allow encrypted TLS connections?", ["No", "Preferred", "Required"], (int)current.Tls + 1) - 1);
            if (tls != InboundTls.No)
                output.WriteLine("You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.");
        }
        service.SetPolicy(name, p =>
        {
            p.Action = action;
            p.MaxMessageSize = size;
            p.MaxMessagesPerConnection = messages;
            p.MaxRecipientsPerMessage = recipients;
            p.Tls = tls;
        });
        Staged($"Mail flow policy {name}");
    }

    private void Staged(string what) => output.WriteLine($"{what} is staged. Use 'postern commit' to apply it, 'postern clearchanges' to discard it.");
}

/// <summary>
/// The appliance's way of asking, shared by the listenerconfig and alertconfig dialogues:
/// the question, the default in brackets, Enter for the default, and an invalid answer asked
/// again with the reason. Input that ends throws <see cref="EndOfStreamException"/>.
/// </summary>
internal sealed class DialoguePrompts(TextReader input, TextWriter output)
{
    private string ReadLine()
    {
        output.Flush();
        return (input.ReadLine() ?? throw new EndOfStreamException()).Trim();
    }

    /// <summary>A menu answer, upper-case; empty leaves the menu.</summary>
    public string Operation()
    {
        output.Write("[]> ");
        return ReadLine().ToUpperInvariant();
    }

    public string Ask(string question, string defaultValue)
    {
        if (question.Length > 0) output.WriteLine(question);
        output.Write($"[{defaultValue}]> ");
        var line = ReadLine();
        return line.Length == 0 ? defaultValue : line;
    }

    /// <summary>Asks until parse accepts the answer; parse says why not with a ConfigException.</summary>
    public T Valid<T>(string question, string defaultValue, Func<string, T> parse)
    {
        while (true)
        {
            var answer = Ask(question, defaultValue);
            try { return parse(answer); }
            catch (ConfigException e) { output.WriteLine(Sentence(e.Message)); }
        }
    }

    public bool YesNo(string question, bool defaultValue)
    {
        while (true)
        {
            output.Write($"{question} [{(defaultValue ? "Y" : "N")}]> ");
            var line = ReadLine();
            if (line.Length == 0) return defaultValue;
            if (line.Equals("y", StringComparison.OrdinalIgnoreCase) || line.Equals("yes", StringComparison.OrdinalIgnoreCase)) return true;
            if (line.Equals("n", StringComparison.OrdinalIgnoreCase) || line.Equals("no", StringComparison.OrdinalIgnoreCase)) return false;
            output.WriteLine("Please answer Y or N.");
        }
    }

    /// <summary>One of numbered choices; returns its number (1-based).</summary>
    public int Choose(string question, IReadOnlyList<string> choices, int defaultChoice)
    {
        while (true)
        {
            output.WriteLine(question);
            for (var i = 0; i < choices.Count; i++) output.WriteLine($"{i + 1}. {choices[i]}");
            var answer = Ask("", defaultChoice.ToString(CultureInfo.InvariantCulture));
            if (int.TryParse(answer, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= choices.Count) return n;
            output.WriteLine($"Please enter a number from 1 to {choices.Count}.");
        }
    }

    /// <summary>Several of numbered choices, separated by commas; asked again (menu and all) with the reason parse gives.</summary>
    public T ChooseSeveral<T>(string question, IReadOnlyList<string> choices, string defaultAnswer, Func<string, T> parse)
    {
        while (true)
        {
            output.WriteLine(question);
            for (var i = 0; i < choices.Count; i++) output.WriteLine($"{i + 1}. {choices[i]}");
            var answer = Ask("", defaultAnswer);
            try { return parse(answer); }
            catch (ConfigException e) { output.WriteLine(Sentence(e.Message)); }
        }
    }

    /// <summary>One of names, by name or number; null (and said why) when it names none.</summary>
    public string? Pick(string question, IReadOnlyList<string> names, string what)
    {
        if (names.Count == 0) { output.WriteLine($"There is no {what}."); return null; }
        var answer = Ask(question, "");
        if (answer.Length == 0) return null;
        if (int.TryParse(answer, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            if (n >= 1 && n <= names.Count) return names[n - 1];
        }
        else if (names.FirstOrDefault(x => x.Equals(answer, StringComparison.OrdinalIgnoreCase)) is { } named) return named;
        output.WriteLine($"There is no {what} '{Shown(answer)}'.");
        return null;
    }

    /// <summary>An answer echoed back without control characters (a terminal would act on them).</summary>
    public static string Shown(string answer) => new(answer.Select(ch => char.IsControl(ch) ? '?' : ch).ToArray());

    /// <summary>A reason as the appliance says it: capitalised, with a full stop.</summary>
    private static string Sentence(string reason) =>
        reason.Length == 0 ? reason : Shown(char.ToUpperInvariant(reason[0]) + reason[1..] + (reason.EndsWith('.') ? "" : "."));
}
