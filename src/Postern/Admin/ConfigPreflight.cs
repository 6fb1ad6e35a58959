using System.Security.Cryptography.X509Certificates;
using Postern.Inbound;
using Postern.Security;

namespace Postern.Admin;

/// <summary>
/// Checks a valid configuration against the machine before it is used: every referenced
/// file exists and parses, every listener address (and the metrics endpoint's) can be bound.
/// And the settings that are stored but not yet in force, which must never pass silently.
/// </summary>
public static class ConfigPreflight
{
    /// <summary>One line per problem that would stop the gateway (empty when it can start).</summary>
    public static IReadOnlyList<string> Problems(PosternConfig config, bool checkBind)
    {
        var problems = new List<string>();
        foreach (var l in config.Listeners)
        {
            if (l.CertificateFile is not null)
                CheckKeyPair($"listener '{l.Name}'", l.CertificateFile, l.PrivateKeyFile!, problems);
            if (checkBind && l.Port != 0)
            {
                try { Listener.Bind(l).Dispose(); }
                catch (ConfigException e) { problems.Add(e.Message); }
            }
        }
        if (checkBind && config.Web.Enabled && config.Web.Port != 0)
        {
            try
            {
                var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse(config.Web.Address), config.Web.Port);
                probe.Start();
                probe.Stop();
            }
            catch (System.Net.Sockets.SocketException e) { problems.Add($"web interface: cannot listen on {config.Web.Address}:{config.Web.Port}: {e.Message}"); }
        }
        if (checkBind && config.Metrics is { Enabled: true, Port: not 0 })
        {
            try { Observability.MetricsEndpoint.Bind(config.Metrics).Dispose(); }
            catch (ConfigException e) { problems.Add(e.Message); }
        }
        foreach (var rat in config.RecipientAccessTable)
            if (rat.ValidRecipientsFile is { } file && !File.Exists(file))
                problems.Add($"RAT entry '{rat.Domain}': valid recipients file {file} does not exist");
        var dc = config.DestinationControls;
        if (dc.ClientCertificateFile is not null)
            CheckKeyPair("destinationControls client certificate", dc.ClientCertificateFile, dc.ClientPrivateKeyFile!, problems);
        var assignments = config.CertificateAssignments().ToList();
        if (assignments.Count > 0)
        {
            using var store = CertificateStore.Open(config);
            foreach (var (service, name) in assignments)
                if (!store.Exists(name)) problems.Add($"{service}: there is no stored certificate named '{name}' (postern certconfig list)");
        }
        var ca = config.CertificateAuthorities;
        if (ca.CustomListEnabled && ca.CustomListFile is { } list)
        {
            if (!File.Exists(list)) problems.Add($"certificateAuthorities: custom CA list {list} does not exist");
            else
            {
                try
                {
                    var certificates = new X509Certificate2Collection();
                    certificates.ImportFromPemFile(list);
                    if (certificates.Count == 0) problems.Add($"certificateAuthorities: custom CA list {list} holds no PEM certificate");
                }
                catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
                {
                    problems.Add($"certificateAuthorities: custom CA list {list} cannot be read: {e.Message}");
                }
            }
        }
        return problems;
    }

    private static void CheckKeyPair(string label, string certificateFile, string keyFile, List<string> problems)
    {
        var missing = new[] { certificateFile, keyFile }.Where(f => !File.Exists(f)).ToList();
        if (missing.Count > 0)
        {
            foreach (var f in missing) problems.Add($"{label}: file {f} does not exist");
            return;
        }
        try { ServerCertificate.FromPemFiles(certificateFile, keyFile); }
        catch (CertificateException e) { problems.Add($"{label}: {e.Message}"); }
    }

    /// <summary>Settings that are stored and validated but not in force yet: each gets a warning line.</summary>
    public static IReadOnlyList<string> Warnings(PosternConfig config)
    {
        var warnings = new List<string>();
        var dc = config.DestinationControls;
        foreach (var entry in dc.Entries.Prepend(dc.Default))
        {
            var label = entry == dc.Default ? "destinationControls default" : $"destination '{entry.Domain}'";
            if (entry.LimitsApplyTo == LimitScope.VirtualGateway)
                warnings.Add($"{label}: limitsApplyTo virtualGateway is stored but not in force (there are no virtual gateways yet); limits apply system-wide");
            if (config.Cluster is not null && entry.RecipientLimit is not null && entry.LimitsApplyTo != LimitScope.Hostname)
                warnings.Add($"{label}: the recipient limit is counted by each cluster member, not yet across the cluster (its connection limit does hold cluster-wide)");
            if (entry.MtaSts == MtaStsSupport.On && entry == dc.Default)
                warnings.Add($"{label}: MTA-STS is on for the Default entry: every destination's policy is looked up and fetched (SPEC §4 advises enabling it per verified destination)");
        }
        if (config.Cluster is not null)
            warnings.Add("cluster: the web interface's accounts are still each member's own (docs/CLUSTER.md); everything else is shared");
        var daneUsed = dc.Entries.Prepend(dc.Default).Any(e => e.Dane is DaneSupport.Opportunistic or DaneSupport.Mandatory);
        if (daneUsed)
        {
            var resolvers = ResolverAddresses(config.Dns);
            var trusted = Dns.DnsResolver.TrustRule(config.Dns);
            if (resolvers.Any(trusted) && !resolvers.All(trusted))
                warnings.Add($"DANE is enabled and the resolvers mix trusted and untrusted ones ({string.Join(", ", resolvers)}): answers from an untrusted one are " +
                    "indeterminate, so DANE hosts are skipped (mail deferred) whenever it answers; list only validating resolvers you trust");
            if (!resolvers.Any(trusted))
                warnings.Add($"DANE is enabled, but no resolver ({(resolvers.Count == 0 ? "none found" : string.Join(", ", resolvers))}) is trusted to validate DNSSEC " +
                    "(dns.trustedResolvers; by default only resolvers on loopback addresses): DANE never applies (opportunistic) and mandatory destinations get nothing");
        }
        warnings.AddRange(Observability.TlsRptIntake.Warnings(config));
        return warnings;
    }

    /// <summary>The resolvers Postern will ask: the configured ones, else the system's (resolv.conf).</summary>
    public static IReadOnlyList<System.Net.IPAddress> ResolverAddresses(DnsSettings dns)
    {
        if (dns.Servers.Count > 0) return dns.Servers.Select(s => System.Net.IPEndPoint.Parse(s).Address).ToList();
        try { return DnsClient.NameServer.ResolveNameServers(skipIPv6SiteLocal: true, fallbackToGooglePublicDns: false).Select(n => System.Net.IPAddress.Parse(n.Address)).ToList(); }
        catch (Exception) { return []; }
    }
}
