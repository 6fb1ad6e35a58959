namespace Postern.Admin;

/// <summary>
/// The appliance's interactive `destconfig`: its operations and its English prompts, defaults
/// in brackets, Enter for the default, invalid answers asked again with the reason. Every
/// change goes through <see cref="DestinationService"/> and is staged like the scriptable forms.
/// </summary>
public sealed class DestConfigDialogue(DestinationService service, TextReader input, TextWriter output)
{
    private static readonly string[] TlsNames = ["No", "Preferred", "Required", "Preferred - Verify", "Required - Verify", "Required - Verify Hosted Domains"];

    /// <summary>Runs the menu until an empty answer; returns the exit status.</summary>
    public int Run()
    {
        try
        {
            while (true)
            {
                output.WriteLine();
                output.WriteLine($"There are currently {service.Working.DestinationControls.Entries.Count} entries configured.");
                output.WriteLine();
                output.WriteLine("Choose the operation you want to perform:");
                output.WriteLine("- NEW - Create a new entry.");
                output.WriteLine("- EDIT - Modify an entry.");
                output.WriteLine("- DELETE - Remove an entry.");
                output.WriteLine("- DEFAULT - Change the default.");
                output.WriteLine("- LIST - Display a summary list of all entries.");
                output.WriteLine("- DETAIL - Display details for one destination or all entries.");
                output.WriteLine("- CLEAR - Remove all entries.");
                output.WriteLine("- IMPORT - Import tables from a file.");
                output.WriteLine("- EXPORT - Export tables to a file.");
                output.WriteLine("- SETUP - Change global settings.");
                var op = Ask("", "").Trim().ToUpperInvariant();
                try
                {
                    switch (op)
                    {
                        case "": return 0;
                        case "NEW": New(); break;
                        case "EDIT": Edit(); break;
                        case "DELETE": Delete(); break;
                        case "DEFAULT": Questions("default", service.Working.DestinationControls.Default, isDefault: true); break;
                        case "LIST": List(); break;
                        case "DETAIL": Detail(); break;
                        case "CLEAR": Clear(); break;
                        case "IMPORT": Import(); break;
                        case "EXPORT": Export(); break;
                        case "SETUP": Setup(); break;
                        default: output.WriteLine($"'{op}' is not an operation of destconfig."); break;
                    }
                }
                catch (ConfigException e)
                {
                    output.WriteLine($"The change was not made: {e.Message}");
                }
            }
        }
        catch (EndOfStreamException)
        {
            output.WriteLine();
            output.WriteLine("destconfig: input ended");
            return 1;
        }
    }

    private string Ask(string question, string defaultValue)
    {
        if (question.Length > 0) output.WriteLine(question);
        output.Write($"[{defaultValue}]> ");
        output.Flush();
        var line = input.ReadLine() ?? throw new EndOfStreamException();
        line = line.Trim();
        return line.Length == 0 ? defaultValue : line;
    }

    private bool YesNo(string question, bool defaultValue)
    {
        while (true)
        {
            output.Write($"{question} [{(defaultValue ? "Y" : "N")}]> ");
            output.Flush();
            var line = (input.ReadLine() ?? throw new EndOfStreamException()).Trim();
            if (line.Length == 0) return defaultValue;
            if (line.Equals("y", StringComparison.OrdinalIgnoreCase) || line.Equals("yes", StringComparison.OrdinalIgnoreCase)) return true;
            if (line.Equals("n", StringComparison.OrdinalIgnoreCase) || line.Equals("no", StringComparison.OrdinalIgnoreCase)) return false;
            output.WriteLine("Please answer Y or N.");
        }
    }

