using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Dns;
using Postern.Inbound;

namespace Postern.Admin;

/// <summary>
/// The one configuration model: the daemon, the CLI and (later) the web UI all read and
/// write this shape. Version lets later releases migrate older files.
/// </summary>
public sealed class PosternConfig
{
    public int Version { get; set; } = 1;
    /// <summary>Name used in the SMTP greeting, EHLO, Received headers and DSNs.</summary>
    public string Hostname { get; set; } = "postern.localdomain";
    public string DataDirectory { get; set; } = "postern-data";
    public LogLevel LogLevel { get; set; } = LogLevel.Info;
    public DnsSettings Dns { get; set; } = new();
    public List<ListenerSettings> Listeners { get; set; } = new();
    public Dictionary<string, MailFlowPolicy> MailFlowPolicies { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Recipient Access Table: the domains public listeners accept mail for.</summary>
    public List<RatEntry> RecipientAccessTable { get; set; } = new();
    public DeliverySettings Delivery { get; set; } = new();
    public DestinationControls DestinationControls { get; set; } = new();
    /// <summary>Named bounce profiles; "Default" always exists.</summary>
    public Dictionary<string, BounceProfile> BounceProfiles { get; set; } = new(StringComparer.OrdinalIgnoreCase) { ["Default"] = new() };
    public List<SmtpRoute> SmtpRoutes { get; set; } = new();
    public CertificateAuthoritySettings CertificateAuthorities { get; set; } = new();
    public AlertSettings Alerts { get; set; } = new();
    public CertificateSettings Certificates { get; set; } = new();
    public WebSettings Web { get; set; } = new();
    public MetricsSettings Metrics { get; set; } = new();
    public TrackingSettings Tracking { get; set; } = new();
    /// <summary>RFC 5321 §6.3 loop detection: a message with more Received: headers than this is refused (554 5.4.6).</summary>
    public int MaxReceivedHeaders { get; set; } = 50;
    public BounceVerificationSettings BounceVerification { get; set; } = new();
    public MtaStsSettings MtaSts { get; set; } = new();
    /// <summary>SMTP TLS Reporting (RFC 8460): daily reports sent to domains that ask for them, and reports received.</summary>
    public TlsReportingSettings TlsReporting { get; set; } = new();
    /// <summary>Cluster membership on a shared PostgreSQL store; null = this machine alone (SQLite in the data directory).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ClusterSettings? Cluster { get; set; }

    /// <summary>The "Default" bounce profile.</summary>
    [JsonIgnore] public BounceProfile DefaultBounceProfile => BounceProfiles["Default"];

    public BounceProfile BounceProfileFor(string name) => BounceProfiles.TryGetValue(name, out var p) ? p : DefaultBounceProfile;
    public MailLogSettings MailLog { get; set; } = new();

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static PosternConfig Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot read configuration file {path}: {e.Message}");
        }
        return Parse(text, $"configuration file {path}");
    }

    /// <summary>Reads a configuration document; source names it in errors ("configuration file X", "version 3").</summary>
    public static PosternConfig Parse(string text, string source, bool validate = true)
    {
        PosternConfig? config;
        try { config = JsonSerializer.Deserialize<PosternConfig>(text, JsonOptions); }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" (line {line + 1})" : "";
            throw new ConfigException($"{source} is not valid{where}: {e.Message}");
        }
        if (config is null) throw new ConfigException($"{source} is empty");
        // The deserializer makes plain dictionaries: names of policies and profiles match without regard to case, as they do in code.
        config.MailFlowPolicies = CaseInsensitive(config.MailFlowPolicies, "mailFlowPolicies", source);
        config.BounceProfiles = CaseInsensitive(config.BounceProfiles, "bounceProfiles", source);
        if (validate) config.Validate();
        return config;
    }

    private static Dictionary<string, T> CaseInsensitive<T>(Dictionary<string, T> parsed, string what, string source)
    {
        var result = new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in parsed)
            if (!result.TryAdd(name, value)) throw new ConfigException($"{source}: {what} names '{name}' twice (names are not case-sensitive)");
        return result;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>The embedded default: loopback listeners on unprivileged ports, SQLite under ./postern-data.</summary>
    public static PosternConfig CreateDefault()
    {
        var config = new PosternConfig
        {
            Hostname = "postern.localdomain",
            MailFlowPolicies =
            {
                ["ACCEPTED"] = new MailFlowPolicy { Action = PolicyAction.Accept, Tls = InboundTls.Preferred },
                ["RELAYED"] = new MailFlowPolicy { Action = PolicyAction.Relay, Tls = InboundTls.Preferred },
                ["BLOCKED"] = new MailFlowPolicy { Action = PolicyAction.Reject },
            },
            RecipientAccessTable = { new RatEntry { Domain = "localdomain", Action = RatAction.Accept } },
            Listeners =
            {
                new ListenerSettings
                {
                    Name = "IncomingMail", Type = ListenerType.Public, Address = "127.0.0.1", Port = 2525,
                    DefaultPolicy = "ACCEPTED",
                },
                new ListenerSettings
                {
                    Name = "OutgoingMail", Type = ListenerType.Private, Address = "127.0.0.1", Port = 2587,
                    SenderGroups = { new SenderGroup { Name = "RELAYLIST", Senders = { "127.0.0.0/8", "::1" }, Policy = "RELAYED" } },
                    DefaultPolicy = "BLOCKED",
                },
            },
        };
        config.Validate();
        return config;
    }

    /// <summary>Rejects a configuration that is incomplete, out of range or would open a relay.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (Version != 1) errors.Add($"version {Version} is not supported (expected 1)");
        if (string.IsNullOrWhiteSpace(Hostname) || !DomainNames.IsValidHostname(Hostname))
            errors.Add($"hostname '{Hostname}' is not a valid host name");
        if (string.IsNullOrWhiteSpace(DataDirectory)) errors.Add("dataDirectory must be set");
        foreach (var server in Dns.Servers)
            if (!IPEndPoint.TryParse(server, out _)) errors.Add($"dns server '{server}' is not an address[:port]");
        if (Dns.TimeoutSeconds is < 1 or > 120) errors.Add("dns.timeoutSeconds must be 1-120");
        foreach (var t in Dns.TrustedResolvers ?? [])
            if (!IPAddress.TryParse(t, out _)) errors.Add($"dns.trustedResolvers: '{t}' is not an IP address");
        if (Dns.DnssecProbe.Length > 0 && !Dns.DnssecProbe.Contains(':')) errors.Add($"dns.dnssecProbe '{Dns.DnssecProbe}' is not type:name (e.g. ns:.)");
        if (Listeners.Count == 0) errors.Add("at least one listener is required");
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, policy) in MailFlowPolicies) policy.Validate(name, errors);
        foreach (var listener in Listeners)
        {
            if (!names.Add(listener.Name)) errors.Add($"listener name '{listener.Name}' is used twice");
            // Mail Postern makes itself is queued under these names; report mail is delivered under relaxed TLS rules by it.
            if (ReservedListenerNames.Contains(listener.Name))
                errors.Add($"listener name '{listener.Name}' is reserved (Postern queues its own alerts and TLS reports under it)");
            listener.Validate(this, errors);
        }
        foreach (var rat in RecipientAccessTable)
            if (!DomainNames.IsValidDomainPattern(rat.Domain)) errors.Add($"RAT domain '{rat.Domain}' is not a domain or .domain pattern");
        Delivery.Validate(errors);
        if (!BounceProfiles.ContainsKey("Default")) errors.Add("bounceProfiles must define \"Default\"");
        foreach (var (name, profile) in BounceProfiles) profile.Validate(name, errors);
        DestinationControls.Validate(this, errors);
        foreach (var route in SmtpRoutes)
        {
            if (!DomainNames.IsValidDomainPattern(route.Domain)) errors.Add($"SMTP route '{route.Domain}': not a domain or .domain pattern");
            if (route.Hosts.Count == 0) errors.Add($"SMTP route '{route.Domain}': no hosts");
            foreach (var h in route.Hosts)
            {
                if (!IPAddress.TryParse(h.Host, out _) && !DomainNames.IsValidHostname(h.Host)) errors.Add($"SMTP route '{route.Domain}': '{h.Host}' is not a host name or IP address");
                if (h.Port is < 1 or > 65535) errors.Add($"SMTP route '{route.Domain}': port {h.Port} out of range 1-65535");
            }
        }
        CertificateAuthorities.Validate(errors);
        Web.Validate(errors);
        Metrics.Validate(errors);
        Tracking.Validate(errors);
        foreach (var (service, name) in CertificateAssignments())
            if (string.IsNullOrWhiteSpace(name) || name.Length > 200) errors.Add($"{service}: certificate name '{name}' is not a certificate name");
        Alerts.Validate(errors);
        if (Certificates.ExpiryWarningDays is < 0 or > 365) errors.Add("certificates.expiryWarningDays must be 0-365");
        if (Certificates.CheckIntervalMinutes is < 1 or > 1440) errors.Add("certificates.checkIntervalMinutes must be 1-1440");
        if (MailLog.MaxFileBytes < 64 * 1024) errors.Add("mailLog.maxFileBytes must be at least 65536");
        if (MaxReceivedHeaders is < 1 or > 1000) errors.Add("maxReceivedHeaders must be 1-1000");
        if (BounceVerification.MaxAgeDays is < 1 or > 365) errors.Add("bounceVerification.maxAgeDays must be 1-365");
        if (MtaSts.FetchTimeoutSeconds is < 1 or > 300) errors.Add("mtaSts.fetchTimeoutSeconds must be 1-300");
        if (MtaSts.Proxy is not null && !Uri.TryCreate(MtaSts.Proxy, UriKind.Absolute, out _)) errors.Add($"mtaSts.proxy '{MtaSts.Proxy}' is not a URL");
        TlsReporting.Validate(errors);
        Cluster?.Validate(errors);
        if (errors.Count > 0) throw new ConfigException("invalid configuration:\n  - " + string.Join("\n  - ", errors));
    }

    public MailFlowPolicy Policy(string name) => MailFlowPolicies[name];

    /// <summary>The queue's origin names of mail Postern makes itself (alerts, TLS reports): no listener may carry them.</summary>
    public static readonly IReadOnlySet<string> ReservedListenerNames = new HashSet<string>(["alerts", "tlsrpt"], StringComparer.OrdinalIgnoreCase);

    /// <summary>Every stored-certificate assignment of this configuration: (service, certificate name).</summary>
    public IEnumerable<(string Service, string Certificate)> CertificateAssignments()
    {
        foreach (var l in Listeners)
            if (l.Certificate is { } c) yield return ($"listener {l.Name}", c);
        if (DestinationControls.ClientCertificate is { } o) yield return ("outbound client certificate", o);
        if (Web.Certificate is { } w) yield return ("HTTPS interface", w);
    }
}

