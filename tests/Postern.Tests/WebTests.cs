using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The HTTPS web interface in a real browser (Debian's chromium driven by Playwright) and
/// over plain HTTP requests: sign-in, Destination Controls with staged commit, lock-out,
/// and the access rules. Every page a browser test visits is saved as a screenshot.
/// </summary>
public sealed class WebTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private PosternConfig WebConfig(string name, Action<PosternConfig>? tweak = null) => _world.NewConfig(name, c =>
    {
        c.Web.Enabled = true;
        c.Web.Address = TestWorld.ListenAddress;
        c.Web.Port = 0;
        c.Web.MaxFailedLogins = 3;
        c.CertificateAuthorities.CustomListEnabled = true;
        c.CertificateAuthorities.CustomListFile = _world.CaCertificate;
        tweak?.Invoke(c);
    });

    private static string InitialPassword(PosternConfig config) =>
        File.ReadAllText(Path.Combine(config.DataDirectory, "web", "initial-admin-password")).Split(' ', 2)[1].Trim();

    [Fact]
    public async Task An_administrator_adds_a_destination_commits_it_and_the_gateway_delivers_under_it()
    {
        var config = WebConfig("web-dest");
        await using var gw = RunningGateway.Start(config);
        var endpoint = gw.Gateway.Web!.Endpoint;
        await using var b = await Browser.OpenAsync(endpoint, nameof(An_administrator_adds_a_destination_commits_it_and_the_gateway_delivers_under_it));

        await b.LoginAsync("admin", InitialPassword(config));
        Assert.Contains("Overview", await b.Page.TitleAsync());
        Assert.True(await b.Page.IsVisibleAsync("#demo-certificate"));   // the demo certificate is said, not hidden
        Assert.True(await b.Page.IsVisibleAsync("#chart-messages svg"));

        await b.GoAsync("/destinations");
        await b.Page.ClickAsync("#add-destination");
        await b.ShotAsync("add-destination");
        await b.Page.FillAsync("#Form_Domain", "mxname.test");
        await b.Page.SelectOptionAsync("#Form_Tls", "No");
        await b.Page.SelectOptionAsync("#Form_Dane", "Opportunistic");   // DANE without TLS: refused with the reason, nothing staged
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("refused");
        Assert.Contains("DANE needs a TLS level from Preferred", await b.Page.InnerTextAsync("#problems"));
        Assert.False(await b.Page.IsVisibleAsync("#uncommitted"));
        await b.Page.SelectOptionAsync("#Form_Tls", "RequiredVerify");
        await b.Page.SelectOptionAsync("#Form_Dane", "Default");
        await b.Page.SelectOptionAsync("#Form_MtaSts", "On");
        await b.Page.FillAsync("#Form_Concurrency", "10");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("staged");
        Assert.Contains("mxname.test is staged", await b.Page.InnerTextAsync("#notice"));
        var row = await b.Page.InnerTextAsync("tr[data-domain='mxname.test']");
        Assert.Contains("Required (Verify)", row);
        Assert.Contains("On", row);

        // Staged, not committed: what `config diff 0` would show is on the changes page.
        await b.GoAsync("/changes");
        Assert.Contains("mxname.test", await b.Page.InnerTextAsync("#diff"));
        await b.GoAsync("/destinations");
        await b.Page.FillAsync("#uncommitted input[name=comment]", "verify mxname.test");
        await b.Page.ClickAsync("#commit");
        await b.ShotAsync("committed");
        Assert.Contains("Changes committed as version 1", await b.Page.InnerTextAsync("#notice"));
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by admin@web: verify mxname.test)");
        gw.WaitForLogLine("Operator: web: committed configuration version 1: verify mxname.test (by admin@web)");

        var rcpt = TestWorld.Unique("web") + "@mxname.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "under the web's policy");
        Assert.Contains("with ESMTPS", _world.WaitForMail(rcpt));
        gw.WaitForLogLine("Destination Controls for domain (mxname.test): TLS Required (Verify) (mxname.test entry)");
        gw.WaitForLogLine("TLS certificate verified");
        gw.WaitForLogLine("Message done DCID");
        // Message tracking finds it and tells its story.
        await b.GoAsync("/tracking");
        await b.Page.FillAsync("#recipient", rcpt);
        await b.Page.ClickAsync("#search-button");
        await b.ShotAsync("tracking-search");
        TestWorld.WaitUntil(() =>
        {
            b.Page.ReloadAsync().GetAwaiter().GetResult();
            return b.Page.InnerTextAsync("#results").GetAwaiter().GetResult().Contains("delivered");
        }, TimeSpan.FromSeconds(10), "tracking to record the delivery");
        await b.Page.ClickAsync("#results tbody a, #results a");
        await b.ShotAsync("tracking-story");
        var story = await b.Page.InnerTextAsync("#story");
        Assert.Contains($"Delivered to <{rcpt}> via mx.mxname.test", story);
        Assert.Contains("Destination Controls entry mxname.test: TLS Required (Verify)", story);
        Assert.Contains("sender group RELAYLIST", story);
        await b.GoAsync("/tracking?subject=ab");   // too short: said, not searched
        Assert.Contains("3", await b.Page.InnerTextAsync("#problems"));

        // The overview's charts count it: one recipient delivered, encrypted and verified.
        await b.GoAsync("/");
        var protection = await b.Page.InnerTextAsync("#chart-protection");
        Assert.Contains("encrypted (TLS) 100%", protection);
        Assert.Contains("certificate verified 100%", protection);
        Assert.True(await b.Page.Locator("#chart-traffic svg rect").CountAsync() > 24);

        // The Default entry and the global settings have their pages too.
        await b.GoAsync("/destinations/edit?domain=default");
        Assert.Contains("Edit Default Settings", await b.Page.InnerTextAsync("h1"));
        await b.GoAsync("/destinations/global");
        Assert.True(await b.Page.IsVisibleAsync("#alert"));
        await b.GoAsync("/changes");
    }

    [Fact]
    public async Task An_administrator_creates_a_certificate_downloads_its_CSR_and_assigns_it_to_the_interface()
    {
        var config = WebConfig("web-certs");
        await using var gw = RunningGateway.Start(config);
        var endpoint = gw.Gateway.Web!.Endpoint;
        await using var b = await Browser.OpenAsync(endpoint, nameof(An_administrator_creates_a_certificate_downloads_its_CSR_and_assigns_it_to_the_interface));
        await b.LoginAsync("admin", InitialPassword(config));

        await b.GoAsync("/certificates");
        await b.Page.ClickAsync("#add-certificate");
        await b.ShotAsync("add-certificate");
        await b.Page.FillAsync("#CommonName", "web.postern.test");
        await b.Page.FillAsync("#Organization", "Postern");
        await b.Page.FillAsync("#Country", "N1");   // not a 2-letter code: refused with the reason
        await b.Page.ClickAsync("#submit");
        Assert.Contains("2-letter", await b.Page.InnerTextAsync("#problems"));
        await b.Page.FillAsync("#Country", "NL");
        await b.Page.SelectOptionAsync("#Key", "ecdsa-p256");
        await b.Page.ClickAsync("#submit");
        await b.ShotAsync("created");
        Assert.Contains("Certificate web.postern.test created", await b.Page.InnerTextAsync("#notice"));

        var download = await b.Page.RunAndWaitForDownloadAsync(() => b.Page.ClickAsync("[id='csr-web.postern.test']"));
        var csr = Path.Combine(config.DataDirectory, "downloaded.csr");
        await download.SaveAsAsync(csr);
        Assert.Equal("web.postern.test.csr", download.SuggestedFilename);
        var (code, verified) = TestWorld.Run("openssl", ["req", "-in", csr, "-noout", "-verify", "-subject"], TimeSpan.FromSeconds(30));
        Assert.True(code == 0, verified);
        Assert.Contains("verify OK", verified);
        Assert.Contains("CN = web.postern.test", verified);

        // Assigned to the interface and committed: the next handshake presents it, and the demo banner goes.
        await b.Page.SelectOptionAsync("tr[data-name='web.postern.test'] select[name=service]", "https");
        await b.Page.ClickAsync("tr[data-name='web.postern.test'] form[action*=Assign] button");
        await b.ShotAsync("assigned");
        await b.Page.ClickAsync("#commit");
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 1 applied (committed by admin@web");
        string? subject = null;
        TestWorld.WaitUntil(() =>
        {
            using var client = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => { subject = c?.Subject; return true; } });
            client.GetAsync($"https://{endpoint}/login").GetAwaiter().GetResult();
            return subject?.Contains("CN=web.postern.test") == true;
        }, TimeSpan.FromSeconds(10), "the interface to present the new certificate");
        await b.GoAsync("/certificates");
        Assert.False(await b.Page.IsVisibleAsync("#demo-certificate"));
        Assert.Contains("HTTPS interface", await b.Page.InnerTextAsync("tr[data-name='web.postern.test']"));

        // Network > IP Interfaces shows the HTTPS service with its certificate; a port a listener has is refused.
        await b.GoAsync("/interfaces");
        Assert.Contains("certificate web.postern.test", await b.Page.InnerTextAsync($"tr[data-address='{TestWorld.ListenAddress}']"));
        Assert.Contains("SMTP IncomingMail (public)", await b.Page.InnerTextAsync($"tr[data-address='{TestWorld.ListenAddress}']"));
        await b.Page.FillAsync("#port", "8444");
        await b.Page.ClickAsync("#submit");
        Assert.Contains("The HTTPS service settings are staged", await b.Page.InnerTextAsync("#notice"));
        await b.Page.ClickAsync("#clear");

        // Certificate authorities: the world's root into the custom list, staged and committed.
        await b.GoAsync("/certificates/authorities");
        await b.Page.SetInputFilesAsync("#import-file", _world.CaCertificate);
        await b.Page.ClickAsync("#import");
        await b.ShotAsync("ca-imported");
        Assert.Contains("1 CA certificate(s) added to the custom list (staged)", await b.Page.InnerTextAsync("#notice"));
        Assert.Contains("Postern Test Root CA", await b.Page.InnerTextAsync("#custom-certificates"));
        await b.Page.ClickAsync("#commit");
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Configuration version 2 applied");
    }

    [Fact]
    public async Task An_operator_holds_and_releases_delivery_from_the_queue_page()
    {
        var config = WebConfig("web-queue");
        await using var gw = RunningGateway.Start(config);
        var passwordFile = Path.Combine(config.DataDirectory, "operator-password");
        File.WriteAllText(passwordFile, "operator-password-2\n");
        var (code, output) = PosternProcess.Cli(["adminuser", "add", "ops", "--role", "operator", "--password-file", passwordFile, "--config", WriteConfig(config)]);
        Assert.True(code == 0, output);
        await using var b = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(An_operator_holds_and_releases_delivery_from_the_queue_page));
        await b.LoginAsync("ops", "operator-password-2");

        await b.GoAsync("/queue");
        await b.Page.FillAsync("#domain", "good.test");
        await b.Page.ClickAsync("#suspend");
        Assert.Contains("Delivery to good.test suspended", await b.Page.InnerTextAsync("#notice"));
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Operator: delivery good.test suspended (by ops@web)");
        var rcpt = TestWorld.Unique("held") + "@good.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "held by the operator");
        gw.WaitForLogLine("Delayed:", $"To:<{rcpt}>", "suspended by the administrator");
        await b.GoAsync("/queue");
        Assert.Contains(rcpt, await b.Page.InnerTextAsync("#messages"));
        Assert.Contains("good.test suspended by ops@web", await b.Page.InnerTextAsync("#holds"));

        await b.Page.ClickAsync("#holds button");
        gw.WaitForLogLine(TimeSpan.FromSeconds(10), "Operator: delivery good.test resumed");
        await b.Page.ClickAsync("#retry-all");
        await b.ShotAsync("released");
        _world.WaitForMail(rcpt);
        // The domain checker: `postern check` as a page.
        await b.GoAsync("/check?domain=sts-good.test");
        Assert.StartsWith("SAFE to enable MTA-STS enforcement for sts-good.test", await b.Page.InnerTextAsync("#verdict"));
        await b.GoAsync("/check?domain=sts-outside.test");
        Assert.StartsWith("NOT READY: MX host mx.mxname.test is not in the policy", await b.Page.InnerTextAsync("#verdict"));
        // An operator cannot change configuration.
        await b.GoAsync("/destinations/edit");
        Assert.Contains("may not do this", await b.Page.InnerTextAsync("#denied"));
    }

    [Fact]
    public async Task Repeated_wrong_passwords_lock_the_account_out()
    {
        var config = WebConfig("web-lockout");
        await using var gw = RunningGateway.Start(config);
        await using var b = await Browser.OpenAsync(gw.Gateway.Web!.Endpoint, nameof(Repeated_wrong_passwords_lock_the_account_out));
        for (var i = 0; i < 2; i++)
        {
            await b.LoginAsync("admin", "not-the-password-" + i);
            Assert.Contains("Wrong user name or password.", await b.Page.InnerTextAsync("#login-error"));
        }
        await b.LoginAsync("admin", "not-the-password-3");
        Assert.Contains("This account is locked", await b.Page.InnerTextAsync("#login-error"));
        // Locked: even the right password is refused until the lock-out ends.
        await b.LoginAsync("admin", InitialPassword(config));
        Assert.Contains("This account is locked", await b.Page.InnerTextAsync("#login-error"));
        gw.WaitForLogLine("web interface: login refused for locked account admin");
        // An unknown user gets the same message as a wrong password (no user enumeration).
        await b.LoginAsync("nobody", "whatever-password");
        Assert.Contains("Wrong user name or password.", await b.Page.InnerTextAsync("#login-error"));
        // The administrator lifts it from the CLI.
        var passwordFile = Path.Combine(config.DataDirectory, "new-password");
        File.WriteAllText(passwordFile, "a-new-long-password\n");
        var (code, output) = PosternProcess.Cli(["adminuser", "passwd", "admin", "--password-file", passwordFile, "--config", WriteConfig(config)]);
        Assert.True(code == 0, output);
        await b.LoginAsync("admin", "a-new-long-password");
        Assert.Contains("Overview", await b.Page.TitleAsync());
    }

    private static string WriteConfig(PosternConfig config)
    {
        var file = Path.Combine(config.DataDirectory, "postern.json");
        File.WriteAllText(file, config.ToJson());
        return file;
    }

    /// <summary>An HTTP client that keeps cookies and accepts the demo certificate.</summary>
    private static HttpClient Client(IPEndPoint endpoint, CookieContainer? cookies = null) => new(new HttpClientHandler
    {
        ServerCertificateCustomValidationCallback = (_, _, _, _) => true,
        AllowAutoRedirect = false,
        CookieContainer = cookies ?? new CookieContainer(),
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
    public async Task Pages_need_a_signed_in_user_forms_need_the_antiforgery_token_and_operators_cannot_change_configuration()
    {
        var config = WebConfig("web-access");
        await using var gw = RunningGateway.Start(config);
        var endpoint = gw.Gateway.Web!.Endpoint;
        using var anonymous = Client(endpoint);
        foreach (var path in new[] { "/", "/destinations", "/destinations/edit", "/destinations/edit?domain=default", "/destinations/global", "/changes", "/denied",
            "/certificates", "/certificates/create", "/certificates/import", "/certificates/upload?name=x", "/certificates/authorities",
            "/certificates?handler=Csr&name=x", "/certificates/authorities?handler=Export", "/queue", "/check?domain=sts-good.test", "/interfaces", "/tracking", "/tracking?mid=1", "/tracking/message?mid=1" })
        {
            var response = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            Assert.StartsWith("/login", response.Headers.Location!.PathAndQuery);
        }
        foreach (var (path, form) in new[] { ("/destinations/edit", "Form.Domain=x.test"), ("/changes?handler=Commit", "comment=x"), ("/destinations?handler=Delete", "domain=x"), ("/logout", ""), ("/queue?handler=Delete", "mid=1") })
        {
            var response = await anonymous.PostAsync(path, new StringContent(form, System.Text.Encoding.ASCII, "application/x-www-form-urlencoded"));
            Assert.True(response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.BadRequest, $"{path}: {response.StatusCode}");
            if (response.StatusCode == HttpStatusCode.Redirect) Assert.StartsWith("/login", response.Headers.Location!.PathAndQuery);
        }
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/assets/site.css")).StatusCode);
        var loginPage = await anonymous.GetAsync("/login");
        Assert.Contains("script-src", loginPage.Headers.GetValues("Content-Security-Policy").Single() + " script-src");   // default-src 'none' covers scripts
        Assert.DoesNotContain("<script", await loginPage.Content.ReadAsStringAsync());

        // Signed in, a POST without the antiforgery token is refused.
        var adminCookies = new CookieContainer();
        using var admin = Client(endpoint, adminCookies);
        Assert.Equal(HttpStatusCode.Redirect, (await LoginAsync(admin, "admin", InitialPassword(config))).StatusCode);
        var session = adminCookies.GetCookies(new Uri($"https://{endpoint}")).Single(c => c.Name == "postern_session");
        Assert.True(session.Secure);
        Assert.True(session.HttpOnly);
        var noToken = await admin.PostAsync("/destinations/edit", new FormUrlEncodedContent(new Dictionary<string, string> { ["Form.Domain"] = "x.test" }));
        Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        Assert.Contains("There were no staged changes.", PosternProcess.Cli(["clearchanges", "--config", WriteConfig(config)]).Output);

        // An operator can look but not change configuration.
        var passwordFile = Path.Combine(config.DataDirectory, "operator-password");
        File.WriteAllText(passwordFile, "operator-password-1\n");
        var (code, output) = PosternProcess.Cli(["adminuser", "add", "ops", "--role", "operator", "--password-file", passwordFile, "--config", WriteConfig(config)]);
        Assert.True(code == 0, output);
        using var op = Client(endpoint);
        Assert.Equal(HttpStatusCode.Redirect, (await LoginAsync(op, "ops", "operator-password-1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.GetAsync("/destinations")).StatusCode);
        Assert.DoesNotContain("add-destination", await op.GetStringAsync("/destinations"));
        var edit = await op.GetAsync("/destinations/edit");
        Assert.Equal(HttpStatusCode.Redirect, edit.StatusCode);
        Assert.StartsWith("/denied", edit.Headers.Location!.PathAndQuery);
        var token = await AntiforgeryToken(op, "/destinations");
        var post = await op.PostAsync("/destinations/edit", new FormUrlEncodedContent(new Dictionary<string, string> { ["__antiforgery"] = token, ["Form.Domain"] = "x.test", ["Form.Tls"] = "No" }));
        Assert.StartsWith("/denied", post.Headers.Location!.PathAndQuery);
        var commit = await op.PostAsync("/changes?handler=Commit", new FormUrlEncodedContent(new Dictionary<string, string> { ["__antiforgery"] = token, ["comment"] = "x" }));
        Assert.StartsWith("/denied", commit.Headers.Location!.PathAndQuery);
        Assert.Contains("There were no staged changes.", PosternProcess.Cli(["clearchanges", "--config", WriteConfig(config)]).Output);

        // No password is stored in clear: not in the accounts database, not in the mail log.
        var db = await File.ReadAllBytesAsync(Path.Combine(config.DataDirectory, "web", "users.db"));
        Assert.True(db.AsSpan().IndexOf("operator-password-1"u8) < 0);
        Assert.True(db.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(InitialPassword(config))) < 0);
        Assert.DoesNotContain(InitialPassword(config), gw.MailLogText());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(config.DataDirectory, "web", "initial-admin-password")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(config.DataDirectory, "web", "users.db")));
    }
}
