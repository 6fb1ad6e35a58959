using System.Net;
using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Security;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>certconfig end to end: the store, the CLI, and the certificates proven on the wire with openssl and Postfix.</summary>
public sealed class CertificateTests
{
    private readonly TestWorld _world = TestWorld.Instance;
    private string Certs => Path.Combine(_world.WorldDirectory, "certs");

    /// <summary>Writes the configuration next to the data so the CLI and the gateway share one store.</summary>
    private static string ConfigFile(PosternConfig config) => CliRuns.WriteConfig(config);

    private static string Cert(string configFile, params string[] args)
    {
        var (code, output) = PosternProcess.Cli(["certconfig", .. args, "--config", configFile]);
        Assert.True(code == 0, $"certconfig {string.Join(' ', args)} failed ({code}):\n{output}");
        return output;
    }

    private static void Commit(string configFile, string comment) =>
        Assert.Contains("Changes committed", PosternProcess.Cli(["commit", "--comment", comment, "--config", configFile]).Output);

    private static (int Code, string Output) CertFails(string configFile, params string[] args) =>
        PosternProcess.Cli(["certconfig", .. args, "--config", configFile]);

    private static string Openssl(params string[] args)
    {
        var (code, output) = TestWorld.Run("openssl", args, TimeSpan.FromSeconds(30), stdin: "");
        Assert.True(code == 0, $"openssl {string.Join(' ', args)}:\n{output}");
        return output;
    }

    /// <summary>What `openssl s_client -starttls smtp` sees: the leaf subject and how many certificates were sent.</summary>
    private static (string Subject, int ChainLength) SClient(IPEndPoint endpoint)
    {
        var (_, output) = TestWorld.Run("openssl", ["s_client", "-starttls", "smtp", "-connect", endpoint.ToString(), "-showcerts"], TimeSpan.FromSeconds(30), stdin: "QUIT\n");
        var subject = output.Split('\n').First(l => l.StartsWith("subject=", StringComparison.Ordinal))[8..].Trim();
        var chain = output.Split('\n').Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^ \d+ s:"));
        return (subject, chain);
    }

    [Fact]
    public async Task Created_certificate_assigned_to_a_listener_is_served_without_a_restart_or_dropped_sessions()
    {
        var config = _world.HoldingConfig("cert-assign");
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);
        Assert.Contains("Postern demo certificate", SClient(gw.Public).Subject);

        await using var established = await RawSmtp.ConnectAsync(gw.Public);
        await established.ReadReplyAsync();
        Assert.StartsWith("250", await established.CommandAsync("EHLO client.test"));

        Assert.Contains("WARNING: listener IncomingMail uses the demo certificate", Cert(file, "list"));
        Assert.Contains("Created self-signed certificate 'mx.postern.test'", Cert(file, "create", "--cn", "mx.postern.test", "--org", "Postern", "--country", "NL", "--days", "400", "--key", "ecdsa-p256"));
        Assert.Contains("is assigned to listener IncomingMail (staged)", Cert(file, "assign", "mx.postern.test", "--listener", "IncomingMail"));
        Assert.Contains("Postern demo certificate", SClient(gw.Public).Subject);   // staged is not in force
        Commit(file, "real certificate for IncomingMail");
        TestWorld.WaitUntil(() => SClient(gw.Public).Subject.Contains("CN = mx.postern.test"), TimeSpan.FromSeconds(10), "the new certificate on the wire");
        Assert.Contains("Postern demo certificate", SClient(gw.Private).Subject);   // the other listener is untouched

