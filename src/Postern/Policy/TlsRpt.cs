using System.Text.Json;
using System.Text.Json.Nodes;
using Postern.Observability;

namespace Postern.Policy;

/// <summary>
/// The failure kinds of a TLS report (RFC 8460 §4.3), each written as the RFC spells it.
/// </summary>
public enum TlsRptResultType
{
    StartTlsNotSupported, CertificateHostMismatch, CertificateExpired, CertificateNotTrusted, ValidationFailure,
    TlsaInvalid, DnssecInvalid, DaneRequired, StsPolicyFetchError, StsPolicyInvalid, StsWebpkiInvalid,
}

/// <summary>Which policy a report's entry is about (RFC 8460 §4.4 "policy-type").</summary>
public enum TlsRptPolicyType { Tlsa, Sts, NoPolicyFound }

public static class TlsRptNames
{
    public static string Of(TlsRptResultType type) => type switch
    {
        TlsRptResultType.StartTlsNotSupported => "starttls-not-supported",
        TlsRptResultType.CertificateHostMismatch => "certificate-host-mismatch",
        TlsRptResultType.CertificateExpired => "certificate-expired",
        TlsRptResultType.CertificateNotTrusted => "certificate-not-trusted",
        TlsRptResultType.ValidationFailure => "validation-failure",
        TlsRptResultType.TlsaInvalid => "tlsa-invalid",
        TlsRptResultType.DnssecInvalid => "dnssec-invalid",
        TlsRptResultType.DaneRequired => "dane-required",
        TlsRptResultType.StsPolicyFetchError => "sts-policy-fetch-error",
        TlsRptResultType.StsPolicyInvalid => "sts-policy-invalid",
        TlsRptResultType.StsWebpkiInvalid => "sts-webpki-invalid",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    public static string Of(TlsRptPolicyType type) => type switch
    {
        TlsRptPolicyType.Tlsa => "tlsa",
        TlsRptPolicyType.Sts => "sts",
        TlsRptPolicyType.NoPolicyFound => "no-policy-found",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    public static TlsRptResultType? ResultType(string name) =>
        Enum.GetValues<TlsRptResultType>().Cast<TlsRptResultType?>().FirstOrDefault(t => Of(t!.Value) == name);
}

public enum TlsRptRecordKind { Found, NoRecord, Invalid, LookupFailed }

/// <summary>
/// What the TXT records at _smtp._tls.&lt;domain&gt; say (RFC 8460 §3): where to send reports,
/// or that the domain asks for none. Pure: DNS errors are the caller's to tell apart from
/// "no record" (a lookup that failed is not an answer).
/// </summary>
public sealed record TlsRptRecord(TlsRptRecordKind Kind, IReadOnlyList<Uri> ReportTo, string Reason)
{
    private const string Version = "v=TLSRPTv1";

    /// <summary>
    /// Reads the TXT records of the name (each already joined from its strings). Records that
    /// do not start with the version are not TLSRPT records; anything but exactly one left
    /// means the domain does not take reports (§3). A record whose rua holds no usable
    /// mailto: or https: address is invalid.
    /// </summary>
    public static TlsRptRecord Parse(IEnumerable<string> txtRecords)
    {
        var candidates = txtRecords.Where(IsVersioned).ToList();
        if (candidates.Count == 0) return new(TlsRptRecordKind.NoRecord, [], "no TLSRPT record");
        if (candidates.Count > 1) return new(TlsRptRecordKind.NoRecord, [], $"{candidates.Count} TLSRPT records (exactly one is required)");
        return ParseOne(candidates[0]);
    }

    private static bool IsVersioned(string record)
    {
        var t = record.TrimStart(' ', '\t');
        return t.StartsWith(Version, StringComparison.Ordinal)
            && (t.Length == Version.Length || t[Version.Length] is ';' or ' ' or '\t');
    }

    private static TlsRptRecord ParseOne(string record)
    {
        var fields = record.Split(';').Select(f => f.Trim(' ', '\t')).ToList();
        // A trailing delimiter is allowed; an empty field elsewhere is not.
        if (fields.Count > 1 && fields[^1].Length == 0) fields.RemoveAt(fields.Count - 1);
        IReadOnlyList<Uri>? rua = null;
        var unusable = new List<string>();
        foreach (var field in fields.Skip(1))
        {
            var eq = field.IndexOf('=');
            if (eq <= 0) return Invalid($"malformed field '{Printable(field)}'");
            var name = field[..eq];
            var value = field[(eq + 1)..];
            if (name == "rua")
            {
                if (rua is not null) return Invalid("more than one rua field");
                var uris = new List<Uri>();
                foreach (var part in value.Split(','))
                {
                    var text = part.Trim(' ', '\t');
                    if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeMailto && uri.UserInfo.Length > 0 && uri.Host.Length > 0
                        || uri.Scheme == Uri.UriSchemeHttps && uri.Host.Length > 0))
                        uris.Add(uri);
                    else unusable.Add(Printable(text));
                }
                rua = uris;
            }
            else if (!IsExtensionName(name) || value.Length == 0 || value.Any(c => c is <= ' ' or '=' or ';' or > '~'))
                return Invalid($"malformed field '{Printable(field)}'");
        }
        if (rua is null) return Invalid("no rua field");
        if (rua.Count == 0) return Invalid($"no usable report address in rua ({string.Join(", ", unusable)}): only mailto: and https: are defined");
        return new(TlsRptRecordKind.Found, rua, unusable.Count == 0 ? "" : $"ignored: {string.Join(", ", unusable)}");
    }