    private int Choose(string question, IReadOnlyList<string> choices, int defaultChoice)
    {
        while (true)
        {
            output.WriteLine(question);
            for (var i = 0; i < choices.Count; i++) output.WriteLine($"{i + 1}. {choices[i]}");
            var answer = Ask("", defaultChoice.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (int.TryParse(answer, out var n) && n >= 1 && n <= choices.Count) return n;
            output.WriteLine($"Please enter a number from 1 to {choices.Count}.");
        }
    }

    private int Number(string question, int defaultValue, int min, int max)
    {
        while (true)
        {
            var answer = Ask(question, defaultValue.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (int.TryParse(answer, out var n) && n >= min && n <= max) return n;
            output.WriteLine($"Please enter a number from {min} to {max}.");
        }
    }

    private void New()
    {
        string domain;
        while (true)
        {
            domain = Ask("Enter the domain you wish to configure.", "");
            if (Dns.DomainNames.IsValidDomainPattern(domain)) break;
            output.WriteLine(domain.Length == 0 ? "A domain is required." : $"'{domain}' is not a domain or .domain name.");
        }
        if (service.Working.DestinationControls.Entries.Any(e => e.Domain.Equals(domain, StringComparison.OrdinalIgnoreCase)))
        {
            output.WriteLine($"{domain} already exists; use EDIT.");
            return;
        }
        Questions(domain, new DestinationEntry { Domain = domain }, isDefault: false, isNew: true);
    }

    private string PickDomain()
    {
        var entries = service.Working.DestinationControls.Entries;
        if (entries.Count == 0) { output.WriteLine("There are no entries."); return ""; }
        return Ask("Enter the domain you wish to edit.", "");
    }

    private void Edit()
    {
        var domain = PickDomain();
        if (domain.Length == 0) return;
        var entry = service.Working.DestinationControls.Entries.FirstOrDefault(e => e.Domain.Equals(domain, StringComparison.OrdinalIgnoreCase));
        if (entry is null) { output.WriteLine($"There is no entry for {domain}."); return; }
        Questions(entry.Domain, entry, isDefault: false);
    }

    /// <summary>The appliance's question sequence; the answers become one staged change.</summary>
    private void Questions(string domain, DestinationEntry current, bool isDefault, bool isNew = false)
    {
        var d = service.Working.DestinationControls.Default;
        string? concurrency = null, messages = null, tls = null, dane = null, sts = null, bounceVerification = null, profile = null;
        if (YesNo($"Do you wish to configure a concurrency limit for {domain}?", current.ConcurrentConnections is not null || isNew))
            concurrency = Number($"Enter the max concurrency limit for \"{domain}\".", current.ConcurrentConnections ?? d.ConcurrentConnections ?? 500, 1, 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
        else if (!isDefault) concurrency = "default";
        if (YesNo("Do you wish to apply a messages-per-connection limit to this domain?", current.MaxMessagesPerConnection is not null))
            messages = Number("Enter the max number of messages per connection.", current.MaxMessagesPerConnection ?? d.MaxMessagesPerConnection ?? 50, 1, 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
        else if (!isDefault) messages = "default";

        if (isDefault || YesNo("Do you wish to apply a specific TLS setting for this domain?", current.Tls != TlsLevel.Default))
        {
            var level = Choose("Do you want to use TLS support?", TlsNames, current.Tls == TlsLevel.Default ? 2 : (int)current.Tls);
            tls = level.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (level > 1)
            {
                output.WriteLine("You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.");
                if (YesNo("Do you wish to configure DANE support?", current.Dane is DaneSupport.Opportunistic or DaneSupport.Mandatory))
                {
                    var choice = Choose("Do you want to use DANE support?", ["No", "Opportunistic", "Mandatory"],
                        current.Dane switch { DaneSupport.Opportunistic => 2, DaneSupport.Mandatory => 3, _ => 1 });
                    dane = choice switch { 2 => "opportunistic", 3 => "mandatory", _ => "none" };
                }
                if (YesNo("Do you wish to configure MTA STS support?", current.MtaSts == MtaStsSupport.On))
                {
                    var choice = Choose("Do you want to use MTA STS support?", ["Off", "On"], current.MtaSts == MtaStsSupport.On ? 2 : 1);
                    sts = choice == 2 ? "on" : "off";
                    if (choice == 2) output.WriteLine("MTA STS will not be enforced for domains that have SMTP Routes configured.");
                }
            }
            else { dane = "none"; sts = "off"; }
        }
        else if (!isDefault) tls = "default";

        if (YesNo("Do you wish to apply a specific bounce verification address tagging setting for this domain?", current.BounceVerification is not null && !isDefault))
            bounceVerification = YesNo("Perform address tagging?", current.BounceVerification == true) ? "on" : "off";
        if (YesNo("Do you wish to apply a specific bounce profile to this domain?", current.BounceProfile is not null && !isDefault))
        {
            var names = service.Working.BounceProfiles.Keys.OrderBy(k => k).ToList();
            var choice = Choose("Please choose a bounce profile.", names, Math.Max(1, names.IndexOf(current.BounceProfile ?? "Default") + 1));
            profile = names[choice - 1];
        }

        var changes = new DestinationChanges(tls, dane, sts, concurrency, messages, bounceVerification, profile);
        var notes = isNew ? service.New(domain, changes) : service.Edit(isDefault ? "default" : domain, changes);
        foreach (var note in notes) output.WriteLine(note);
        output.WriteLine($"{(isDefault ? "The default" : domain)} is staged. Use 'postern commit' to apply it, 'postern clearchanges' to discard it.");
    }

    private void Delete()
    {
        var domain = PickDomain();
        if (domain.Length == 0) return;
        service.Delete(domain);
        output.WriteLine($"{domain} deleted (staged).");
    }

    private void List()
    {
        foreach (var r in service.List())
            output.WriteLine($"{r.Entry,-28} TLS {EffectiveDestination.LevelName(r.Tls)}, DANE {r.Dane.ToString().ToLowerInvariant()}, MTA-STS {r.MtaSts.ToString().ToLowerInvariant()}, {r.ConcurrentConnections} connections, {r.MaxMessagesPerConnection} messages per connection");
    }

    private void Detail()
    {
        var domain = Ask("Enter the domain you wish to view, or leave blank for all.", "");
        foreach (var r in service.List().Where(r => domain.Length == 0 || r.Entry.Equals(domain, StringComparison.OrdinalIgnoreCase)))
        {
            output.WriteLine(r.Entry);
            output.WriteLine($"  IP preference: {r.IpPreference}; concurrency {r.ConcurrentConnections}; messages per connection {r.MaxMessagesPerConnection}; limits apply {r.LimitsApplyTo}");
            output.WriteLine($"  TLS: {EffectiveDestination.LevelName(r.Tls)}; DANE: {r.Dane}; MTA-STS: {r.MtaSts}; bounce verification: {(r.BounceVerification ? "on" : "off")}; bounce profile: {r.BounceProfile}");
        }
    }

    private void Import()
    {
        var file = Ask("Enter the name of the file to import (a table written by EXPORT).", "");
        if (file.Length == 0) return;
        string text;
        try { text = File.ReadAllText(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { output.WriteLine($"Cannot read {file}: {e.Message}"); return; }
        foreach (var note in service.Import(text, file)) output.WriteLine(note);
        output.WriteLine("The imported table is staged. Use 'postern commit' to apply it, 'postern clearchanges' to discard it.");
    }

    private void Export()
    {
        var file = Ask("Enter a name for the exported file.", "destconfig.json");
        try { File.WriteAllText(file, service.Export()); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { output.WriteLine($"Cannot write {file}: {e.Message}"); return; }
        output.WriteLine($"The table was exported to {Path.GetFullPath(file)}.");
    }

    /// <summary>The global settings: the alert on a failed required TLS connection, and the outbound client certificate.</summary>
    private void Setup()
    {
        var dc = service.Working.DestinationControls;
        var alert = YesNo("Do you want to send an alert when a required TLS connection fails?", dc.AlertOnRequiredTlsFailure);
        string? certificate = null;
        var stored = service.StoredCertificates();
        if (YesNo("Do you want to use a client certificate for outbound TLS connections?", dc.ClientCertificate is not null))
        {
            if (stored.Count == 0) output.WriteLine("There are no stored certificates: create or import one with 'certconfig' first.");
            else
            {
                var names = stored.Select(c => c.Name).ToList();
                var current = dc.ClientCertificate is { } n ? names.FindIndex(x => x.Equals(n, StringComparison.OrdinalIgnoreCase)) + 1 : 1;
                certificate = names[Choose("Choose the certificate for outbound TLS connections:", stored.Select(c => $"{c.Name} ({c.Subject}, expires {c.NotAfter:yyyy-MM-dd})").ToList(), Math.Max(1, current)) - 1];
            }
        }
        else certificate = "none";
        service.Setup(alert, certificate);
        output.WriteLine("The global settings are staged. Use 'postern commit' to apply them, 'postern clearchanges' to discard them.");
    }

    private void Clear()
    {
        if (!YesNo("Do you want to remove all entries?", false)) return;
        foreach (var e in service.Working.DestinationControls.Entries.ToList()) service.Delete(e.Domain);
        output.WriteLine("All entries removed (staged).");
    }
}