        // The session opened before the change goes on, and its STARTTLS gets the new certificate.
        Assert.StartsWith("250", await established.CommandAsync("NOOP"));
        Assert.StartsWith("220", await established.CommandAsync("STARTTLS"));
        await established.StartTlsAsync();
        Assert.Contains("CN=mx.postern.test", established.RemoteCertificate!.Subject);
        gw.WaitForLogLine("listener IncomingMail uses certificate mx.postern.test");
        Assert.Contains("mx.postern.test", Cert(file, "list"));
        Assert.Contains("assigned to listener IncomingMail", Cert(file, "list"));
        var (code, err) = CertFails(file, "delete", "mx.postern.test");
        Assert.Equal(1, code);
        Assert.Contains("is assigned to listener IncomingMail", err);
        // A commit naming a certificate that is not stored is refused with the reason.
        var document = System.Text.Json.Nodes.JsonNode.Parse(PosternProcess.Cli(["config", "show", "1", "--config", file]).Output)!;
        document["listeners"]![1]!["certificate"] = "no-such-certificate";
        var edited = Path.Combine(config.DataDirectory, "edited.json");
        File.WriteAllText(edited, document.ToJsonString());
        Assert.Equal(0, PosternProcess.Cli(["config", "import", edited, "--config", file]).ExitCode);
        var refused = PosternProcess.Cli(["commit", "--config", file]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("listener OutgoingMail: there is no stored certificate named 'no-such-certificate'", refused.Output);
    }

    [Fact]
    public async Task CSR_signed_by_a_CA_is_uploaded_with_its_intermediate_and_served_as_a_chain()
    {
        var config = _world.HoldingConfig("cert-csr");
        var file = ConfigFile(config);
        var dir = config.DataDirectory;
        Cert(file, "create", "--cn", "signed.postern.test", "--san", "alt.postern.test");
        var csr = Path.Combine(dir, "req.csr");
        Cert(file, "csr", "signed.postern.test", "--out", csr);
        Assert.Contains("verify OK", Openssl("req", "-verify", "-noout", "-in", csr));
        var signed = Path.Combine(dir, "signed.crt");
        Openssl("x509", "-req", "-in", csr, "-CA", Path.Combine(Certs, "int.crt"), "-CAkey", Path.Combine(Certs, "int.key"),
            "-CAcreateserial", "-CAserial", Path.Combine(dir, "int.srl"), "-days", "30", "-copy_extensions", "copy", "-out", signed);
        Assert.Contains("issued by CN=Postern Test Intermediate CA", Cert(file, "upload", "signed.postern.test", "--cert", signed, "--intermediates", Path.Combine(Certs, "int.crt")));
        Cert(file, "assign", "signed.postern.test", "--listener", "IncomingMail");
        Commit(file, "signed certificate");

        await using var gw = RunningGateway.Start(ConfigCommands.InForce(config));
        var (subject, chain) = SClient(gw.Public);
        Assert.Contains("CN = signed.postern.test", subject);
        Assert.Equal(2, chain);   // leaf and intermediate
        // Verifies against the world root with what the server sent.
        var (_, verify) = TestWorld.Run("openssl", ["s_client", "-starttls", "smtp", "-connect", gw.Public.ToString(), "-CAfile", Path.Combine(Certs, "ca.crt"), "-verify_return_error"], TimeSpan.FromSeconds(30), stdin: "QUIT\n");
        Assert.Contains("Verify return code: 0 (ok)", verify);
    }

