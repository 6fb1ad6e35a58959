using System.Text.Json;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The appliance's dialogues of listenerconfig and alertconfig, through the real CLI with piped answers and on a pseudo-terminal.</summary>
public sealed class DialogueTests
{
    private const string StagedSuffix = " is staged. Use 'postern commit' to apply it, 'postern clearchanges' to discard it.";
    private readonly TestWorld _world = TestWorld.Instance;

    private static string ConfigFile(PosternConfig config) => CliRuns.WriteConfig(config);

    private static string Cli(int expected, params string[] args) => CliRuns.Expect(expected, args);

    /// <summary>The dialogue with the answers piped to it; the output without carriage returns.</summary>
    private static (int ExitCode, string Output) Dialogue(string command, string file, string answers)
    {
        var (code, output) = TestWorld.Run("dotnet", [PosternProcess.Dll, command, "--config", file], TimeSpan.FromSeconds(60), stdin: answers);
        return (code, output.Replace("\r", ""));
    }

    [Fact]
    public void The_listenerconfig_dialogue_asks_the_appliances_questions_and_stages_the_answers()
    {
        var file = ConfigFile(_world.HoldingConfig("dlg-listener"));
        Cli(0, "certconfig", "create", "--cn", "mx.postern.test", "--config", file);
        string[] answers =
        [
            // NEW: a name with a space and an address that is none are asked again; port 2526; default policy ACCEPTED.
            "new", "Bad Name!", "Inbound2", "1", "999.1.1.1", "127.0.2.1", "2526", "",
            "edit", "Inbound2",
            "hostaccess",
            "new", "TRUSTED", "not a host!", "10.0.0.0/8, .example.test", "",
            "new", "LOCAL", "127.0.0.1", "",
            "move", "LOCAL", "1",
            "new", "RELAY", "10.1.1.1", "3",                  // a relay policy on a public listener: refused, the menu goes on
            "policy", "STRICT", "1", "10M", "", "50", "3",  // accept, 10M, messages default, 50 recipients, TLS required
            "default", "4",                                 // STRICT for hosts no group matches
            "",
            "certificate", "2",
            "limits", "20000", "100",
            "name", "Inbound3",
            "",
            "delete", "OutgoingMail",
            "",
        ];
        var (code, output) = Dialogue("listenerconfig", file, string.Join("\n", answers) + "\n");
        Assert.True(code == 0, output);
        Assert.Contains("Currently configured listeners:\n1. IncomingMail (on 127.0.2.1) SMTP TCP Port 0 Public\n2. OutgoingMail (on 127.0.2.1) SMTP TCP Port 0 Private\n", output);
        Assert.Contains("Choose the operation you want to perform:\n- NEW - Create a new listener.\n- EDIT - Modify a listener.\n- DELETE - Remove a listener.\n[]> ", output);
        Assert.Contains("The name 'Bad Name!' is not usable (1-64 letters, digits, '.', '-' or '_').\nPlease create a name for this listener", output);
        Assert.Contains("Please select the type of listener you want to create.\n1. Public\n2. Private\n[1]> ", output);
        Assert.Contains("'999.1.1.1' is not an IP address.\nPlease enter the IP address for this listener.", output);
        Assert.Contains("Listener Inbound2" + StagedSuffix, output);
        Assert.Contains("- NAME - Change the name of the listener.\n- INTERFACE - Change the interface.\n- LIMITS - Change the injection limits.\n- HOSTACCESS - Modify the Host Access Table.\n- CERTIFICATE - Choose the certificate.", output);
        Assert.Contains("'not a host!' is not an IP, CIDR or host-name pattern.", output);
        Assert.Contains("- MOVE - Move a sender group.", output);
        Assert.Contains("Host Access Table of Inbound2 (the first matching sender group wins):\n1. LOCAL: 127.0.0.1 -> ACCEPTED\n2. TRUSTED: 10.0.0.0/8, .example.test -> ACCEPTED", output);
        Assert.Contains("The change was not made: invalid configuration:", output);
        Assert.Contains("a public listener cannot use relay policy 'RELAYED'", output);
        Assert.Contains("Creating the mail flow policy STRICT.", output);
        Assert.Contains("Enter the maximum message size. Add a trailing k for kilobytes, M for megabytes, or no letter for bytes.\n[20M]> ", output);
        Assert.Contains("Do you want to allow encrypted TLS connections?\n1. No\n2. Preferred\n3. Required\n[1]> ", output);
        Assert.Contains("You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.", output);
        Assert.Contains("Mail flow policy STRICT" + StagedSuffix, output);
        Assert.Contains("Choose the certificate:\n1. Demo\n2. mx.postern.test (CN=mx.postern.test, expires ", output);
        Assert.Contains("The maximum concurrency must be a number from 1 to 10000.\nEnter the maximum number of concurrent connections allowed.\n[50]> ", output);
        Assert.Contains("Certificate: mx.postern.test", output);
        Assert.Contains("The removal of listener OutgoingMail" + StagedSuffix, output);

        Cli(0, "commit", "--comment", "from the listenerconfig dialogue", "--config", file);
        var listed = JsonDocument.Parse(Cli(0, "listenerconfig", "list", "--json", "--config", file)).RootElement;
        var listeners = listed.GetProperty("listeners").EnumerateArray().ToList();
        Assert.Equal(["IncomingMail", "Inbound3"], listeners.Select(l => l.GetProperty("name").GetString()));
        var inbound = listeners[1];
        Assert.Equal("public", inbound.GetProperty("type").GetString());
        Assert.Equal("127.0.2.1", inbound.GetProperty("address").GetString());
        Assert.Equal(2526, inbound.GetProperty("port").GetInt32());
        Assert.Equal(100, inbound.GetProperty("maxConcurrency").GetInt32());
        Assert.Equal("mx.postern.test", inbound.GetProperty("certificate").GetString());
        Assert.Equal("STRICT", inbound.GetProperty("defaultPolicy").GetString());
        var groups = inbound.GetProperty("senderGroups").EnumerateArray().ToList();
        Assert.Equal(["LOCAL", "TRUSTED"], groups.Select(g => g.GetProperty("name").GetString()));
        Assert.Equal(["10.0.0.0/8", ".example.test"], groups[1].GetProperty("senders").EnumerateArray().Select(s => s.GetString()));
        var strict = listed.GetProperty("mailFlowPolicies").GetProperty("STRICT");
        Assert.Equal("accept", strict.GetProperty("action").GetString());
        Assert.Equal("required", strict.GetProperty("tls").GetString());
        Assert.Equal(10L * 1024 * 1024, strict.GetProperty("maxMessageSize").GetInt64());
        Assert.Equal(50, strict.GetProperty("maxRecipientsPerMessage").GetInt32());
        Assert.Equal(1000, strict.GetProperty("maxMessagesPerConnection").GetInt32());

        // Input that ends mid-dialogue changes nothing and says so.
        var (code2, output2) = Dialogue("listenerconfig", file, "new\nHalf\n1\n");
        Assert.Equal(1, code2);
        Assert.Contains("listenerconfig: input ended", output2);
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));
    }

    [Fact]
    public void The_alertconfig_dialogue_asks_the_appliances_questions_and_stages_the_answers()
    {
        var file = ConfigFile(_world.HoldingConfig("dlg-alert"));
        string[] answers =
        [
            "new", "not-an-address", "admin@example.test", "1,5", "9", "1,2",   // a bad address and severity 9 are asked again
            "new", "ops@example.test", "", "",                                 // all classes, all severities
            "edit", "1", "alerts@example.test", "", "critical",
            "setup", "-5", "600",
            "delete", "ops@example.test",
            "",
        ];
        var (code, output) = Dialogue("alertconfig", file, string.Join("\n", answers) + "\n");
        Assert.True(code == 0, output);
        Assert.Contains("No email addresses are configured: alerts are not sent.", output);
        Assert.Contains("Choose the operation you want to perform:\n- NEW - Add a new email address to send alerts.\n- EDIT - Modify an email address.\n- DELETE - Remove an email address.\n- CLEAR - Remove all email addresses (disables alerts).\n- SETUP - Configure alert settings.\n[]> ", output);
        Assert.Contains("Please enter a new email address to send alerts.\n[]> 'not-an-address' is not an email address (local-part@domain).\nPlease enter a new email address to send alerts.", output);
        Assert.Contains("Choose the Alert Class. Separate multiple choices with commas.\n1. System\n2. Hardware\n3. Updater\n4. Anti-Virus\n5. Message Delivery\n6. All\n[6]> ", output);
        const string severities = "Select a Severity Level. Separate multiple choices with commas.\n1. Critical\n2. Warning\n3. Information\n4. All\n[4]> ";
        Assert.Contains(severities + "Severity level '9' is not one of 1-4, Critical, Warning, Information or all.\n" + severities, output);
        Assert.Contains("Alert recipient admin@example.test" + StagedSuffix, output);
        Assert.Contains("1. admin@example.test\n    Class: System, Message Delivery - Severities: Critical, Warning\n2. ops@example.test\n    Class: All - Severities: All", output);
        Assert.Contains("[admin@example.test]> ", output);   // EDIT offers the current answers
        Assert.Contains("[1,5]> ", output);
        Assert.Contains("The number of seconds must be a number from 0 to 604800.", output);
        Assert.Contains("The removal of ops@example.test" + StagedSuffix, output);

        Cli(0, "commit", "--comment", "from the alertconfig dialogue", "--config", file);
        var alerts = JsonDocument.Parse(Cli(0, "alertconfig", "list", "--json", "--config", file)).RootElement;
        Assert.Equal(600, alerts.GetProperty("throttleSeconds").GetInt32());
        var recipient = Assert.Single(alerts.GetProperty("recipients").EnumerateArray());
        Assert.Equal("alerts@example.test", recipient.GetProperty("address").GetString());
        Assert.Equal(["system", "messageDelivery"], recipient.GetProperty("types").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(["critical"], recipient.GetProperty("severities").EnumerateArray().Select(s => s.GetString()));

        // CLEAR asks first, and removes every address.
        var (code2, output2) = Dialogue("alertconfig", file, "clear\ny\n\n");
        Assert.True(code2 == 0, output2);
        Assert.Contains("Do you want to remove all email addresses? No alerts will be sent. [N]> ", output2);
        Assert.Contains("The removal of all email addresses" + StagedSuffix, output2);
        Cli(0, "commit", "--config", file);
        Assert.Empty(JsonDocument.Parse(Cli(0, "alertconfig", "list", "--json", "--config", file)).RootElement.GetProperty("recipients").EnumerateArray());

        // Input that ends mid-dialogue changes nothing and says so.
        var (code3, output3) = Dialogue("alertconfig", file, "new\nx@example.test\n1\n");
        Assert.Equal(1, code3);
        Assert.Contains("alertconfig: input ended", output3);
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));
    }

    [Fact]
    public void The_listenerconfig_and_alertconfig_dialogues_work_on_a_terminal()
    {
        // util-linux `script` gives the dialogues a pseudo-terminal, as an administrator's ssh session would.
        var file = ConfigFile(_world.HoldingConfig("dlg-pty"));
        var (code, output) = TestWorld.Run("script", ["-qec", $"dotnet {PosternProcess.Dll} listenerconfig --config {file}", "/dev/null"], TimeSpan.FromSeconds(60),
            stdin: "edit\nIncomingMail\nlimits\n77\n\n\n");
        Assert.True(code == 0, output);
        Assert.Contains("Enter the maximum number of concurrent connections allowed.", output);
        Assert.Contains("The concurrency limit of IncomingMail is staged.", output);
        (code, output) = TestWorld.Run("script", ["-qec", $"dotnet {PosternProcess.Dll} alertconfig --config {file}", "/dev/null"], TimeSpan.FromSeconds(60),
            stdin: "new\npty@example.test\n2\n\n\n");
        Assert.True(code == 0, output);
        Assert.Contains("Choose the Alert Class.", output);
        Assert.Contains("Alert recipient pty@example.test is staged.", output);
        Assert.Contains("IncomingMail (public) on 127.0.2.1:0, max 77 sessions", Cli(0, "listenerconfig", "list", "--config", file));
        Assert.Contains("pty@example.test: severities all; types Hardware", Cli(0, "alertconfig", "list", "--config", file));
    }
}