public sealed class ConfigException(string message) : Exception(message);

public enum LogLevel { Info, Debug }

public sealed class DnsSettings
{
    /// <summary>Resolver addresses as "ip" or "ip:port"; empty means the system's resolvers.</summary>
    public List<string> Servers { get; set; } = new();
    public int TimeoutSeconds { get; set; } = 5;
    /// <summary>
    /// Resolvers whose AD bit (DNSSEC validated) is believed; null = those on loopback
    /// addresses only (a validating resolver on this machine, as Postfix and maddy assume).
    /// </summary>
    public List<string>? TrustedResolvers { get; set; }
    /// <summary>A signed name looked up at start and every hour to see that the resolver validates ("type:name", Postfix's dnssec_probe); empty = none.</summary>
    public string DnssecProbe { get; set; } = "ns:.";
}

public enum ListenerType { Public, Private }

public sealed class ListenerSettings
{
    public string Name { get; set; } = "";
    public ListenerType Type { get; set; } = ListenerType.Public;
    public string Address { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 25;
    public int MaxConcurrency { get; set; } = 50;
    /// <summary>Command timeout while at least four fifths of maxConcurrency are in use (Postfix: smtpd_timeout under stress).</summary>
    public int StressCommandTimeoutSeconds { get; set; } = 10;
    /// <summary>The stored certificate (certconfig) this listener presents for STARTTLS; it wins over the PEM files.</summary>
    public string? Certificate { get; set; }
    /// <summary>PEM files for this listener's STARTTLS certificate; empty (and no stored certificate) = the demo certificate.</summary>
    public string? CertificateFile { get; set; }
    public string? PrivateKeyFile { get; set; }
    /// <summary>Host Access Table: ordered sender groups, first match wins.</summary>
    public List<SenderGroup> SenderGroups { get; set; } = new();
    public string DefaultPolicy { get; set; } = "ACCEPTED";

    internal void Validate(PosternConfig config, List<string> errors)
    {
        var label = $"listener '{Name}'";
        if (string.IsNullOrWhiteSpace(Name)) errors.Add("a listener has no name");
        if (!IPAddress.TryParse(Address, out _)) errors.Add($"{label}: address '{Address}' is not an IP address");
        if (Port is < 0 or > 65535) errors.Add($"{label}: port {Port} is out of range 0-65535 (0 = any free port)");
        if (MaxConcurrency is < 1 or > 10000) errors.Add($"{label}: maxConcurrency must be 1-10000");
        if (StressCommandTimeoutSeconds is < 1 or > 3600) errors.Add($"{label}: stressCommandTimeoutSeconds must be 1-3600");
        if ((CertificateFile is null) != (PrivateKeyFile is null))
            errors.Add($"{label}: certificateFile and privateKeyFile go together");
        foreach (var policyName in SenderGroups.Select(g => g.Policy).Append(DefaultPolicy))
        {
            if (!config.MailFlowPolicies.TryGetValue(policyName, out var policy))
                errors.Add($"{label}: mail flow policy '{policyName}' is not defined");
            else if (policy.Action == PolicyAction.Relay && Type == ListenerType.Public)
                errors.Add($"{label}: a public listener cannot use relay policy '{policyName}' (relaying needs a private listener)");
        }
        foreach (var group in SenderGroups)
        {
            if (group.Senders.Count == 0) errors.Add($"{label}: sender group '{group.Name}' has no senders");
            foreach (var sender in group.Senders)
                if (!SenderPattern.TryParse(sender, out _)) errors.Add($"{label}: sender group '{group.Name}': '{sender}' is not an IP, CIDR or host-name pattern");
        }
    }
}

public sealed class SenderGroup
{
    public string Name { get; set; } = "";
    /// <summary>IP addresses, CIDR ranges, host names ("mail.example.com") or domain patterns (".example.com").</summary>
    public List<string> Senders { get; set; } = new();
    public string Policy { get; set; } = "ACCEPTED";
}

public enum PolicyAction { Accept, Relay, Reject, TcpRefuse }
public enum InboundTls { No, Preferred, Required }

public sealed class MailFlowPolicy
{
    public PolicyAction Action { get; set; } = PolicyAction.Accept;
    public InboundTls Tls { get; set; } = InboundTls.No;
    public long MaxMessageSize { get; set; } = 20 * 1024 * 1024;
    public int MaxRecipientsPerMessage { get; set; } = 1000;
    public int MaxMessagesPerConnection { get; set; } = 1000;
    /// <summary>Longest accepted message text line, CRLF included (RFC 5321 §4.5.3.1.6 says 1000; real mail often exceeds it).</summary>
    public int MaxLineLength { get; set; } = 10000;
    public int CommandTimeoutSeconds { get; set; } = 300;
    public int DataTimeoutSeconds { get; set; } = 600;