    private static bool IsExtensionName(string name) =>
        name.Length is >= 1 and <= 32 && char.IsAsciiLetterOrDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    private static TlsRptRecord Invalid(string reason) => new(TlsRptRecordKind.Invalid, [], reason);

    /// <summary>DNS text goes into log lines and reports: escaped and capped the way all peer text is.</summary>
    private static string Printable(string text) => Observability.TrackingText.Clean(text, 200);
}

/// <summary>One failure line of a report: sessions that failed the same way between the same hosts.</summary>
public sealed record TlsRptFailure(TlsRptResultType ResultType, string? SendingMtaIp, string? ReceivingMxHostname, string? ReceivingIp,
    long FailedSessionCount, string? FailureReasonCode = null);

/// <summary>One policy's part of a report: what was applied and how the sessions under it went.</summary>
public sealed record TlsRptPolicyResult(TlsRptPolicyType Type, IReadOnlyList<string> PolicyStrings, string PolicyDomain,
    IReadOnlyList<string> MxHosts, long SuccessfulSessions, long FailedSessions, IReadOnlyList<TlsRptFailure> Failures);

/// <summary>An aggregate report for one policy domain and one UTC day (RFC 8460 §4.4).</summary>
public sealed record TlsRptReport(string OrganizationName, DateTimeOffset Start, DateTimeOffset End, string ContactInfo, string ReportId,
    IReadOnlyList<TlsRptPolicyResult> Policies)
{
    /// <summary>The report's JSON with the RFC's member names; optional members are left out when unknown.</summary>
    public string ToJson()
    {
        static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        var policies = new JsonArray();
        foreach (var p in Policies)
        {
            var policy = new JsonObject
            {
                ["policy-type"] = TlsRptNames.Of(p.Type),
                ["policy-string"] = new JsonArray(p.PolicyStrings.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["policy-domain"] = p.PolicyDomain,
            };
            if (p.MxHosts.Count > 0) policy["mx-host"] = new JsonArray(p.MxHosts.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray());
            var entry = new JsonObject
            {
                ["policy"] = policy,
                ["summary"] = new JsonObject
                {
                    ["total-successful-session-count"] = p.SuccessfulSessions,
                    ["total-failure-session-count"] = p.FailedSessions,
                },
            };
            if (p.Failures.Count > 0)
            {
                var failures = new JsonArray();
                foreach (var f in p.Failures)
                {
                    var o = new JsonObject { ["result-type"] = TlsRptNames.Of(f.ResultType) };
                    if (f.SendingMtaIp is not null) o["sending-mta-ip"] = f.SendingMtaIp;
                    if (f.ReceivingMxHostname is not null) o["receiving-mx-hostname"] = f.ReceivingMxHostname;
                    if (f.ReceivingIp is not null) o["receiving-ip"] = f.ReceivingIp;
                    o["failed-session-count"] = f.FailedSessionCount;
                    if (f.FailureReasonCode is not null) o["failure-reason-code"] = f.FailureReasonCode;
                    failures.Add(o);
                }
                entry["failure-details"] = failures;
            }
            policies.Add(entry);
        }
        var report = new JsonObject
        {
            ["organization-name"] = OrganizationName,
            ["date-range"] = new JsonObject { ["start-datetime"] = Time(Start), ["end-datetime"] = Time(End) },
            ["contact-info"] = ContactInfo,
            ["report-id"] = ReportId,
            ["policies"] = policies,
        };
        return report.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}

/// <summary>
/// The policy one session to an MX host was made under, as a report names it (RFC 8460
/// §4.4 "policy"): DANE's TLSA records, an MTA-STS policy's lines, or no policy. When the
/// policy itself could not be had (an MTA-STS fetch failed, a host not in the policy's mx
/// list), <see cref="Failure"/> is what every session under it reports, whatever TLS did.
/// </summary>
public sealed record TlsRptPolicy(string PolicyDomain, TlsRptPolicyType Type, IReadOnlyList<string> Strings, IReadOnlyList<string> MxHosts,
    TlsRptResultType? Failure = null, string FailureDetail = "")
{
    /// <summary>DANE decides where it applies (RFC 7672 before RFC 8461 §2); then an MTA-STS policy in enforce or testing mode; else none.</summary>
    public static TlsRptPolicy For(string policyDomain, DaneHostPolicy dane, StsPolicy? sts)
    {
        var domain = policyDomain.ToLowerInvariant();
        if (dane.Kind != DaneHostKind.NotApplicable)
            return new(domain, TlsRptPolicyType.Tlsa, dane.Records.Select(r => r.Presentation).ToList(), []);
        if (sts is { Mode: not StsMode.None })
            return new(domain, TlsRptPolicyType.Sts, StsLines(sts), sts.Mx);
        return new(domain, TlsRptPolicyType.NoPolicyFound, [], []);
    }

    /// <summary>The domain publishes an MTA-STS record, but its policy could not be fetched or was invalid (and none is cached).</summary>
    public static TlsRptPolicy StsUnavailable(string policyDomain, StsResult result, string detail) =>
        new(policyDomain.ToLowerInvariant(), TlsRptPolicyType.Sts, [], [], result switch
        {
            StsResult.PolicyInvalid => TlsRptResultType.StsPolicyInvalid,
            StsResult.WebPkiInvalid => TlsRptResultType.StsWebpkiInvalid,
            _ => TlsRptResultType.StsPolicyFetchError,
        }, detail);

    /// <summary>The policy lines in the policy file's order (RFC 8460 §4.4 example).</summary>
    public static IReadOnlyList<string> StsLines(StsPolicy sts) =>
        [
            "version: STSv1",
            $"mode: {sts.Mode.ToString().ToLowerInvariant()}",
            .. sts.Mx.Select(mx => $"mx: {mx}"),
            $"max_age: {sts.MaxAgeSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        ];

    /// <summary>Sessions under equal policies are counted together: the type, the strings and the mx patterns make the key.</summary>
    public string Key
    {
        get
        {
            var text = string.Join("\n", [TlsRptNames.Of(Type), .. Strings, "", .. MxHosts]);
            return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)))[..32];
        }
    }

    /// <summary>What an unusable DANE host reports (RFC 8460 §4.3.2.1).</summary>
    public static TlsRptResultType ForUnusable(DaneHostPolicy dane) => dane.Cause switch
    {
        DaneUnusableCause.NoUsableTlsa => TlsRptResultType.TlsaInvalid,
        DaneUnusableCause.DaneRequired => TlsRptResultType.DaneRequired,
        _ => TlsRptResultType.DnssecInvalid,
    };

    /// <summary>
    /// A certificate that did not verify, as a report types it: expired, not trusted (no path
    /// to an enabled root), the wrong names, or else a general validation failure.
    /// </summary>
    public static TlsRptResultType ForCertificate(CertificateCheck check)
    {
        if (check.Problem is { } p && p.Contains("expired", StringComparison.OrdinalIgnoreCase)) return TlsRptResultType.CertificateExpired;
        if (!check.ChainTrusted) return TlsRptResultType.CertificateNotTrusted;
        if (!check.NameMatched) return TlsRptResultType.CertificateHostMismatch;
        return TlsRptResultType.ValidationFailure;
    }
}
