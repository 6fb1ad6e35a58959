using System.Globalization;
using Postern.Dns;

namespace Postern.Policy;

public enum StsMode { Enforce, Testing, None }

/// <summary>An MTA-STS policy (RFC 8461 §3.2) as fetched and parsed.</summary>
public sealed record StsPolicy(StsMode Mode, IReadOnlyList<string> Mx, long MaxAgeSeconds)
{
    public const long MaxMaxAge = 31_557_600;   // one year, RFC 8461 §3.2

    /// <summary>
    /// Parses the policy text: CRLF or LF lines of "key: value" (whitespace around the colon
    /// allowed), unknown keys ignored, the first of a repeated key used (mx may repeat).
    /// Returns the policy or why it is invalid.
    /// </summary>
    public static (StsPolicy? Policy, string? Error) Parse(string text)
    {
        string? version = null, mode = null, maxAge = null;
        var mx = new List<string>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].EndsWith('\r') ? lines[i][..^1] : lines[i];
            if (line.Trim().Length == 0) continue;   // the final terminator, and blank lines as senders commonly tolerate
            var colon = line.IndexOf(':');
            if (colon <= 0) return (null, $"line {i + 1} is not 'key: value'");
            var key = line[..colon].Trim(' ', '\t');
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (!IsExtensionName(key)) return (null, $"line {i + 1}: '{key}' is not a field name");
            switch (key)
            {
                case "version": version ??= value; break;
                case "mode": mode ??= value; break;
                case "max_age": maxAge ??= value; break;
                case "mx": mx.Add(value); break;
                default: break;   // extension fields are ignored (RFC 8461 §3.2)
            }
        }
        if (version is null) return (null, "no version field");
        if (version != "STSv1") return (null, $"version '{version}' is not STSv1");
        StsMode m;
        switch (mode)
        {
            case "enforce": m = StsMode.Enforce; break;
            case "testing": m = StsMode.Testing; break;
            case "none": m = StsMode.None; break;
            case null: return (null, "no mode field");
            default: return (null, $"mode '{mode}' is not enforce, testing or none");
        }
        if (maxAge is null) return (null, "no max_age field");
        if (maxAge.Length is 0 or > 10 || !maxAge.All(char.IsAsciiDigit)
            || !long.TryParse(maxAge, NumberStyles.None, CultureInfo.InvariantCulture, out var age) || age > MaxMaxAge)
            return (null, $"max_age '{maxAge}' is not a number of seconds up to {MaxMaxAge}");
        foreach (var pattern in mx)
            if (!IsMxPattern(pattern)) return (null, $"mx '{pattern}' is not a host name or *.host name pattern");
        if (m != StsMode.None && mx.Count == 0) return (null, $"mode {mode} needs at least one mx field");
        return (new StsPolicy(m, mx.Select(p => p.TrimEnd('.').ToLowerInvariant()).ToList(), age), null);
    }

    /// <summary>sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").</summary>
    private static bool IsExtensionName(string key) =>
        key.Length is > 0 and <= 32 && char.IsAsciiLetterOrDigit(key[0]) && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    /// <summary>["*."] Domain: a wildcard only as the whole left-most label.</summary>
    public static bool IsMxPattern(string pattern)
    {
        var p = pattern.TrimEnd('.');
        if (p.StartsWith("*.", StringComparison.Ordinal)) p = p[2..];
        return p.Length > 0 && !p.Contains('*') && DomainNames.IsValidHostname(p) && p.Contains('.');
    }

    /// <summary>RFC 8461 §4.1: exact (case-insensitive), or "*.example.com" matching exactly one more label: the RFC 6125 rule certificates use.</summary>
    public static bool MatchesPattern(string pattern, string host) => CertificateVerifier.Matches(pattern, host);

    /// <summary>Whether the policy allows this MX host.</summary>
    public bool Allows(string mxHost) => Mx.Any(p => MatchesPattern(p, mxHost));

    public string Describe() => $"mode {Mode.ToString().ToLowerInvariant()}, mx {string.Join(", ", Mx)}, max_age {MaxAgeSeconds}";
}

/// <summary>The _mta-sts TXT record (RFC 8461 §3.1).</summary>
public static class StsTxt
{
    /// <summary>
    /// From the TXT records at _mta-sts.&lt;domain&gt; (each the concatenation of its strings):
    /// exactly one must start with "v=STSv1"; its id is 1-32 letters and digits. Returns the
    /// id, or why there is no usable record.
    /// </summary>
    public static (string? Id, string? Error) Parse(IReadOnlyList<string> records)
    {
        var sts = records.Where(r => r.StartsWith("v=STSv1", StringComparison.Ordinal)).ToList();
        if (sts.Count == 0) return (null, "no TXT record starting v=STSv1");
        if (sts.Count > 1) return (null, $"{sts.Count} TXT records start with v=STSv1 (exactly one is allowed)");
        var fields = sts[0].Split(';').Select(f => f.Trim(' ', '\t')).ToList();
        if (fields[0] != "v=STSv1") return (null, "the record does not begin with the field v=STSv1");
        string? id = null;
        foreach (var field in fields.Skip(1))
        {
            if (field.Length == 0) continue;
            var eq = field.IndexOf('=');
            if (eq <= 0) return (null, $"field '{field}' is not name=value");
            if (field[..eq] == "id") id ??= field[(eq + 1)..];
        }
        if (id is null) return (null, "no id field");
        if (id.Length is 0 or > 32 || !id.All(char.IsAsciiLetterOrDigit)) return (null, $"id '{id}' is not 1-32 letters and digits");
        return (id, null);
    }
}

/// <summary>What an MTA-STS policy asks of one MX host (RFC 8461 §4, §5).</summary>
public enum StsHostKind
{
    /// <summary>No policy, or mode none: the TLS level (or DANE) decides.</summary>
    NotApplicable,
    /// <summary>Enforce, and the host is in the policy: TLS 1.2+, a PKIX-valid certificate for this host name.</summary>
    Enforce,
    /// <summary>Enforce, and the host is not in the policy: do not use it.</summary>
    NotInPolicy,
    /// <summary>Testing: deliver as without a policy, report what enforce would have refused.</summary>
    Testing,
}

public static class StsHostPolicy
{
    public static StsHostKind ForHost(StsPolicy? policy, string mxHost) => policy switch
    {
        null or { Mode: StsMode.None } => StsHostKind.NotApplicable,
        { Mode: StsMode.Testing } => StsHostKind.Testing,
        _ => policy.Allows(mxHost) ? StsHostKind.Enforce : StsHostKind.NotInPolicy,
    };
}
