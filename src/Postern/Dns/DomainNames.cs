using System.Globalization;

namespace Postern.Dns;

public static class DomainNames
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };

    /// <summary>Lower-case A-label form of a domain; null if it is not a valid domain.</summary>
    public static string? Normalize(string domain)
    {
        domain = domain.Trim().TrimEnd('.');
        if (domain.Length == 0) return null;
        try
        {
            var ascii = domain.All(c => c < 128) ? domain : Idn.GetAscii(domain);
            ascii = ascii.ToLowerInvariant();
            return IsValidHostname(ascii) ? ascii : null;
        }
        catch (ArgumentException) { return null; }
    }

    public static bool IsValidHostname(string name)
    {
        name = name.TrimEnd('.');
        if (name.Length is 0 or > 253) return false;
        foreach (var label in name.Split('.'))
        {
            if (label.Length is 0 or > 63) return false;
            if (label[0] == '-' || label[^1] == '-') return false;
            foreach (var c in label)
                if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_')) return false;
        }
        return true;
    }

    /// <summary>"example.com" or ".example.com" (subdomains).</summary>
    public static bool IsValidDomainPattern(string pattern) =>
        IsValidHostname(pattern.StartsWith('.') ? pattern[1..] : pattern);

    /// <summary>
    /// How specific a pattern is, for choosing among several that match one domain:
    /// "example.com" beats ".example.com", and a longer suffix beats a shorter one.
    /// </summary>
    public static int PatternSpecificity(string pattern) => pattern.Length * 2 + (pattern.StartsWith('.') ? 0 : 1);

    /// <summary>Exact match for "example.com"; proper subdomains for ".example.com".</summary>
    public static bool MatchesPattern(string domain, string pattern)
    {
        if (pattern.StartsWith('.'))
            return domain.EndsWith(pattern, StringComparison.OrdinalIgnoreCase) && domain.Length > pattern.Length;
        return string.Equals(domain, pattern, StringComparison.OrdinalIgnoreCase);
    }
}
