using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Postern.Security;

namespace Postern.Admin;

/// <summary>
/// `postern certconfig`: certificates, their assignment to services, and the trusted CA
/// lists, in the appliance's style. Every subcommand is non-interactive; `certconfig` alone
/// runs the appliance-like menu on standard input. It works on the store in the data
/// folder, so a running daemon picks the changes up within a second.
/// </summary>
public static class CertConfigCommands
{
    private static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var root = new Command("certconfig", "Manage certificates and trusted certificate authorities") { configOption };
        root.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) => Interactive.Run(certs, Console.In, Console.Out)));

        var nameArg = new Argument<string>("name") { Description = "Certificate name" };

        var list = new Command("list", "List certificates, their expiry and where they are assigned") { configOption, jsonOption };
        list.SetAction(parse => WithService(parse, configOption, loadConfig, (config, certs) =>
        {
            var list = certs.Certificates();
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(list.Select(c => ToJson(c)), JsonOut)); return 0; }
            if (list.Count == 0) Console.WriteLine("No certificates are stored.");
            foreach (var c in list) Console.WriteLine(Line(c));
            foreach (var l in DemoUsers(certs.Working)) Console.WriteLine($"WARNING: listener {l} uses the demo certificate; assign a real certificate before production use");
            if (certs.HasStagedChanges) Console.WriteLine("(assignments include staged changes not yet committed)");
            return 0;
        }));

        var show = new Command("show", "Show one certificate") { nameArg, configOption, jsonOption };
        show.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var c = certs.Find(parse.GetValue(nameArg)!);
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(ToJson(c), JsonOut)); return 0; }
            Console.WriteLine(Line(c));
            Console.WriteLine($"  subject: {c.Subject}\n  issuer: {c.Issuer}\n  names: {string.Join(", ", c.DnsNames)}\n  valid: {c.NotBefore:u} - {c.NotAfter:u}\n  key: {c.KeyType}\n  intermediates: {c.Intermediates}\n  scope: {c.Scope}\n  SHA-1 thumbprint: {c.Thumbprint}");
            return 0;
        }));

        var cn = new Option<string>("--cn") { Description = "Common name (the host's FQDN)", Required = true };
        var nameOpt = new Option<string?>("--name") { Description = "Certificate name (default: the common name)" };
        var org = new Option<string?>("--org") { Description = "Organization" };
        var unit = new Option<string?>("--unit") { Description = "Organizational unit" };
        var city = new Option<string?>("--city") { Description = "Locality or city" };
        var state = new Option<string?>("--state") { Description = "State or province" };
        var country = new Option<string?>("--country") { Description = "Two-letter ISO country code" };
        var days = new Option<int>("--days") { Description = "Days until expiry", DefaultValueFactory = _ => 365 };
        var key = new Option<string>("--key") { Description = "rsa2048 (default), rsa3072, rsa4096, ecdsa-p256, ecdsa-p384, rsa1024 (needs --insecure)", DefaultValueFactory = _ => "rsa2048" };
        var insecure = new Option<bool>("--insecure") { Description = "Allow a 1024-bit RSA key" };
        var san = new Option<string[]>("--san") { Description = "Additional DNS names", AllowMultipleArgumentsPerToken = true };
        var validate = new Option<bool>("--validate-fqdn") { Description = "Require the common name and SAN names to be FQDNs" };
        var scope = new Option<string?>("--scope") { Description = "machine or cluster (default: cluster for wildcard/multi-name, else machine)" };
        var create = new Command("create", "Create a self-signed certificate") { cn, nameOpt, org, unit, city, state, country, days, key, insecure, san, validate, scope, configOption };
        create.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var kind = ParseKey(parse.GetValue(key)!);
            if (kind == KeyKind.Rsa1024 && parse.GetValue(insecure))
                Console.Error.WriteLine("WARNING: a 1024-bit RSA key is insecure; modern TLS peers will refuse it.");
            var info = certs.Store.CreateSelfSigned(new SelfSignedRequest(parse.GetValue(cn)!, parse.GetValue(org), parse.GetValue(unit), parse.GetValue(city),
                parse.GetValue(state), parse.GetValue(country), parse.GetValue(days), kind, parse.GetValue(insecure), parse.GetValue(validate),
                parse.GetValue(san), parse.GetValue(nameOpt), ParseScope(parse.GetValue(scope))));
            Console.WriteLine($"Created self-signed certificate '{info.Name}' ({info.Subject}, {info.KeyType}, expires {info.NotAfter:yyyy-MM-dd}).");
            return 0;
        }));

        var outFile = new Option<FileInfo?>("--out") { Description = "Write to this file instead of standard output" };
        var csr = new Command("csr", "Print a PEM certificate signing request for a stored certificate") { nameArg, outFile, configOption };
        csr.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var pem = certs.Store.CreateSigningRequest(parse.GetValue(nameArg)!);
            if (parse.GetValue(outFile) is { } f) { File.WriteAllText(f.FullName, pem + "\n"); Console.WriteLine($"CSR written to {f.FullName}"); }
            else Console.WriteLine(pem);
            return 0;
        }));

        var certFile = new Option<FileInfo>("--cert") { Description = "PEM file with the CA-signed certificate", Required = true };
        var intermediatesFile = new Option<FileInfo?>("--intermediates") { Description = "PEM file with intermediate certificates" };
        var upload = new Command("upload", "Replace a certificate with its CA-signed version (the public key must match)") { nameArg, certFile, intermediatesFile, configOption };
        upload.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var info = certs.Store.UploadSigned(parse.GetValue(nameArg)!, ReadText(parse.GetValue(certFile)!), parse.GetValue(intermediatesFile) is { } i ? ReadText(i) : null);
            Console.WriteLine($"'{info.Name}' now holds the certificate issued by {info.Issuer} (expires {info.NotAfter:yyyy-MM-dd}, {info.Intermediates} intermediate(s)).");
            return 0;
        }));

        var chainFile = new Argument<FileInfo>("file") { Description = "PEM file with the intermediate certificates" };
        var intermediates = new Command("intermediates", "Set the intermediate certificates sent with a certificate") { nameArg, chainFile, configOption };
        intermediates.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var info = certs.Store.SetIntermediates(parse.GetValue(nameArg)!, ReadText(parse.GetValue(chainFile)!));
            Console.WriteLine($"'{info.Name}' now has {info.Intermediates} intermediate certificate(s).");
            return 0;
        }));

        var p12 = new Option<FileInfo>("--pkcs12") { Description = "PKCS#12 file", Required = true };
        var pass = new Option<string?>("--passphrase") { Description = "Passphrase" };
        var passFile = new Option<FileInfo?>("--passphrase-file") { Description = "File whose first line is the passphrase" };
        var confirm = new Option<string?>("--confirm") { Description = "The passphrase again (export)" };
        var import = new Command("import", "Import a certificate and its key from a PKCS#12 file") { nameArg, p12, pass, passFile, scope, configOption };
        import.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var passphrase = Passphrase(parse.GetValue(pass), parse.GetValue(passFile), confirmWith: null, confirmRequired: false);
            var info = certs.Store.ImportPkcs12(parse.GetValue(nameArg)!, File.ReadAllBytes(parse.GetValue(p12)!.FullName), passphrase, ParseScope(parse.GetValue(scope)));
            Console.WriteLine($"Imported '{info.Name}' ({info.Subject}, {info.KeyType}, {info.Intermediates} intermediate(s)).");
            return 0;
        }));

        var export = new Command("export", "Export a certificate, its key and chain to a PKCS#12 file (PBES2, AES-256)") { nameArg, p12, pass, passFile, confirm, configOption };
        export.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var passphrase = Passphrase(parse.GetValue(pass), parse.GetValue(passFile), parse.GetValue(confirm), confirmRequired: parse.GetValue(passFile) is null);
            var bytes = certs.Store.ExportPkcs12(parse.GetValue(nameArg)!, passphrase);
            var path = parse.GetValue(p12)!.FullName;
            ServerCertificate.WritePrivate(path, bytes);
            Console.WriteLine($"Exported '{parse.GetValue(nameArg)}' to {path} (mode 0600).");
            return 0;
        }));

        var listenerOpt = new Option<string?>("--listener") { Description = "Listener name (inbound STARTTLS)" };
        var outboundOpt = new Option<bool>("--outbound") { Description = "The global outbound client certificate" };
        var httpsOpt = new Option<bool>("--https") { Description = "The HTTPS administration interface" };
        var assign = new Command("assign", "Assign a certificate to a service") { nameArg, listenerOpt, outboundOpt, httpsOpt, configOption };
        assign.SetAction(parse => WithService(parse, configOption, loadConfig, (config, certs) =>
        {
            var target = CertificateTarget.From(parse.GetValue(listenerOpt), parse.GetValue(outboundOpt), parse.GetValue(httpsOpt));
            certs.Assign(target, parse.GetValue(nameArg)!);
            Console.WriteLine($"'{parse.GetValue(nameArg)}' is assigned to {target} (staged). {Staged}");
            return 0;
        }));
        var unassign = new Command("unassign", "Remove a service's certificate assignment") { listenerOpt, outboundOpt, httpsOpt, configOption };
        unassign.SetAction(parse => WithService(parse, configOption, loadConfig, (config, certs) =>
        {
            var target = CertificateTarget.From(parse.GetValue(listenerOpt), parse.GetValue(outboundOpt), parse.GetValue(httpsOpt));
            certs.Unassign(target);
            Console.WriteLine($"{target} has no assigned certificate (staged; listeners then use their configured PEM files or the demo certificate). {Staged}");
            return 0;
        }));

        var delete = new Command("delete", "Delete a certificate that is not assigned") { nameArg, configOption };
        delete.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            certs.Delete(parse.GetValue(nameArg)!);
            Console.WriteLine($"Deleted '{parse.GetValue(nameArg)}'.");
            return 0;
        }));

        foreach (var c in new[] { list, show, create, csr, upload, intermediates, import, export, assign, unassign, delete }) root.Subcommands.Add(c);
        root.Subcommands.Add(BuildCa(configOption, jsonOption, loadConfig));
        return root;
    }

    private static Command BuildCa(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var ca = new Command("ca", "Trusted certificate authorities: the system list and the custom list");
        var fileArg = new Argument<FileInfo>("file") { Description = "PEM file" };

        var system = new Command("system", "The operating system's CA list (cannot be deleted)");
        var sysList = new Command("list", "List the system CAs") { configOption, jsonOption };
        sysList.SetAction(parse => WithService(parse, configOption, loadConfig, (config, certs) =>
        {
            var bundle = TrustedAuthorities.ReadBundle(certs.Working.CertificateAuthorities.SystemBundle);
            if (parse.GetValue(jsonOption))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { enabled = certs.Working.CertificateAuthorities.SystemListEnabled, bundle = certs.Working.CertificateAuthorities.SystemBundle, certificates = bundle.Select(c => new { subject = c.Subject, notAfter = c.NotAfter, fingerprint = CertificateStore.Fingerprint(c) }) }, JsonOut));
                return 0;
            }
            Console.WriteLine($"System CA list: {(certs.Working.CertificateAuthorities.SystemListEnabled ? "enabled" : "disabled")}, {bundle.Count} certificates from {certs.Working.CertificateAuthorities.SystemBundle}");
            foreach (var c in bundle) Console.WriteLine($"  {c.Subject}  (expires {c.NotAfter:yyyy-MM-dd})");
            return 0;
        }));
        var sysEnable = new Command("enable", "Use the system list for verification") { configOption };
        sysEnable.SetAction(parse => WithService(parse, configOption, loadConfig, (config, certs) =>
        {
            certs.SetSystemList(true);
            Console.WriteLine($"The system CA list is enabled (staged). {Staged}");
            return 0;
        }));
        var sysDisable = new Command("disable", "Stop using the system list for verification") { configOption };
        sysDisable.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            certs.SetSystemList(false);
            Console.WriteLine($"The system CA list is disabled (staged); only the custom list will be trusted. {Staged}");
            return 0;
        }));
        var sysUpdate = new Command("update", "Reload the operating system's bundle and report its version") { configOption };
        sysUpdate.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var path = certs.Working.CertificateAuthorities.SystemBundle;
            var bundle = TrustedAuthorities.ReadBundle(path);
            certs.Store.Touch();   // running gateways reload the bundle within a second
            var date = File.Exists(path) ? File.GetLastWriteTimeUtc(path).ToString("yyyy-MM-dd HH:mm 'UTC'") : "missing";
            Console.WriteLine($"System CA list reloaded: {bundle.Count} certificates, {path} dated {date}, package ca-certificates {PackageVersion("ca-certificates")}.");
            return 0;
        }));
        var sysExport = new Command("export", "Export the system list to a PEM file") { fileArg, configOption };
        sysExport.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var bundle = TrustedAuthorities.ReadBundle(certs.Working.CertificateAuthorities.SystemBundle);
            File.WriteAllText(parse.GetValue(fileArg)!.FullName, string.Concat(bundle.Select(c => c.ExportCertificatePem() + "\n")));
            Console.WriteLine($"Exported {bundle.Count} system CAs to {parse.GetValue(fileArg)!.FullName}.");
            return 0;
        }));
        foreach (var c in new[] { sysList, sysEnable, sysDisable, sysUpdate, sysExport }) system.Subcommands.Add(c);

        var custom = new Command("custom", "The custom CA list");
        var cusList = new Command("list", "List the custom CAs") { configOption, jsonOption };
        cusList.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var cas = certs.CustomCas();
            var settings = certs.Working.CertificateAuthorities;
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(new { enabled = settings.CustomListEnabled, file = settings.CustomListFile, certificates = cas.Select(c => new { c.Fingerprint, c.Subject, c.NotAfter }) }, JsonOut)); return 0; }
            Console.WriteLine($"Custom CA list: {(settings.CustomListEnabled ? "enabled" : "disabled")}{(settings.CustomListFile is { } f ? $", plus the certificates of {f}" : "")}");
            if (cas.Count == 0) Console.WriteLine("The custom CA list is empty.");
            foreach (var c in cas) Console.WriteLine($"{c.Fingerprint}  {c.Subject}  (expires {c.NotAfter:yyyy-MM-dd})");
            return 0;
        }));
        var cusImport = new Command("import", "Add every CA certificate of a PEM file to the custom list") { fileArg, configOption };
        cusImport.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var n = certs.AddCustomCas(ReadText(parse.GetValue(fileArg)!));
            Console.WriteLine($"{n} CA certificate(s) added to the custom list{(n > 0 ? $" (staged). {Staged}" : ".")}{CustomListNote(certs)}");
            return 0;
        }));
        var fpArg = new Argument<string>("fingerprint") { Description = "SHA-256 fingerprint (from `ca custom list`)" };
        var cusRemove = new Command("remove", "Remove one CA from the custom list") { fpArg, configOption };
        cusRemove.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            certs.RemoveCustomCa(parse.GetValue(fpArg)!);
            Console.WriteLine($"Removed (staged). {Staged}");
            return 0;
        }));
        var cusExport = new Command("export", "Export the custom list to a PEM file") { fileArg, configOption };
        cusExport.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var cas = certs.CustomCas();
            File.WriteAllText(parse.GetValue(fileArg)!.FullName, string.Concat(cas.Select(c => c.Certificate.ExportCertificatePem() + "\n")));
            Console.WriteLine($"Exported {cas.Count} custom CAs to {parse.GetValue(fileArg)!.FullName}.");
            return 0;
        }));
        var cusAdd = new Command("add", "Add a single CA certificate (PEM file) to the custom list") { fileArg, configOption };
        cusAdd.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            var text = ReadText(parse.GetValue(fileArg)!);
            if (CertificateStore.ParseMany(text, "CA certificate").Count != 1) throw new CertificateException("add takes a file with exactly one certificate; use import for a list");
            Console.WriteLine((certs.AddCustomCas(text) == 1 ? $"Added to the custom list (staged). {Staged}" : "That CA is in the custom list already.") + CustomListNote(certs));
            return 0;
        }));
        var cusEnable = new Command("enable", "Trust the custom list for verification") { configOption };
        cusEnable.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            certs.SetCustomList(true);
            Console.WriteLine($"The custom CA list is enabled (staged). {Staged}");
            return 0;
        }));
        var cusDisable = new Command("disable", "Stop trusting the custom list") { configOption };
        cusDisable.SetAction(parse => WithService(parse, configOption, loadConfig, (_, certs) =>
        {
            certs.SetCustomList(false);
            Console.WriteLine($"The custom CA list is disabled (staged). {Staged}");
            return 0;
        }));
        foreach (var c in new[] { cusList, cusImport, cusAdd, cusRemove, cusExport, cusEnable, cusDisable }) custom.Subcommands.Add(c);

        ca.Subcommands.Add(system);
        ca.Subcommands.Add(custom);
        return ca;
    }

    private const string Staged = "postern commit applies it, postern clearchanges discards it.";

    /// <summary>Listeners that fall back to the demo certificate (no assignment, no PEM files).</summary>
    private static IEnumerable<string> DemoUsers(PosternConfig config) =>
        config.Listeners.Where(l => l.Certificate is null && l.CertificateFile is null).Select(l => l.Name);

    private static string CustomListNote(CertificateService certs) => certs.Working.CertificateAuthorities.CustomListEnabled ? ""
        : "\nNote: the custom CA list is disabled; postern certconfig ca custom enable (and commit) makes Postern trust it.";

    internal static string PackageVersion(string package)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("dpkg-query", ["-W", "-f=${Version}", package]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var v = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 && v.Length > 0 ? v : "unknown";
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }
    }

    internal static string Line(CertificateInfo c)
    {
        var now = DateTimeOffset.UtcNow;
        var flag = c.IsExpired(now) ? (c.AssignedTo.Count > 0 ? "  ** EXPIRED and in use **" : "  (expired)") : "";
        var assigned = c.AssignedTo.Count > 0 ? " assigned to " + string.Join(", ", c.AssignedTo) : "";
        return $"{c.Name}: {c.Subject} issued by {c.Issuer}{(c.SelfSigned ? " (self-signed)" : "")}, expires {c.NotAfter:yyyy-MM-dd}{assigned}{flag}";
    }

    private static object ToJson(CertificateInfo c) => new
    {
        c.Name, c.Subject, c.Issuer, c.DnsNames, notBefore = c.NotBefore.UtcDateTime, notAfter = c.NotAfter.UtcDateTime, c.Thumbprint, c.KeyType,
        c.SelfSigned, c.Intermediates, scope = c.Scope.ToString().ToLowerInvariant(), c.AssignedTo, expired = c.IsExpired(DateTimeOffset.UtcNow),
    };

    internal static KeyKind ParseKey(string text) => text.ToLowerInvariant().Replace("_", "-") switch
    {
        "rsa1024" or "1024" => KeyKind.Rsa1024,
        "rsa2048" or "2048" => KeyKind.Rsa2048,
        "rsa3072" or "3072" => KeyKind.Rsa3072,
        "rsa4096" or "4096" => KeyKind.Rsa4096,
        "ecdsa-p256" or "p256" or "p-256" => KeyKind.EcdsaP256,
        "ecdsa-p384" or "p384" or "p-384" => KeyKind.EcdsaP384,
        _ => throw new CertificateException($"unknown key type '{text}' (rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384, rsa1024)"),
    };

    private static CertificateScope? ParseScope(string? text) => text?.ToLowerInvariant() switch
    {
        null => null,
        "machine" => CertificateScope.Machine,
        "cluster" => CertificateScope.Cluster,
        _ => throw new CertificateException($"scope must be machine or cluster, not '{text}'"),
    };

    private static string Passphrase(string? given, FileInfo? file, string? confirmWith, bool confirmRequired)
    {
        if (given is not null && file is not null) throw new CertificateException("give --passphrase or --passphrase-file, not both");
        var passphrase = file is not null ? (File.ReadLines(file.FullName).FirstOrDefault() ?? "") : given
            ?? throw new CertificateException("a passphrase is required (--passphrase or --passphrase-file)");
        if (confirmRequired && confirmWith != passphrase) throw new CertificateException("the passphrase and its confirmation (--confirm) differ");
        return passphrase;
    }

    private static string ReadText(FileInfo f)
    {
        try { return File.ReadAllText(f.FullName); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CertificateException($"cannot read {f.FullName}: {e.Message}"); }
    }

    private static int WithService(ParseResult parse, Option<FileInfo?> configOption, Func<FileInfo?, PosternConfig?> loadConfig, Func<PosternConfig, CertificateService, int> action) =>
        ConfigCommands.WithService(parse.GetValue(configOption), loadConfig, (service, config) =>
        {
            try
            {
                using var store = CertificateStore.Open(config);
                var certs = new CertificateService(service, config, store);
                if (certs.MigrateLegacySettings() is { } moved) Console.WriteLine(moved);
                return action(config, certs);
            }
            catch (CertificateException e)
            {
                Console.Error.WriteLine($"postern certconfig: {e.Message}");
                return 1;
            }
        });

    /// <summary>The appliance-style menu: prompts on standard output, answers from standard input.</summary>
    private static class Interactive
    {
        public static int Run(CertificateService service, TextReader input, TextWriter output)
        {
            var store = service.Store;
            while (true)
            {
                var certs = service.Certificates();
                output.WriteLine(certs.Count == 0 ? "No certificates are stored." : "Currently installed certificates:");
                for (var i = 0; i < certs.Count; i++) output.WriteLine($"{i + 1}. {Line(certs[i])}");
                output.WriteLine();
                output.WriteLine("Choose the operation you want to perform:");
                output.WriteLine("- IMPORT - Import a certificate from a local PKCS#12 file");
                output.WriteLine("- NEW - Create a self-signed certificate and CSR");
                output.WriteLine("- EXPORT - Export a certificate");
                output.WriteLine("- DELETE - Remove a certificate");
                output.WriteLine("- PRINT - View certificates assigned to services");
                output.Write("[]> ");
                var choice = input.ReadLine()?.Trim().ToUpperInvariant();
                if (string.IsNullOrEmpty(choice)) return 0;
                try
                {
                    switch (choice)
                    {
                        case "NEW": New(store, input, output); break;
                        case "IMPORT":
                        {
                            var file = Ask(input, output, "Enter the name of the PKCS#12 file", null);
                            var pass = Ask(input, output, "Enter the passphrase", null);
                            var name = Ask(input, output, "Enter a name for this certificate", Path.GetFileNameWithoutExtension(file));
                            var info = store.ImportPkcs12(name, File.ReadAllBytes(file), pass);
                            output.WriteLine($"Imported '{info.Name}' ({info.Subject}).");
                            break;
                        }
                        case "EXPORT":
                        {
                            var name = Ask(input, output, "Enter the name of the certificate to export", null);
                            var file = Ask(input, output, "Enter the file name to export to", name + ".p12");
                            var pass = Ask(input, output, "Enter a passphrase", null);
                            var again = Ask(input, output, "Please enter the passphrase again", null);
                            if (pass != again) throw new CertificateException("the passphrases differ; nothing was exported");
                            ServerCertificate.WritePrivate(file, store.ExportPkcs12(name, pass));
                            output.WriteLine($"Exported '{name}' to {file}.");
                            break;
                        }
                        case "DELETE":
                            service.Delete(Ask(input, output, "Enter the name of the certificate to delete", null));
                            output.WriteLine("Deleted.");
                            break;
                        case "PRINT":
                            var config = service.Working;
                            foreach (var l in config.Listeners)
                                output.WriteLine($"listener {l.Name}: {l.Certificate ?? l.CertificateFile ?? "Demo"}");
                            output.WriteLine($"outbound client certificate: {config.DestinationControls.ClientCertificate ?? config.DestinationControls.ClientCertificateFile ?? "none"}");
                            output.WriteLine($"HTTPS administration: {config.Web.Certificate ?? "Demo"}");
                            if (service.HasStagedChanges) output.WriteLine("(includes staged changes not yet committed)");
                            break;
                        default: output.WriteLine($"Unknown operation '{choice}'."); break;
                    }
                }
                catch (Exception e) when (e is CertificateException or ConfigException or IOException)
                {
                    output.WriteLine($"Error: {e.Message}");
                }
                output.WriteLine();
            }
        }

        private static void New(CertificateStore store, TextReader input, TextWriter output)
        {
            var cn = Ask(input, output, "Enter Common Name", null);
            var useCn = Ask(input, output, "Would you like to use the common name as the certificate name?", "Y");
            var name = useCn.StartsWith('Y') || useCn.StartsWith('y') ? cn : Ask(input, output, "Please enter a name for this certificate", null);
            var org = Ask(input, output, "Enter Organization", "");
            var unit = Ask(input, output, "Enter Organizational Unit", "");
            var city = Ask(input, output, "Enter Locality or City", "");
            var state = Ask(input, output, "Enter State or Province", "");
            var country = Ask(input, output, "Enter Country (2 letter code)", "");
            var days = int.TryParse(Ask(input, output, "Duration before expiration (in days)", "3650"), out var d) ? d : 0;
            output.WriteLine("1. 1024 (insecure)\n2. 2048\n3. 3072\n4. 4096\n5. ECDSA P-256\n6. ECDSA P-384");
            var size = Ask(input, output, "Enter size of private key", "2");
            var key = size switch { "1" => KeyKind.Rsa1024, "3" => KeyKind.Rsa3072, "4" => KeyKind.Rsa4096, "5" => KeyKind.EcdsaP256, "6" => KeyKind.EcdsaP384, _ => KeyKind.Rsa2048 };
            var insecure = key == KeyKind.Rsa1024 && Ask(input, output, "A 1024-bit key is insecure. Create it anyway?", "N").StartsWith('Y');
            var info = store.CreateSelfSigned(new SelfSignedRequest(cn, Blank(org), Blank(unit), Blank(city), Blank(state), Blank(country), days, key, insecure, Name: name));
            output.WriteLine($"Created '{info.Name}' ({info.Subject}, expires {info.NotAfter:yyyy-MM-dd}).");
            if (Ask(input, output, "Do you want to view the CSR?", "Y").StartsWith('Y')) output.WriteLine(store.CreateSigningRequest(info.Name));
        }

        private static string? Blank(string s) => s.Length == 0 ? null : s;

        private static string Ask(TextReader input, TextWriter output, string prompt, string? fallback)
        {
            output.Write(fallback is null or "" ? $"{prompt}:\n[]> " : $"{prompt}\n[{fallback}]> ");
            var line = input.ReadLine()?.Trim();
            if (string.IsNullOrEmpty(line))
            {
                if (fallback is null) throw new CertificateException($"an answer is required ({prompt})");
                return fallback;
            }
            return line;
        }
    }
}