    internal void Validate(string name, List<string> errors)
    {
        var label = $"mail flow policy '{name}'";
        if (MaxMessageSize is < 1024 or > 1L << 31) errors.Add($"{label}: maxMessageSize must be 1024-2147483648");
        if (MaxRecipientsPerMessage is < 1 or > 100000) errors.Add($"{label}: maxRecipientsPerMessage must be 1-100000");
        if (MaxMessagesPerConnection is < 1 or > 100000) errors.Add($"{label}: maxMessagesPerConnection must be 1-100000");
        if (MaxLineLength is < 1000 or > 65536) errors.Add($"{label}: maxLineLength must be 1000-65536");
        if (CommandTimeoutSeconds is < 1 or > 3600) errors.Add($"{label}: commandTimeoutSeconds must be 1-3600");
        if (DataTimeoutSeconds is < 1 or > 3600) errors.Add($"{label}: dataTimeoutSeconds must be 1-3600");
    }
}

public enum RatAction { Accept, Reject }

public sealed class RatEntry
{
    /// <summary>"example.com" for the domain itself, ".example.com" for its subdomains.</summary>
    public string Domain { get; set; } = "";
    public RatAction Action { get; set; } = RatAction.Accept;
    /// <summary>
    /// Optional list of the valid recipients (one address a line, # comments): others are
    /// refused at RCPT (550 5.1.1) instead of being accepted and bounced later (backscatter).
    /// </summary>
    public string? ValidRecipientsFile { get; set; }
}

/// <summary>MTA-STS policy fetching (Destination Controls switch MTA-STS on per destination).</summary>
/// <summary>
/// A cluster member's own settings (they come from this machine's file and are never taken
/// from a committed version): where the shared store is and what this member is called.
/// </summary>
public sealed class ClusterSettings
{
    /// <summary>Npgsql connection string of the shared PostgreSQL database (Host=…;Database=…;Username=…).</summary>
    public string Postgres { get; set; } = "";
    /// <summary>A file (0600) holding the database password, so the password stays out of configuration documents.</summary>
    public string? PasswordFile { get; set; }
    /// <summary>This member's name, unique in the cluster; empty = the hostname.</summary>
    public string Member { get; set; } = "";
    /// <summary>How long a member's claim on a message lasts without renewal: a crashed member's work is taken over after this.</summary>
    public int LeaseSeconds { get; set; } = 60;

