using Postern.Dns;

namespace Postern.Admin;

/// <summary>The six outbound TLS levels of SPEC §2 (Default = inherit the Default entry).</summary>
public enum TlsLevel { Default, No, Preferred, Required, PreferredVerify, RequiredVerify, RequiredVerifyHostedDomains }
public enum IpPreference { Default, IPv4Preferred, IPv4Required, IPv6Preferred, IPv6Required }
public enum LimitScope { Default, Hostname, SystemWide, VirtualGateway }
public enum DaneSupport { Default, None, Opportunistic, Mandatory }
public enum MtaStsSupport { Default, Off, On }

public sealed class RecipientLimit
{
    /// <summary>Recipients per window; 0 means none may be sent.</summary>
    public int Recipients { get; set; }
    public int Minutes { get; set; } = 60;
}

/// <summary>
/// One row of the Destination Controls table. Every field left at Default (enum value
/// Default, or null) inherits from the Default entry.
/// </summary>
public sealed class DestinationEntry
{
    /// <summary>"example.com" (the domain) or ".example.com" (its subdomains).</summary>
    public string Domain { get; set; } = "";
    public IpPreference IpPreference { get; set; }
    public int? ConcurrentConnections { get; set; }
    public int? MaxMessagesPerConnection { get; set; }
    /// <summary>Null = no limit (Default entry) or inherit (other entries).</summary>
    public RecipientLimit? RecipientLimit { get; set; }
    public LimitScope LimitsApplyTo { get; set; }
    public TlsLevel Tls { get; set; }
    public DaneSupport Dane { get; set; }
    public MtaStsSupport MtaSts { get; set; }
    public bool? BounceVerification { get; set; }
    public string? BounceProfile { get; set; }

    internal void Validate(string label, PosternConfig config, List<string> errors, bool isDefault)
    {
        if (ConcurrentConnections is < 1 or > 1000) errors.Add($"{label}: concurrentConnections must be 1-1000");
        if (MaxMessagesPerConnection is < 1 or > 1000) errors.Add($"{label}: maxMessagesPerConnection must be 1-1000");
        if (RecipientLimit is { } limit)
        {
            if (limit.Recipients is < 0 or > 1_000_000) errors.Add($"{label}: recipientLimit.recipients must be 0-1000000");
            if (limit.Minutes is < 1 or > 60) errors.Add($"{label}: recipientLimit.minutes must be 1-60");
        }
        if (BounceProfile is not null && !config.BounceProfiles.ContainsKey(BounceProfile))
            errors.Add($"{label}: bounce profile '{BounceProfile}' is not defined");
        if (isDefault)
        {
            if (IpPreference == IpPreference.Default || Tls == TlsLevel.Default || Dane == DaneSupport.Default
                || MtaSts == MtaStsSupport.Default || LimitsApplyTo == LimitScope.Default)
                errors.Add($"{label}: the Default entry cannot inherit (set every field)");
        }
        var tls = Tls == TlsLevel.Default ? config.DestinationControls.Default.Tls : Tls;
        var dane = Dane == DaneSupport.Default ? config.DestinationControls.Default.Dane : Dane;
        var sts = MtaSts == MtaStsSupport.Default ? config.DestinationControls.Default.MtaSts : MtaSts;
        if (tls == TlsLevel.No && dane is DaneSupport.Opportunistic or DaneSupport.Mandatory)
            errors.Add($"{label}: DANE needs a TLS level from Preferred to Required - Verify Hosted Domains");
        if (tls == TlsLevel.No && sts == MtaStsSupport.On)
            errors.Add($"{label}: MTA-STS needs a TLS level from Preferred to Required - Verify Hosted Domains");
    }
}

/// <summary>Destination Controls: the per-domain table, its Default entry and the global settings.</summary>
public sealed class DestinationControls
{
    /// <summary>A file's "default" object changes only the fields it names.</summary>
    [System.Text.Json.Serialization.JsonObjectCreationHandling(System.Text.Json.Serialization.JsonObjectCreationHandling.Populate)]
    public DestinationEntry Default { get; set; } = new()
    {
        Domain = "Default",
        IpPreference = IpPreference.IPv4Preferred,
        ConcurrentConnections = 500,
        MaxMessagesPerConnection = 50,
        LimitsApplyTo = LimitScope.SystemWide,
        Tls = TlsLevel.Preferred,
        Dane = DaneSupport.None,
        MtaSts = MtaStsSupport.Off,
        BounceVerification = false,
        BounceProfile = "Default",
    };
    public List<DestinationEntry> Entries { get; set; } = new();
    /// <summary>Global: send a warning alert when a required TLS connection fails.</summary>
    public bool AlertOnRequiredTlsFailure { get; set; }
    /// <summary>Global outbound client certificate: a stored certificate (certconfig), presented when a peer asks; wins over the PEM files.</summary>
    public string? ClientCertificate { get; set; }
    /// <summary>Global outbound client certificate as PEM files.</summary>
    public string? ClientCertificateFile { get; set; }
    public string? ClientPrivateKeyFile { get; set; }
    /// <summary>Extra verification checks: presented names must be FQDNs; no MD5/SHA-1 signatures.</summary>
    public bool RequireFqdnIdentities { get; set; }
    public bool CheckSignatureAlgorithms { get; set; }