    [Fact]
    public void Bad_input_gives_a_clear_error_and_changes_nothing()
    {
        var config = _world.HoldingConfig("cert-errors");
        var file = ConfigFile(config);
        var dir = config.DataDirectory;
        Cert(file, "create", "--cn", "keep.postern.test");
        var before = Cert(file, "list");

        // A certificate for another key (the world's mx1 certificate) does not replace ours.
        var (c1, e1) = CertFails(file, "upload", "keep.postern.test", "--cert", Path.Combine(Certs, "mxname.crt"));
        Assert.Equal(1, c1);
        Assert.Contains("does not match the private key of 'keep.postern.test'", e1);

        var bad = Path.Combine(dir, "bad.pem");
        File.WriteAllText(bad, "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n");
        var (c2, e2) = CertFails(file, "upload", "keep.postern.test", "--cert", bad);
        Assert.Equal(1, c2);
        Assert.Contains("malformed PEM", e2);
        File.WriteAllText(bad, "hello");
        Assert.Contains("no PEM certificate found", CertFails(file, "ca", "custom", "import", bad).Output);

        var p12 = Path.Combine(dir, "x.p12");
        Openssl("pkcs12", "-export", "-in", Path.Combine(Certs, "mxname.crt"), "-inkey", Path.Combine(Certs, "mxname.key"), "-out", p12, "-passout", "pass:right-pass");
        var (c3, e3) = CertFails(file, "import", "x", "--pkcs12", p12, "--passphrase", "wrong-pass");
        Assert.Equal(1, c3);
        Assert.Contains("passphrase is wrong", e3);

        var (c4, e4) = CertFails(file, "create", "--cn", "nodots", "--validate-fqdn");
        Assert.Equal(1, c4);
        Assert.Contains("'nodots' is not a fully qualified domain name", e4);

        var (c5, e5) = CertFails(file, "create", "--cn", "weak.postern.test", "--key", "rsa1024");
        Assert.Equal(1, c5);
        Assert.Contains("1024-bit RSA key is insecure", e5);
        var (c6, e6) = CertFails(file, "create", "--cn", "x.postern.test", "--country", "Netherlands");
        Assert.Equal(1, c6);
        Assert.Contains("2-letter", e6);

        Assert.Equal(before, Cert(file, "list"));
        // With the explicit flag the weak key is made, with a warning.
        Assert.Contains("WARNING: a 1024-bit RSA key is insecure", Cert(file, "create", "--cn", "weak.postern.test", "--key", "rsa1024", "--insecure"));
    }