    public void Validate(List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(Postgres)) errors.Add("cluster.postgres must be a PostgreSQL connection string");
        else
        {
            try { _ = new Npgsql.NpgsqlConnectionStringBuilder(Postgres); }
            catch (ArgumentException e) { errors.Add($"cluster.postgres is not a connection string: {e.Message}"); }
        }
        if (Member.Length > 0 && !System.Text.RegularExpressions.Regex.IsMatch(Member, "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"))
            errors.Add($"cluster.member '{Member}' must be 1-63 letters, digits, dots, hyphens or underscores");
        if (LeaseSeconds is < 5 or > 3600) errors.Add("cluster.leaseSeconds must be 5-3600");
    }
}

public sealed class MtaStsSettings
{
    /// <summary>The whole policy fetch (connect, TLS, request, body) must finish within this.</summary>
    public int FetchTimeoutSeconds { get; set; } = 30;
    /// <summary>An HTTP proxy for policy fetches ("http://proxy:3128"); null = direct.</summary>
    public string? Proxy { get; set; }
}

/// <summary>Bounce Verification (Destination Controls switch it on per destination): how long a tag stays valid.</summary>
public sealed class BounceVerificationSettings
{
    public int MaxAgeDays { get; set; } = 7;
}

public sealed class DeliverySettings
{
    /// <summary>TCP port of the next hop; 25 except in labs.</summary>
    public int Port { get; set; } = 25;
    /// <summary>Source address for outbound connections; null lets the kernel choose.</summary>
    public string? SourceAddress { get; set; }
    public int ConnectTimeoutSeconds { get; set; } = 30;
    /// <summary>Waiting for the greeting and for replies to commands (RFC 5321 §4.5.3.2: 5 minutes).</summary>
    public int CommandTimeoutSeconds { get; set; } = 300;
    /// <summary>Writing one block of message data (RFC 5321 §4.5.3.2.5: 3 minutes).</summary>
    public int DataBlockTimeoutSeconds { get; set; } = 180;
    /// <summary>Waiting for the reply after the message data (RFC 5321 §4.5.3.2.6: 10 minutes; giving up early risks duplicates).</summary>
    public int DataDoneTimeoutSeconds { get; set; } = 600;
    public int TotalConcurrentConnections { get; set; } = 2000;
    /// <summary>How long a connection with nothing to send waits for the next message before QUIT (Postfix: smtp_connection_cache_time_limit); 0 closes at once.</summary>
    public int ConnectionCacheSeconds { get; set; } = 2;
    /// <summary>Messages the scheduler holds in memory at once (with their bodies); the rest wait in the store.</summary>
    public int ActiveMessageLimit { get; set; } = 1000;