    /// <summary>True when some entry tags envelope senders: inbound bounces are then verified.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool TagsAnyDestination => Default.BounceVerification == true || Entries.Any(e => e.BounceVerification == true);

    internal void Validate(PosternConfig config, List<string> errors)
    {
        Default.Validate("destinationControls.default", config, errors, isDefault: true);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in Entries)
        {
            var label = $"destination '{entry.Domain}'";
            if (!DomainNames.IsValidDomainPattern(entry.Domain)) errors.Add($"{label}: not a domain or .domain pattern");
            if (!seen.Add(entry.Domain)) errors.Add($"{label}: listed twice");
            entry.Validate(label, config, errors, isDefault: false);
        }
        if ((ClientCertificateFile is null) != (ClientPrivateKeyFile is null))
            errors.Add("destinationControls: clientCertificateFile and clientPrivateKeyFile go together");
    }

    /// <summary>
    /// The settings in force for a recipient domain: the exact entry, else the most specific
    /// ".parent" entry, else Default; fields left at Default come from the Default entry.
    /// </summary>
    public EffectiveDestination Resolve(string domain)
    {
        DestinationEntry? match = null;
        foreach (var e in Entries)
        {
            if (!DomainNames.MatchesPattern(domain, e.Domain)) continue;
            if (match is null || DomainNames.PatternSpecificity(e.Domain) > DomainNames.PatternSpecificity(match.Domain)) match = e;
        }
        var d = Default;
        var entry = match ?? d;
        string Source(bool inherited) => match is null ? "Default entry" : inherited ? $"{match.Domain} entry, inherited from Default" : $"{match.Domain} entry";
        var tlsInherited = entry.Tls == TlsLevel.Default;
        return new EffectiveDestination(
            Domain: domain,
            Entry: match?.Domain ?? "Default",
            Tls: tlsInherited ? d.Tls : entry.Tls,
            TlsSource: Source(tlsInherited || match is null),
            IpPreference: entry.IpPreference == IpPreference.Default ? d.IpPreference : entry.IpPreference,
            ConcurrentConnections: entry.ConcurrentConnections ?? d.ConcurrentConnections!.Value,
            MaxMessagesPerConnection: entry.MaxMessagesPerConnection ?? d.MaxMessagesPerConnection!.Value,
            RecipientLimit: entry.RecipientLimit ?? d.RecipientLimit,
            LimitsApplyTo: entry.LimitsApplyTo == LimitScope.Default ? d.LimitsApplyTo : entry.LimitsApplyTo,
            Dane: entry.Dane == DaneSupport.Default ? d.Dane : entry.Dane,
            MtaSts: entry.MtaSts == MtaStsSupport.Default ? d.MtaSts : entry.MtaSts,
            BounceVerification: entry.BounceVerification ?? d.BounceVerification ?? false,
            BounceProfile: entry.BounceProfile ?? d.BounceProfile ?? "Default");
    }
}

/// <summary>Destination Controls as they apply to one domain, every field concrete.</summary>
public sealed record EffectiveDestination(
    string Domain, string Entry, TlsLevel Tls, string TlsSource, IpPreference IpPreference,
    int ConcurrentConnections, int MaxMessagesPerConnection, RecipientLimit? RecipientLimit, LimitScope LimitsApplyTo,
    DaneSupport Dane, MtaStsSupport MtaSts, bool BounceVerification, string BounceProfile)
{
    public static string LevelName(TlsLevel level) => level switch
    {
        TlsLevel.No => "No",
        TlsLevel.Preferred => "Preferred",
        TlsLevel.Required => "Required",
        TlsLevel.PreferredVerify => "Preferred (Verify)",
        TlsLevel.RequiredVerify => "Required (Verify)",
        TlsLevel.RequiredVerifyHostedDomains => "Required - Verify Hosted Domains",
        _ => "Default",
    };
}

/// <summary>A static next hop for a domain, used instead of its MX records.</summary>
public sealed class SmtpRoute
{
    /// <summary>"example.com" or ".example.com".</summary>
    public string Domain { get; set; } = "";
    public List<SmtpRouteHost> Hosts { get; set; } = new();
}

public sealed class SmtpRouteHost
{
    /// <summary>Host name or IP address.</summary>
    public string Host { get; set; } = "";
    public int Port { get; set; } = 25;
    /// <summary>Lower is tried first (like MX preference).</summary>
    public int Priority { get; set; }
}

/// <summary>Trusted certificate authorities for every verification Postern does.</summary>
public sealed class CertificateAuthoritySettings
{
    public bool SystemListEnabled { get; set; } = true;
    /// <summary>The operating system's bundle.</summary>
    public string SystemBundle { get; set; } = "/etc/ssl/certs/ca-certificates.crt";
    public bool CustomListEnabled { get; set; }
    /// <summary>PEM file with (part of) the custom list.</summary>
    public string? CustomListFile { get; set; }
    /// <summary>The custom list's certificates kept in the configuration itself (PEM, one certificate each; certconfig ca custom).</summary>
    public List<string> CustomList { get; set; } = new();

    internal void Validate(List<string> errors)
    {
        foreach (var pem in CustomList)
        {
            try
            {
                var c = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
                c.Dispose();
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                errors.Add($"certificateAuthorities.customList: an entry is not a PEM certificate ({e.Message.TrimEnd('.')})");
            }
        }
    }
}
