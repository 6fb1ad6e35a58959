using System.Globalization;

namespace Postern.Admin;

/// <summary>
/// The appliance's interactive `alertconfig`: alert recipients with the classes and severity
/// levels each gets (NEW, EDIT, DELETE, CLEAR) and the throttle (SETUP). Every change goes
/// through <see cref="AlertConfigService"/> and is staged.
/// </summary>
public sealed class AlertConfigDialogue(AlertConfigService service, TextReader input, TextWriter output)
{
    private readonly DialoguePrompts _ask = new(input, output);

    /// <summary>Runs the menu until an empty answer; returns the exit status.</summary>
    public int Run()
    {
        try
        {
            while (true)
            {
                var alerts = service.Working.Alerts;
                output.WriteLine();
                if (alerts.Recipients.Count == 0) output.WriteLine("No email addresses are configured: alerts are not sent.");
                else output.WriteLine("Sending alerts to:");
                for (var i = 0; i < alerts.Recipients.Count; i++)
                {
                    var r = alerts.Recipients[i];
                    output.WriteLine($"{i + 1}. {r.Address}");
                    output.WriteLine($"    Class: {Names(r.Types, AlertConfigService.TypeChoices)} - Severities: {Names(r.Severities, AlertConfigService.SeverityChoices)}");
                }
                output.WriteLine();
                output.WriteLine($"Number of seconds to wait before sending a duplicate alert: {alerts.ThrottleSeconds}");
                output.WriteLine();
                output.WriteLine("Choose the operation you want to perform:");
                output.WriteLine("- NEW - Add a new email address to send alerts.");
                output.WriteLine("- EDIT - Modify an email address.");
                output.WriteLine("- DELETE - Remove an email address.");
                output.WriteLine("- CLEAR - Remove all email addresses (disables alerts).");
                output.WriteLine("- SETUP - Configure alert settings.");
                var op = _ask.Operation();
                try
                {
                    switch (op)
                    {
                        case "": return 0;
                        case "NEW": New(); break;
                        case "EDIT": Edit(); break;
                        case "DELETE": Delete(); break;
                        case "CLEAR": Clear(); break;
                        case "SETUP": Setup(); break;
                        default: output.WriteLine($"'{DialoguePrompts.Shown(op)}' is not an operation of alertconfig."); break;
                    }
                }
                catch (ConfigException e) { output.WriteLine($"The change was not made: {e.Message}"); }
            }
        }
        catch (EndOfStreamException)
        {
            output.WriteLine();
            output.WriteLine("alertconfig: input ended");
            return 1;
        }
    }

    private static string Names<T>(IReadOnlyCollection<T> selected, IReadOnlyList<(T Value, string Name)> choices) where T : struct, Enum =>
        selected.Count == 0 || choices.All(c => selected.Contains(c.Value)) ? "All" : string.Join(", ", choices.Where(c => selected.Contains(c.Value)).Select(c => c.Name));

    private List<string> Addresses() => service.Working.Alerts.Recipients.Select(r => r.Address).ToList();

    private void New()
    {
        var address = _ask.Valid("Please enter a new email address to send alerts.", "", AlertConfigService.ParseAddress);
        if (Addresses().Contains(address, StringComparer.OrdinalIgnoreCase))
        {
            output.WriteLine($"{address} already receives alerts; use EDIT.");
            return;
        }
        var (types, severities) = Classes([], []);
        service.Add(address, severities, types);
        Staged($"Alert recipient {address}");
    }

    private void Edit()
    {
        if (_ask.Pick("Enter the email address or number to edit.", Addresses(), "email address") is not { } address) return;
        var current = service.Working.Alerts.Recipients.First(r => r.Address == address);
        var newAddress = _ask.Valid("Please enter a new email address to send alerts.", address, AlertConfigService.ParseAddress);
        var (types, severities) = Classes(current.Types, current.Severities);
        service.Edit(address, newAddress, severities, types);
        Staged($"Alert recipient {newAddress}");
    }

    /// <summary>The appliance's two questions: which classes of alert, which severity levels.</summary>
    private (List<AlertType> Types, List<AlertSeverity> Severities) Classes(List<AlertType> types, List<AlertSeverity> severities)
    {
        var typeChoices = AlertConfigService.TypeChoices;
        var chosenTypes = _ask.ChooseSeveral("Choose the Alert Class. Separate multiple choices with commas.", [.. typeChoices.Select(c => c.Name), "All"],
            AlertConfigService.FormatChoices(types, typeChoices), AlertConfigService.ParseTypes);
        var severityChoices = AlertConfigService.SeverityChoices;
        var chosenSeverities = _ask.ChooseSeveral("Select a Severity Level. Separate multiple choices with commas.", [.. severityChoices.Select(c => c.Name), "All"],
            AlertConfigService.FormatChoices(severities, severityChoices), AlertConfigService.ParseSeverities);
        return (chosenTypes, chosenSeverities);
    }

    private void Delete()
    {
        if (_ask.Pick("Enter the email address or number to delete.", Addresses(), "email address") is not { } address) return;
        service.Remove(address);
        Staged($"The removal of {address}");
    }

    private void Clear()
    {
        if (Addresses().Count == 0) { output.WriteLine("There are no email addresses to remove."); return; }
        if (!_ask.YesNo("Do you want to remove all email addresses? No alerts will be sent.", false)) return;
        service.Clear();
        Staged("The removal of all email addresses");
    }

    private void Setup()
    {
        var current = service.Working.Alerts.ThrottleSeconds;
        var seconds = _ask.Valid("Enter the number of seconds to wait before sending a duplicate alert (0 sends every one).",
            current.ToString(CultureInfo.InvariantCulture), AlertConfigService.ParseThrottle);
        service.Throttle(seconds);
        Staged("The alert throttle");
    }

    private void Staged(string what) => output.WriteLine($"{what} is staged. Use 'postern commit' to apply it, 'postern clearchanges' to discard it.");
}