    internal void Validate(List<string> errors)
    {
        if (Port is < 1 or > 65535) errors.Add("delivery.port out of range 1-65535");
        if (SourceAddress is not null && !IPAddress.TryParse(SourceAddress, out _)) errors.Add("delivery.sourceAddress is not an IP address");
        if (ConnectTimeoutSeconds is < 1 or > 600) errors.Add("delivery.connectTimeoutSeconds must be 1-600");
        if (CommandTimeoutSeconds is < 1 or > 3600) errors.Add("delivery.commandTimeoutSeconds must be 1-3600");
        if (TotalConcurrentConnections is < 1 or > 100000) errors.Add("delivery.totalConcurrentConnections must be 1-100000");
        if (DataBlockTimeoutSeconds is < 1 or > 3600) errors.Add("delivery.dataBlockTimeoutSeconds must be 1-3600");
        if (DataDoneTimeoutSeconds is < 1 or > 3600) errors.Add("delivery.dataDoneTimeoutSeconds must be 1-3600");
        if (ActiveMessageLimit is < 1 or > 100000) errors.Add("delivery.activeMessageLimit must be 1-100000");
        if (ConnectionCacheSeconds is < 0 or > 300) errors.Add("delivery.connectionCacheSeconds must be 0-300");
    }
}

