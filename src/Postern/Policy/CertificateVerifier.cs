using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;
using Postern.Dns;

namespace Postern.Policy;

public enum IdentityRule
{
    /// <summary>Levels 4 and 5: the subject CN or any SAN dNSName may match a reference identifier.</summary>
    AnyNameOrCommonName,
    /// <summary>Level 6: SAN dNSNames only when present; the CN only when there is no dNSName SAN.</summary>
    SubjectAltNameFirst,
    /// <summary>MTA-STS (RFC 8461 §4.2 by RFC 6125 DNS-IDs): SAN dNSNames only, never the CN.</summary>
    SubjectAltNameOnly,
}

public sealed record VerificationOptions(bool RequireFqdn = false, bool CheckSignatureAlgorithm = false);

/// <summary>The outcome of a certificate check: chain to a trusted CA, and a name match.</summary>
public sealed record CertificateCheck(bool ChainTrusted, bool NameMatched, string? Problem, IReadOnlyList<string> PresentedIdentities)
{
    public bool Verified => ChainTrusted && NameMatched && Problem is null;
    public string Reason => Problem ?? (Verified ? "ok" : "unknown");

    public static readonly CertificateCheck NoCertificate = new(false, false, "no peer certificate", []);
}

/// <summary>
/// Certificate verification as a pure function of (presented chain, trusted roots, reference
/// identifiers, rule, time, options): RFC 5280 path building against exactly the enabled CA
/// lists, and RFC 6125 name matching with a wildcard allowed in the left-most label only.
/// </summary>
public static class CertificateVerifier
{
    private static readonly HashSet<string> WeakSignatures =
    [
        "1.2.840.113549.1.1.4",  // md5WithRSAEncryption
        "1.2.840.113549.1.1.5",  // sha1WithRSAEncryption
        "1.2.840.10045.4.1",     // ecdsa-with-SHA1
        "1.2.840.10040.4.3",     // dsa-with-sha1
    ];

    public static CertificateCheck Verify(X509Certificate2 leaf, IEnumerable<X509Certificate2> presentedIntermediates,
        X509Certificate2Collection trustedRoots, IReadOnlyList<string> referenceIdentifiers, IdentityRule rule,
        DateTimeOffset now, VerificationOptions options)
    {
        var identities = PresentedIdentities(leaf, rule);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trustedRoots);
        foreach (var c in presentedIntermediates)
            if (!c.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)) chain.ChainPolicy.ExtraStore.Add(c);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        var chainOk = chain.Build(leaf);
        string? problem = chainOk ? null : ChainProblem(chain, leaf, now);

        if (problem is null && options.CheckSignatureAlgorithm)
        {
            // Every signature the trust anchor vouches for counts; the anchor's own does not.
            var count = chain.ChainElements.Count;
            for (var i = 0; i < Math.Max(1, count - 1) && problem is null; i++)
            {
                var cert = chain.ChainElements[i].Certificate;
                if (WeakSignatures.Contains(cert.SignatureAlgorithm.Value ?? ""))
                    problem = $"weak signature algorithm {cert.SignatureAlgorithm.FriendlyName} on {cert.Subject}";
            }
        }

        if (options.RequireFqdn && problem is null)
        {
            var notFqdn = identities.FirstOrDefault(n => !IsFqdn(n));
            if (notFqdn is not null) problem = $"presented name '{notFqdn}' is not a fully qualified domain name";
        }

        var nameOk = identities.Any(id => referenceIdentifiers.Any(reference => Matches(id, reference)));
        if (!nameOk && problem is null)
            problem = $"peer cert does not match domain {referenceIdentifiers.LastOrDefault() ?? "(none)"}";
        return new CertificateCheck(chainOk, nameOk, problem, identities);
    }

    private static string ChainProblem(X509Chain chain, X509Certificate2 leaf, DateTimeOffset now)
    {
        var flags = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (f, s) => f | s.Status);
        if (flags.HasFlag(X509ChainStatusFlags.NotTimeValid))
            return now < leaf.NotBefore ? "certificate is not yet valid" : "certificate has expired";
        if (leaf.SubjectName.RawData.AsSpan().SequenceEqual(leaf.IssuerName.RawData) && chain.ChainElements.Count == 1)
            return "self signed certificate";
        if (flags.HasFlag(X509ChainStatusFlags.PartialChain) || flags.HasFlag(X509ChainStatusFlags.UntrustedRoot))
            return "unable to get local issuer certificate (not issued by a trusted CA)";
        return "certificate chain invalid: " + string.Join(", ", chain.ChainStatus.Select(s => s.Status));
    }

    /// <summary>The names the certificate presents under the given rule.</summary>
    public static IReadOnlyList<string> PresentedIdentities(X509Certificate2 certificate, IdentityRule rule)
    {
        var san = DnsNames(certificate);
        var cn = certificate.GetNameInfo(X509NameType.SimpleName, false);
        var names = new List<string>(san);
        if (!string.IsNullOrEmpty(cn) && rule != IdentityRule.SubjectAltNameOnly && (rule == IdentityRule.AnyNameOrCommonName || san.Count == 0)) names.Add(cn);
        return names;
    }

    public static List<string> DnsNames(X509Certificate2 certificate)
    {
        var names = new List<string>();
        foreach (var ext in certificate.Extensions)
            if (ext is X509SubjectAlternativeNameExtension san) names.AddRange(san.EnumerateDnsNames());
        return names;
    }

    /// <summary>RFC 6125 §6.4: case-insensitive; "*" only as the whole left-most label, matching exactly one label.</summary>
    public static bool Matches(string presented, string reference)
    {
        presented = presented.TrimEnd('.').ToLowerInvariant();
        reference = reference.TrimEnd('.').ToLowerInvariant();
        if (presented.Length == 0 || reference.Length == 0) return false;
        if (!presented.StartsWith("*.", StringComparison.Ordinal))
            return !presented.Contains('*') && presented == reference;
        var suffix = presented[1..];   // ".example.com"
        if (suffix.Count(c => c == '.') < 2) return false;   // no "*.com"
        if (!reference.EndsWith(suffix, StringComparison.Ordinal)) return false;
        var label = reference[..^suffix.Length];
        return label.Length > 0 && !label.Contains('.');
    }

    private static bool IsFqdn(string name)
    {
        var n = name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name;
        return n.Contains('.') && DomainNames.IsValidHostname(n);
    }
}