    [Fact]
    public void PKCS12_round_trips_with_openssl_both_ways()
    {
        var config = _world.HoldingConfig("cert-p12");
        var file = ConfigFile(config);
        var dir = config.DataDirectory;

        // openssl → Postern (with the chain)
        var fromOpenssl = Path.Combine(dir, "in.p12");
        Openssl("pkcs12", "-export", "-in", Path.Combine(Certs, "intermediate.crt"), "-inkey", Path.Combine(Certs, "intermediate.key"),
            "-out", fromOpenssl, "-passout", "pass:secret-one");
        Assert.Contains("1 intermediate(s)", Cert(file, "import", "imported", "--pkcs12", fromOpenssl, "--passphrase", "secret-one"));
        Assert.Contains("CN=mx.intermediate.test", Cert(file, "show", "imported"));

        // Postern → openssl: PBES2 with AES-256, key and chain included, confirmation required
        var export = Path.Combine(dir, "out.p12");
        var (c, e) = CertFails(file, "export", "imported", "--pkcs12", export, "--passphrase", "secret-two", "--confirm", "secret-tow");
        Assert.Equal(1, c);
        Assert.Contains("differ", e);
        Cert(file, "export", "imported", "--pkcs12", export, "--passphrase", "secret-two", "--confirm", "secret-two");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(export));
        var info = Openssl("pkcs12", "-info", "-in", export, "-passin", "pass:secret-two", "-noout");
        Assert.Contains("PBES2", info);
        Assert.Contains("AES-256-CBC", info);
        var certsOut = Openssl("pkcs12", "-in", export, "-passin", "pass:secret-two", "-nokeys");
        Assert.Contains("subject=CN = mx.intermediate.test", certsOut);
        Assert.Contains("subject=CN = Postern Test Intermediate CA", certsOut);
        var keyOut = Openssl("pkcs12", "-in", export, "-passin", "pass:secret-two", "-nocerts", "-nodes");
        Assert.Contains("BEGIN PRIVATE KEY", keyOut);
    }

    [Fact]
    public async Task Private_keys_are_sealed_in_0600_files()
    {
        var config = _world.HoldingConfig("cert-keys");
        var file = ConfigFile(config);
        Cert(file, "create", "--cn", "sealed.postern.test");
        var p12 = Path.Combine(config.DataDirectory, "k.p12");
        Cert(file, "export", "sealed.postern.test", "--pkcs12", p12, "--passphrase", "passphrase", "--confirm", "passphrase");
        using var exported = X509CertificateLoader.LoadPkcs12FromFile(p12, "passphrase", X509KeyStorageFlags.Exportable);
        var pkcs8 = exported.GetRSAPrivateKey()!.ExportPkcs8PrivateKey();

        var db = Path.Combine(config.DataDirectory, "certs", "certificates.db");
        var key = Path.Combine(config.DataDirectory, "secrets", "certificate-store.key");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(db));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(db)!));
        foreach (var f in Directory.GetFiles(config.DataDirectory, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".p12")))
        {
            var bytes = await File.ReadAllBytesAsync(f);
            Assert.True(bytes.AsSpan().IndexOf(pkcs8.AsSpan(pkcs8.Length - 64)) < 0, $"{f} holds the private key in plain");
            Assert.DoesNotContain("PRIVATE KEY", System.Text.Encoding.ASCII.GetString(bytes).Replace("demo.key.pem", ""));
        }
    }

    [Fact]
    public async Task Outbound_client_certificate_from_the_store_is_presented()
    {
        var config = _world.NewConfig("cert-outbound");
        var file = ConfigFile(config);
        var p12 = Path.Combine(config.DataDirectory, "client.p12");
        Openssl("pkcs12", "-export", "-in", Path.Combine(Certs, "postern-client.crt"), "-inkey", Path.Combine(Certs, "postern-client.key"), "-out", p12, "-passout", "pass:client-pass");
        Cert(file, "import", "client", "--pkcs12", p12, "--passphrase", "client-pass");
        Cert(file, "assign", "client", "--outbound");
        Commit(file, "outbound client certificate");
        await using var gw = RunningGateway.Start(ConfigCommands.InForce(config));
        var rcpt = TestWorld.Unique("cc") + "@clientcert.test";
        await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "client cert");
        var mail = _world.WaitForMail(rcpt).Replace("\n\t", " ").Replace("\n ", " ");
        Assert.Contains("Client CN \"postern.test\", Issuer \"Postern Test Root CA\" (verified OK)", mail);
    }

    [Fact]
    public async Task Disabling_the_system_list_fails_verification_and_a_custom_CA_restores_it()
    {
        // This machine's "system bundle" for the test holds the world's root, as a public CA would be.
        var config = _world.NewConfig("cert-calists", c =>
        {
            c.DestinationControls.Default.Tls = TlsLevel.RequiredVerify;
            c.CertificateAuthorities.SystemBundle = Path.Combine(Path.GetTempPath(), "postern-tests", "system-bundle-" + Guid.NewGuid().ToString("N") + ".pem");
            // The first message's connection is still cached when the next one comes: a commit
            // that changes the trusted CAs must keep it from carrying mail checked against the old lists.
            c.Delivery.ConnectionCacheSeconds = 120;
        });
        File.Copy(_world.CaCertificate, config.CertificateAuthorities.SystemBundle);
        var file = ConfigFile(config);
        await using var gw = RunningGateway.Start(config);

        async Task<string> Send(string tag)
        {
            var rcpt = TestWorld.Unique(tag) + "@mxname.test";
            await RawSmtp.SubmitAsync(gw.Private, "s@sender.test", rcpt, "ca lists");
            return rcpt;
        }

        _world.WaitForMail(await Send("sys"));
        Assert.Contains("System CA list: enabled, 1 certificates", Cert(file, "ca", "system", "list"));
        Cert(file, "ca", "system", "disable");
        Commit(file, "no system CAs");
        // The gateway applies the commit within a second or two: wait until it trusts nothing.
        TestWorld.WaitUntil(() => gw.Gateway.Certificates.TrustedRoots().Count == 0, TimeSpan.FromSeconds(10), "the system list to be dropped");
        var refused = await Send("nosys");
        gw.WaitForLogLine("Delayed:", $"To:<{refused}>", "unable to get local issuer certificate");
        gw.WaitForLogLine("close (idle connection not reused: configuration changed)");

        Assert.Contains("Note: the custom CA list is disabled", Cert(file, "ca", "custom", "add", _world.CaCertificate));
        Cert(file, "ca", "custom", "enable");
        Assert.Contains("Postern Test Root CA", Cert(file, "ca", "custom", "list"));
        Commit(file, "the world's root in the custom list");
        TestWorld.WaitUntil(() => gw.Gateway.Certificates.TrustedRoots().Count == 1, TimeSpan.FromSeconds(10), "the custom CA to be trusted");
        _world.WaitForMail(await Send("custom"));
        var fingerprint = Cert(file, "ca", "custom", "list").Split('\n').Single(l => l.Contains("Postern Test Root CA")).Split(' ')[0];
        Assert.Contains("0 CA certificate(s) added", Cert(file, "ca", "custom", "import", _world.CaCertificate));   // no duplicates
        var exported = Path.Combine(config.DataDirectory, "custom.pem");
        Cert(file, "ca", "custom", "export", exported);
        Assert.Contains("BEGIN CERTIFICATE", File.ReadAllText(exported));
        Assert.Contains("System CA list reloaded: 1 certificates", Cert(file, "ca", "system", "update"));
        Cert(file, "ca", "custom", "remove", fingerprint);
        Assert.Contains("The custom CA list is empty.", Cert(file, "ca", "custom", "list"));
        Commit(file, "custom list emptied");
        TestWorld.WaitUntil(() => gw.Gateway.Certificates.TrustedRoots().Count == 0, TimeSpan.FromSeconds(10), "the custom CA to be dropped");
    }

    [Fact]
    public async Task Expiring_and_expired_certificates_in_use_are_warned_about_and_flagged()
    {
        var admin = TestWorld.Unique("certadmin") + "@sender.test";
        var config = _world.NewConfig("cert-expiry", c =>
        {
            c.Certificates.ExpiryWarningDays = 10;
            c.Alerts.Recipients.Add(new AlertRecipient { Address = admin });
        });
        var file = ConfigFile(config);
        Cert(file, "create", "--cn", "soon.postern.test", "--days", "5");
        Cert(file, "assign", "soon.postern.test", "--listener", "IncomingMail");
        var p12 = Path.Combine(config.DataDirectory, "expired.p12");
        Openssl("pkcs12", "-export", "-in", Path.Combine(Certs, "expired.crt"), "-inkey", Path.Combine(Certs, "expired.key"), "-out", p12, "-passout", "pass:expired-pass");
        Cert(file, "import", "old", "--pkcs12", p12, "--passphrase", "expired-pass");
        Cert(file, "assign", "old", "--listener", "OutgoingMail");
        Assert.Contains("** EXPIRED and in use **", Cert(file, "list"));
        Commit(file, "certificates for both listeners");

        await using var gw = RunningGateway.Start(ConfigCommands.InForce(config));
        gw.WaitForLogLine("Warning: certificate soon.postern.test", "used by listener IncomingMail expires on", "(in 4 days)");
        gw.WaitForLogLine("Warning: certificate old", "used by listener OutgoingMail EXPIRED on 2021-01-01");
        var alert = _world.WaitForMail(admin, TimeSpan.FromSeconds(30), m => m.Contains("soon.postern.test")).Replace("\n ", " ");
        Assert.Contains("expires in 4 days", alert);
    }

    [Fact]
    public void The_interactive_menu_creates_a_certificate_and_prints_the_assignments()
    {
        var config = _world.HoldingConfig("cert-menu");
        var file = ConfigFile(config);
        var answers = string.Join("\n", "NEW", "menu.postern.test", "Y", "Acme", "Mail", "Amsterdam", "NH", "NL", "90", "5", "Y", "PRINT", "") + "\n";
        var (code, output) = TestWorld.Run("dotnet", [PosternProcess.Dll, "certconfig", "--config", file], TimeSpan.FromSeconds(60), stdin: answers);
        Assert.True(code == 0, output);
        Assert.Contains("Choose the operation you want to perform:", output);
        Assert.Contains("Created 'menu.postern.test' (CN=menu.postern.test", output);
        Assert.Contains("BEGIN CERTIFICATE REQUEST", output);
        Assert.Contains("listener IncomingMail: Demo", output);
        Assert.Contains("ECDSA P-256", Cert(file, "show", "menu.postern.test"));
    }
}