/// <summary>Retry schedule and queue lifetime (the appliance's default bounce profile).</summary>
public sealed class BounceProfile
{
    public int InitialRetrySeconds { get; set; } = 60;
    public int MaxRetrySeconds { get; set; } = 3600;
    public int MaxTimeInQueueSeconds { get; set; } = 259200;
    public int MaxRetries { get; set; } = 100;
    public bool SendBounces { get; set; } = true;

    internal void Validate(string name, List<string> errors)
    {
        var label = $"bounce profile '{name}'";
        if (InitialRetrySeconds is < 1 or > 86400) errors.Add($"{label}: initialRetrySeconds must be 1-86400");
        if (MaxRetrySeconds < InitialRetrySeconds || MaxRetrySeconds > 86400) errors.Add($"{label}: maxRetrySeconds must be initialRetrySeconds-86400");
        if (MaxTimeInQueueSeconds is < 1 or > 30 * 86400) errors.Add($"{label}: maxTimeInQueueSeconds must be 1-2592000");
        if (MaxRetries is < 0 or > 10000) errors.Add($"{label}: maxRetries must be 0-10000");
    }
}

public sealed class MailLogSettings
{
    public long MaxFileBytes { get; set; } = 100L * 1024 * 1024;
}

public enum AlertSeverity { Info, Warning, Critical }
public enum AlertType { System, Hardware, Updater, Antivirus, MessageDelivery }

