using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The web interface's Network &gt; Listeners, Mail Policies &gt; Mail Flow Policies with each
/// listener's HAT, and System Administration &gt; Alerts pages, in a real browser (Debian's
/// chromium driven by Playwright) and over plain HTTP requests for the access rules. Every
/// page a browser test visits is saved as a screenshot.
/// </summary>
public sealed class WebPagesTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private PosternConfig WebConfig(string name, Action<PosternConfig>? tweak = null) => _world.HoldingConfig(name, c =>
    {
        c.Web.Enabled = true;
        c.Web.Port = 0;
        tweak?.Invoke(c);
    });

    private static string InitialPassword(PosternConfig config) =>
        File.ReadAllText(Path.Combine(config.DataDirectory, "web", "initial-admin-password")).Split(' ', 2)[1].Trim();

    private static string WriteConfig(PosternConfig config) => CliRuns.WriteConfig(config);

    private static string Cli(int expected, params string[] args) => CliRuns.Expect(expected, args);

    /// <summary>The HAT page's rows, in order, by their data-group.</summary>
    private static async Task<string[]> GroupsAsync(IPage page)
    {
        var rows = await page.Locator("#sender-groups tbody tr").AllAsync();
        return await Task.WhenAll(rows.Select(async r => await r.GetAttributeAsync("data-group") ?? ""));
    }

    [Fact]
    public async Task An_administrator_requires_tls_from_loopback_with_a_new_policy_and_a_hat_sender_group_and_the_gateway_applies_it()
    {
        var config = WebConfig("webp-hat");
        await using var gw = RunningGateway.Start(config);
        await using var b = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(An_administrator_requires_tls_from_loopback_with_a_new_policy_and_a_hat_sender_group_and_the_gateway_applies_it));
        await b.LoginAsync("admin", InitialPassword(config));

        // Mail Flow Policies: every field of the policies, and a new one, STRICT, that requires TLS.
        await b.GoAsync("/mailflowpolicies");
        var accepted = await b.Page.InnerTextAsync("tr[data-policy='ACCEPTED']");
        Assert.Contains("Preferred", accepted);
        Assert.Contains("20M", accepted);
        Assert.Contains("IncomingMail: default", accepted);
        await b.Page.ClickAsync("#add-policy");
        await b.ShotAsync("add-policy");
        await b.Page.FillAsync("#Form_Name", "STRICT");
        await b.Page.SelectOptionAsync("#Form_Action", "Accept");
        await b.Page.SelectOptionAsync("#Form_Tls", "Required");
        await b.Page.FillAsync("#Form_MaxMessageSize", "lots");   // refused with the parser's words, nothing staged
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("policy-refused");
        Assert.Contains("'lots' is not a message size from 1k to 2048M", await b.Page.InnerTextAsync("#problems"));
        Assert.False(await b.Page.IsVisibleAsync("#uncommitted"));
        await b.Page.FillAsync("#Form_MaxMessageSize", "10M");
        await b.Page.FillAsync("#Form_MaxRecipients", "50");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("policy-staged");
        Assert.Contains("Mail flow policy STRICT is staged", await b.Page.InnerTextAsync("#notice"));
        var strict = await b.Page.InnerTextAsync("tr[data-policy='STRICT']");
        Assert.Contains("Required", strict);
        Assert.Contains("10M", strict);
        Assert.Contains("50", strict);

        // A relay policy is refused on the public listener, with the service's reason: as a policy turned to relay ...
        await b.GoAsync("/mailflowpolicies/edit?name=ACCEPTED");
        await b.Page.SelectOptionAsync("#Form_Action", "Relay");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("relay-policy-refused");
        Assert.Contains("listener 'IncomingMail': a public listener cannot use relay policy 'ACCEPTED'", await b.Page.InnerTextAsync("#problems"));

        // ... and as a HAT sender group of the public listener.
        await b.GoAsync("/mailflowpolicies/hat?listener=IncomingMail");
        await b.Page.FillAsync("#Form_Name", "RELAYERS");
        await b.Page.FillAsync("#Form_Senders", "192.0.2.0/24");
        await b.Page.SelectOptionAsync("#Form_Policy", "RELAYED");
        await b.Page.ClickAsync("#save-group");
        await b.ShotAsync("relay-group-refused");
        Assert.Contains("a public listener cannot use relay policy 'RELAYED' (relaying needs a private listener)", await b.Page.InnerTextAsync("#problems"));
        await b.GoAsync("/mailflowpolicies/hat?listener=IncomingMail");
        Assert.Equal(0, await b.Page.Locator("tr[data-group='RELAYERS']").CountAsync());

        // The HAT: LOOPBACK -> STRICT, and a second group moved above it and back.
        await b.Page.FillAsync("#Form_Name", "LOOPBACK");
        await b.Page.FillAsync("#Form_Senders", "127.0.0.0/8");
        await b.Page.SelectOptionAsync("#Form_Policy", "STRICT");
        await b.Page.ClickAsync("#save-group");
        await b.ShotAsync("group-staged");
        Assert.Contains("Sender group LOOPBACK of IncomingMail is staged", await b.Page.InnerTextAsync("#notice"));
        await b.Page.FillAsync("#Form_Name", "PARTNERS");
        await b.Page.FillAsync("#Form_Senders", "192.0.2.10\n.partner.test");
        await b.Page.SelectOptionAsync("#Form_Policy", "ACCEPTED");
        await b.Page.ClickAsync("#save-group");
        Assert.Equal(["LOOPBACK", "PARTNERS", "default"], await GroupsAsync(b.Page));
        Assert.Contains("192.0.2.10, .partner.test", await b.Page.InnerTextAsync("tr[data-group='PARTNERS']"));
        await b.Page.ClickAsync("tr[data-group='PARTNERS'] button:has-text('Move up')");
        await b.ShotAsync("moved-up");
        Assert.Equal(["PARTNERS", "LOOPBACK", "default"], await GroupsAsync(b.Page));
        await b.Page.ClickAsync("tr[data-group='PARTNERS'] button:has-text('Move down')");
        Assert.Equal(["LOOPBACK", "PARTNERS", "default"], await GroupsAsync(b.Page));
        // Edit (renamed, it keeps its place), then delete.
        await b.Page.ClickAsync("tr[data-group='PARTNERS'] a");
        await b.ShotAsync("edit-group");
        Assert.Equal("192.0.2.10\n.partner.test", await b.Page.InputValueAsync("#Form_Senders"));
        await b.Page.FillAsync("#Form_Name", "FRIENDS");
        await b.Page.ClickAsync("#save-group");
        Assert.Equal(["LOOPBACK", "FRIENDS", "default"], await GroupsAsync(b.Page));
        await b.Page.ClickAsync("tr[data-group='FRIENDS'] button:has-text('Delete')");
        await b.ShotAsync("group-deleted");
        Assert.Equal(["LOOPBACK", "default"], await GroupsAsync(b.Page));
        // The default policy of the public listener cannot be a relay policy either.
        await b.Page.SelectOptionAsync("#default-policy", "RELAYED");
        await b.Page.ClickAsync("#save-default");
        await b.ShotAsync("relay-default-refused");
        Assert.Contains("a public listener cannot use relay policy 'RELAYED'", await b.Page.InnerTextAsync("#problems"));

        // Network > Listeners: a new listener is staged, and bound by the running gateway once committed.
        await b.GoAsync("/listeners");
        Assert.Contains("1 (HAT)", await b.Page.InnerTextAsync("tr[data-listener='IncomingMail']"));
        await b.Page.ClickAsync("#add-listener");
        await b.ShotAsync("add-listener");
        await b.Page.FillAsync("#Form_Name", "Submission");
        await b.Page.SelectOptionAsync("#Form_Type", "Private");
        await b.Page.FillAsync("#Form_Address", "25");   // .NET would read 0.0.0.25; the service's parser refuses it
        await b.Page.FillAsync("#Form_Port", "0");
        await b.Page.SelectOptionAsync("#Form_DefaultPolicy", "RELAYED");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("listener-refused");
        Assert.Contains("'25' is not an IP address", await b.Page.InnerTextAsync("#problems"));
        await b.Page.FillAsync("#Form_Address", "127.0.2.1");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("listener-staged");
        Assert.Contains("Listener Submission is staged", await b.Page.InnerTextAsync("#notice"));
        Assert.Contains("is bound when committed", await b.Page.InnerTextAsync("#notice"));
        var row = await b.Page.InnerTextAsync("tr[data-listener='Submission']");
        Assert.Contains("Private", row);
        Assert.Contains("RELAYED", row);
        Assert.Contains("new: bound when committed", row);
        // The certificate is chosen from the certificate store.
        Cli(0, "certconfig", "create", "--cn", "mx.postern.test", "--config", WriteConfig(config));
        await b.GoAsync("/listeners/edit?name=IncomingMail");
        Assert.Contains("demo certificate", await b.Page.InnerTextAsync("#Form_Certificate"));
        await b.Page.SelectOptionAsync("#Form_Certificate", "mx.postern.test");
        await b.Page.FillAsync("#Form_MaxConcurrency", "40");
        await b.Page.ClickAsync("#submit");
        row = await b.Page.InnerTextAsync("tr[data-listener='IncomingMail']");
        Assert.Contains("40", row);
        Assert.Contains("mx.postern.test", row);

        // Commit from the banner; the running gateway applies it.
        await b.GoAsync("/changes");
        await b.Page.FillAsync("#uncommitted input[name=comment]", "TLS required from loopback");
        await b.Page.ClickAsync("#commit");
        await b.ShotAsync("committed");
        Assert.Contains("Changes committed as version 1", await b.Page.InnerTextAsync("#notice"));
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by admin@web: TLS required from loopback)");
        gw.WaitForLogLine("listener Submission (private) on 127.0.2.1:", "added by configuration version 1");
        Assert.Contains(gw.Gateway.Listeners, l => l.Settings.Name == "Submission");
        gw.WaitForLogLine("Operator: web: added sender group LOOPBACK of listener IncomingMail (staged) (by admin@web)");

        // A new session from loopback matches LOOPBACK and must start TLS first.
        await using var c = await RawSmtp.ConnectAsync(gw.Public);
        await c.ReadReplyAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.StartsWith("530", await c.CommandAsync("MAIL FROM:<s@sender.test>"));
        gw.WaitForLogLine("SG LOOPBACK match 127.0.0.0/8 policy STRICT");
        var listeners = System.Text.Json.JsonDocument.Parse(Cli(0, "listenerconfig", "list", "--json", "--config", WriteConfig(config))).RootElement.GetProperty("listeners");
        var incoming = listeners.EnumerateArray().Single(l => l.GetProperty("name").GetString() == "IncomingMail");
        Assert.Equal("mx.postern.test", incoming.GetProperty("certificate").GetString());
        Assert.Equal(40, incoming.GetProperty("maxConcurrency").GetInt32());

        await b.GoAsync("/mailflowpolicies");
        Assert.Contains("IncomingMail: LOOPBACK", await b.Page.InnerTextAsync("tr[data-policy='STRICT']"));
        Assert.Contains("LOOPBACK → STRICT", await b.Page.InnerTextAsync("#hats"));
        await b.GoAsync("/mailflowpolicies/hat?listener=IncomingMail");
    }

    [Fact]
    public async Task An_administrator_adds_an_alert_recipient_with_severities_and_sets_the_throttle()
    {
        var config = WebConfig("webp-alerts");
        await using var gw = RunningGateway.Start(config);
        await using var b = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(An_administrator_adds_an_alert_recipient_with_severities_and_sets_the_throttle));
        await b.LoginAsync("admin", InitialPassword(config));

        await b.GoAsync("/alerts");
        Assert.Contains("No recipients", await b.Page.InnerTextAsync("#recipients"));
        await b.Page.ClickAsync("#add-recipient");
        await b.ShotAsync("add-recipient");
        Assert.True(await b.Page.IsCheckedAsync("#severity-Info"));   // a new recipient starts with everything, as the dialogue does
        await b.Page.FillAsync("#Form_Address", "postmaster@sender.test");
        await b.Page.UncheckAsync("#severity-Critical");
        await b.Page.UncheckAsync("#severity-Warning");
        await b.Page.UncheckAsync("#severity-Info");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("recipient-refused");
        Assert.Contains("choose at least one severity level", await b.Page.InnerTextAsync("#problems"));
        await b.Page.CheckAsync("#severity-Warning");
        await b.Page.CheckAsync("#severity-Critical");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("recipient-staged");
        Assert.Contains("Alert recipient postmaster@sender.test is staged", await b.Page.InnerTextAsync("#notice"));
        var row = await b.Page.InnerTextAsync("tr[data-address='postmaster@sender.test']");
        Assert.Contains("Critical, Warning", row);
        Assert.Contains("All", row);

        // A second recipient, edited to one class, then deleted.
        await b.Page.ClickAsync("#add-recipient");
        await b.Page.FillAsync("#Form_Address", "ops@sender.test");
        await b.Page.ClickAsync("#submit");
        await b.Page.ClickAsync("tr[data-address='ops@sender.test'] a");
        await b.ShotAsync("edit-recipient");
        foreach (var t in new[] { "System", "Hardware", "Updater", "Antivirus" }) await b.Page.UncheckAsync($"#type-{t}");
        await b.Page.ClickAsync("#submit");
        Assert.Contains("Message Delivery", await b.Page.InnerTextAsync("tr[data-address='ops@sender.test']"));
        await b.Page.ClickAsync("tr[data-address='ops@sender.test'] button:has-text('Delete')");
        Assert.Equal(0, await b.Page.Locator("tr[data-address='ops@sender.test']").CountAsync());

        await b.Page.FillAsync("#seconds", "900");
        await b.Page.ClickAsync("#save-throttle");
        await b.ShotAsync("throttle-staged");
        Assert.Equal("900", (await b.Page.InnerTextAsync("#throttle")).Trim());

        await b.Page.ClickAsync("#commit");
        await b.ShotAsync("committed");
        Assert.Contains("Changes committed as version 1", await b.Page.InnerTextAsync("#notice"));
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by admin@web)");

        var alerts = System.Text.Json.JsonDocument.Parse(Cli(0, "alertconfig", "list", "--json", "--config", WriteConfig(config))).RootElement;
        Assert.Equal(900, alerts.GetProperty("throttleSeconds").GetInt32());
        var recipients = alerts.GetProperty("recipients");
        Assert.Equal(1, recipients.GetArrayLength());
        Assert.Equal("postmaster@sender.test", recipients[0].GetProperty("address").GetString());
        Assert.Equal(["critical", "warning"], recipients[0].GetProperty("severities").EnumerateArray().Select(s => s.GetString()!).Order().ToArray());
        Assert.Equal(0, recipients[0].GetProperty("types").GetArrayLength());   // all classes
    }

    /// <summary>An HTTP client that keeps cookies and accepts the demo certificate.</summary>
    private static HttpClient Client(IPEndPoint endpoint) => new(new HttpClientHandler
    {
        ServerCertificateCustomValidationCallback = (_, _, _, _) => true,
        AllowAutoRedirect = false,
        CookieContainer = new CookieContainer(),
    }) { BaseAddress = new Uri($"https://{endpoint}") };

    private static async Task<string> AntiforgeryToken(HttpClient client, string path)
    {
        var html = await client.GetStringAsync(path);
        return Regex.Match(html, "name=\"__antiforgery\" type=\"hidden\" value=\"([^\"]+)\"").Groups[1].Value;
    }

    private static async Task<HttpResponseMessage> LoginAsync(HttpClient client, string name, string password)
    {
        var token = await AntiforgeryToken(client, "/login");
        return await client.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["__antiforgery"] = token, ["name"] = name, ["password"] = password }));
    }

    [Fact]
    public async Task Operators_see_the_listener_policy_and_alert_pages_but_get_denied_on_every_edit_page_and_change()
    {
        var config = WebConfig("webp-access");
        await using var gw = RunningGateway.Start(config);
        var endpoint = gw.Gateway.Web!.Endpoint;
        var file = WriteConfig(config);
        string[] views = ["/listeners", "/mailflowpolicies", "/mailflowpolicies/hat?listener=OutgoingMail", "/alerts"];
        string[] edits = ["/listeners/edit", "/listeners/edit?name=IncomingMail", "/mailflowpolicies/edit", "/mailflowpolicies/edit?name=ACCEPTED",
            "/mailflowpolicies/hat?listener=OutgoingMail&group=RELAYLIST", "/alerts/edit", "/alerts/edit?address=x%40sender.test"];
        (string Path, Dictionary<string, string> Form)[] posts =
        [
            ("/listeners/edit", new() { ["Form.Name"] = "X", ["Form.Address"] = "127.0.2.1", ["Form.Port"] = "0", ["Form.MaxConcurrency"] = "5", ["Form.StressCommandTimeout"] = "5", ["Form.DefaultPolicy"] = "BLOCKED" }),
            ("/listeners/edit", new() { ["original"] = "IncomingMail", ["Form.Name"] = "IncomingMail", ["Form.Address"] = "127.0.2.1", ["Form.Port"] = "0", ["Form.MaxConcurrency"] = "5", ["Form.StressCommandTimeout"] = "5", ["Form.DefaultPolicy"] = "BLOCKED" }),
            ("/listeners?handler=Delete", new() { ["name"] = "OutgoingMail" }),
            ("/mailflowpolicies/edit", new() { ["Form.Name"] = "X", ["Form.Action"] = "Accept", ["Form.Tls"] = "No", ["Form.MaxMessageSize"] = "1M", ["Form.MaxRecipients"] = "1", ["Form.MaxMessagesPerConnection"] = "1", ["Form.MaxLineLength"] = "1000", ["Form.CommandTimeout"] = "1", ["Form.DataTimeout"] = "1" }),
            ("/mailflowpolicies/edit", new() { ["original"] = "ACCEPTED", ["Form.Action"] = "Reject", ["Form.Tls"] = "No", ["Form.MaxMessageSize"] = "1M", ["Form.MaxRecipients"] = "1", ["Form.MaxMessagesPerConnection"] = "1", ["Form.MaxLineLength"] = "1000", ["Form.CommandTimeout"] = "1", ["Form.DataTimeout"] = "1" }),
            ("/mailflowpolicies/hat?handler=Save", new() { ["listener"] = "OutgoingMail", ["Form.Name"] = "X", ["Form.Senders"] = "192.0.2.1", ["Form.Policy"] = "RELAYED" }),
            ("/mailflowpolicies/hat?handler=Delete", new() { ["listener"] = "OutgoingMail", ["group"] = "RELAYLIST" }),
            ("/mailflowpolicies/hat?handler=Move", new() { ["listener"] = "OutgoingMail", ["group"] = "RELAYLIST", ["direction"] = "down" }),
            ("/mailflowpolicies/hat?handler=Default", new() { ["listener"] = "OutgoingMail", ["policy"] = "ACCEPTED" }),
            ("/alerts/edit", new() { ["Form.Address"] = "x@sender.test", ["Form.Severities"] = "Critical", ["Form.Types"] = "System" }),
            ("/alerts?handler=Delete", new() { ["address"] = "x@sender.test" }),
            ("/alerts?handler=Throttle", new() { ["seconds"] = "60" }),
            ("/changes?handler=Commit", new() { ["comment"] = "x" }),
        ];

        // Nobody signed in: the login page, for looking and for changing.
        using var anonymous = Client(endpoint);
        foreach (var path in views.Concat(edits))
        {
            var response = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            Assert.StartsWith("/login", response.Headers.Location!.PathAndQuery);
        }

        // An operator looks, without the forms, and is denied every edit page and every change.
        File.WriteAllText(Path.Combine(config.DataDirectory, "operator-password"), "operator-password-1\n");
        Cli(0, "adminuser", "add", "ops", "--role", "operator", "--password-file", Path.Combine(config.DataDirectory, "operator-password"), "--config", file);
        using var op = Client(endpoint);
        Assert.Equal(HttpStatusCode.Redirect, (await LoginAsync(op, "ops", "operator-password-1")).StatusCode);
        foreach (var path in views)
        {
            var response = await op.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {response.StatusCode}");
            var html = await response.Content.ReadAsStringAsync();
            foreach (var form in new[] { "add-listener", "add-policy", "add-recipient", "group-form", "default-form", "throttle-form", "method=\"post\" action=\"/listeners", "handler=Delete", "handler=Move" })
                Assert.DoesNotContain(form, html);
        }
        Assert.Contains("RELAYLIST", await op.GetStringAsync("/mailflowpolicies/hat?listener=OutgoingMail"));
        foreach (var path in edits)
        {
            var response = await op.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"{path}: {response.StatusCode}");
            Assert.StartsWith("/denied", response.Headers.Location!.PathAndQuery);
        }
        var token = await AntiforgeryToken(op, "/listeners");
        foreach (var (path, form) in posts)
        {
            var response = await op.PostAsync(path, new FormUrlEncodedContent(form.Append(new("__antiforgery", token))));
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"{path}: {response.StatusCode}");
            Assert.StartsWith("/denied", response.Headers.Location!.PathAndQuery);
        }
        Assert.Contains("There were no staged changes.", Cli(0, "clearchanges", "--config", file));

        // The same posts from an administrator do change things (the denial above is the role, not the form).
        using var admin = Client(endpoint);
        Assert.Equal(HttpStatusCode.Redirect, (await LoginAsync(admin, "admin", InitialPassword(config))).StatusCode);
        token = await AntiforgeryToken(admin, "/listeners");
        var throttle = await admin.PostAsync("/alerts?handler=Throttle", new FormUrlEncodedContent(new Dictionary<string, string> { ["seconds"] = "60", ["__antiforgery"] = token }));
        Assert.Equal("/alerts", throttle.Headers.Location!.OriginalString);
        Assert.Contains("\"throttleSeconds\": 60", Cli(0, "alertconfig", "list", "--json", "--config", file));
        Assert.Contains("Staged changes discarded.", Cli(0, "clearchanges", "--config", file));
    }
}