public sealed class AlertRecipient
{
    public string Address { get; set; } = "";
    /// <summary>Which alerts this recipient gets; empty = all.</summary>
    public List<AlertSeverity> Severities { get; set; } = new();
    public List<AlertType> Types { get; set; } = new();

    public bool Wants(AlertSeverity severity, AlertType type) =>
        (Severities.Count == 0 || Severities.Contains(severity)) && (Types.Count == 0 || Types.Contains(type));
}

public sealed class AlertSettings
{
    public List<AlertRecipient> Recipients { get; set; } = new();
    /// <summary>Sender of alert mail; empty = alert@hostname.</summary>
    public string? From { get; set; }
    /// <summary>At most one alert of a kind for one domain per this many seconds.</summary>
    public int ThrottleSeconds { get; set; } = 3600;

    internal void Validate(List<string> errors)
    {
        foreach (var r in Recipients)
            if (!Inbound.SmtpSyntax.IsValidMailbox(r.Address)) errors.Add($"alert recipient '{r.Address}' is not a mail address");
        if (From is not null && !Inbound.SmtpSyntax.IsValidMailbox(From)) errors.Add($"alerts.from '{From}' is not a mail address");
        if (ThrottleSeconds is < 0 or > 7 * 86400) errors.Add("alerts.throttleSeconds must be 0-604800");
    }
}

/// <summary>
/// SMTP TLS Reporting (RFC 8460). Sending: once a day, one aggregate report per policy domain
/// that publishes a _smtp._tls record and had traffic. Receiving: reports other senders send
/// to the organisation, by mail to <see cref="Mailbox"/> or by HTTPS POST to the web server.
/// </summary>
public sealed class TlsReportingSettings
{
    /// <summary>Count outbound TLS sessions and send the daily reports. Off by default: reports tell other domains about our traffic.</summary>
    public bool Enabled { get; set; }
    /// <summary>"organization-name" in reports; empty = the hostname.</summary>
    public string OrganizationName { get; set; } = "";
    /// <summary>"contact-info" in reports (an address or URL); empty = postmaster@hostname.</summary>
    public string Contact { get; set; } = "";
    /// <summary>Sender of report mail; empty = noreply-smtp-tls-reporting@hostname.</summary>
    public string? From { get; set; }
    /// <summary>UTC hour (0-23) at which the previous UTC day's reports are sent.</summary>
    public int SendHourUtc { get; set; } = 1;
    /// <summary>A report (gzipped) larger than this is not sent (RFC 8460 §5.1: receivers may refuse large reports).</summary>
    public int MaxReportBytes { get; set; } = 1024 * 1024;
    /// <summary>Mail to this address (on a public listener, in the Recipient Access Table) is read as received TLS reports, not delivered on.</summary>
    public string? Mailbox { get; set; }
    /// <summary>Accept reports by HTTPS POST at /tlsrpt on the web server (no login: RFC 8460 §5.2 senders cannot log in).</summary>
    public bool HttpsEndpoint { get; set; }

    /// <summary>The reporting organisation as written in reports.</summary>
    public string Organization(string hostname) => OrganizationName.Length > 0 ? OrganizationName : hostname;
    public string ContactFor(string hostname) => Contact.Length > 0 ? Contact : $"postmaster@{hostname}";
    public string FromFor(string hostname) => From is { Length: > 0 } f ? f : $"noreply-smtp-tls-reporting@{hostname}";

    internal void Validate(List<string> errors)
    {
        if (SendHourUtc is < 0 or > 23) errors.Add("tlsReporting.sendHourUtc must be 0-23");
        if (MaxReportBytes is < 4096 or > 100 * 1024 * 1024) errors.Add("tlsReporting.maxReportBytes must be 4096-104857600");
        if (OrganizationName.Length > 200 || OrganizationName.Any(char.IsControl)) errors.Add("tlsReporting.organizationName must be at most 200 printable characters");
        if (Contact.Length > 200 || Contact.Any(char.IsControl)) errors.Add("tlsReporting.contact must be at most 200 printable characters");
        if (From is { Length: > 0 } && !Inbound.SmtpSyntax.IsValidMailbox(From)) errors.Add($"tlsReporting.from '{From}' is not a mail address");
        if (Mailbox is { Length: > 0 } && !Inbound.SmtpSyntax.IsValidMailbox(Mailbox)) errors.Add($"tlsReporting.mailbox '{Mailbox}' is not a mail address");
    }
}

public sealed class CertificateSettings
{
    /// <summary>Warn (log line and alert) this many days before an assigned certificate expires; 0 = only once expired.</summary>
    public int ExpiryWarningDays { get; set; } = 30;
    public int CheckIntervalMinutes { get; set; } = 60;
}

/// <summary>The HTTPS administration interface.</summary>
public sealed class WebSettings
{
    public bool Enabled { get; set; } = true;
    public string Address { get; set; } = "127.0.0.1";
    /// <summary>0 = any free port (tests).</summary>
    public int Port { get; set; } = 8443;
    /// <summary>The stored certificate (certconfig) the interface presents; none = the demo certificate.</summary>
    public string? Certificate { get; set; }
    /// <summary>A session ends after this many minutes without a request.</summary>
    public int IdleTimeoutMinutes { get; set; } = 30;
    /// <summary>Failed logins in a row before an account is locked out, and for how long.</summary>
    public int MaxFailedLogins { get; set; } = 5;
    public int LockoutMinutes { get; set; } = 15;

    internal void Validate(List<string> errors)
    {
        if (!IPAddress.TryParse(Address, out _)) errors.Add($"web.address '{Address}' is not an IP address");
        if (Port is < 0 or > 65535) errors.Add($"web.port {Port} is out of range 0-65535");
        if (IdleTimeoutMinutes is < 1 or > 1440) errors.Add("web.idleTimeoutMinutes must be 1-1440");
        if (MaxFailedLogins is < 1 or > 100) errors.Add("web.maxFailedLogins must be 1-100");
        if (LockoutMinutes is < 1 or > 1440) errors.Add("web.lockoutMinutes must be 1-1440");
    }
}

/// <summary>The Prometheus metrics endpoint (plain HTTP, meant for loopback or a monitoring network).</summary>
public sealed class MetricsSettings
{
    public bool Enabled { get; set; } = true;
    public string Address { get; set; } = "127.0.0.1";
    /// <summary>0 = any free port (tests).</summary>
    public int Port { get; set; } = 9187;
    /// <summary>Per-destination series (active connections) only for this many busiest destinations: bounded cardinality.</summary>
    public int TopDestinations { get; set; } = 20;

    internal void Validate(List<string> errors)
    {
        if (!IPAddress.TryParse(Address, out _)) errors.Add($"metrics.address '{Address}' is not an IP address");
        if (Port is < 0 or > 65535) errors.Add($"metrics.port {Port} is out of range 0-65535");
        if (TopDestinations is < 0 or > 1000) errors.Add("metrics.topDestinations must be 0-1000");
    }
}

/// <summary>Message tracking: every message's life, from the event stream, kept for a while.</summary>
public sealed class TrackingSettings
{
    public bool Enabled { get; set; } = true;
    public int RetentionDays { get; set; } = 30;

    internal void Validate(List<string> errors)
    {
        if (RetentionDays is < 1 or > 3650) errors.Add("tracking.retentionDays must be 1-3650");
    }
}
