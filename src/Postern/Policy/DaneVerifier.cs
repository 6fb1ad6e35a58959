using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Policy;

/// <summary>One TLSA record (RFC 6698 §2): certificate usage, selector, matching type, association data.</summary>
public sealed record TlsaRecord(byte Usage, byte Selector, byte MatchingType, byte[] Data)
{
    public const byte PkixTa = 0, PkixEe = 1, DaneTa = 2, DaneEe = 3;

    /// <summary>Why SMTP cannot use this record (RFC 7672 §3.1), or null when it can.</summary>
    public string? UnusableReason => Usage switch
    {
        PkixTa or PkixEe => $"usage {Usage} (PKIX) is unusable for SMTP",
        > DaneEe => $"unknown usage {Usage}",
        _ => Selector > 1 ? $"unknown selector {Selector}"
            : MatchingType switch
            {
                0 => Data.Length == 0 ? "empty association data" : null,
                1 => Data.Length == 32 ? null : $"SHA-256 digest of {Data.Length} bytes",
                2 => Data.Length == 64 ? null : $"SHA-512 digest of {Data.Length} bytes",
                _ => $"unknown matching type {MatchingType}",
            },
    };

    public bool IsUsable => UnusableReason is null;

    /// <summary>Presentation form, digest shortened: "3 1 1 9f86d081...".</summary>
    public override string ToString()
    {
        var hex = Convert.ToHexString(Data).ToLowerInvariant();
        return $"{Usage} {Selector} {MatchingType} {(hex.Length > 16 ? hex[..16] + "..." : hex)}";
    }

    /// <summary>The whole presentation form, "3 1 1 9f86d081…" with every byte (TLS reports' policy strings).</summary>
    public string Presentation => $"{Usage} {Selector} {MatchingType} {Convert.ToHexStringLower(Data)}";

    /// <summary>Whether this record's selector and matching type select the given certificate.</summary>
    public bool Matches(X509Certificate2 certificate)
    {
        var selected = Selector == 0 ? certificate.RawData : certificate.PublicKey.ExportSubjectPublicKeyInfo();
        var digest = MatchingType switch
        {
            0 => selected,
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => null,
        };
        return digest is not null && CryptographicOperations.FixedTimeEquals(digest, Data);
    }
}

/// <summary>The outcome of checking a presented chain against usable TLSA records.</summary>
/// <param name="Depth">0 = the leaf (DANE-EE), 1+ = the trust anchor's place in the chain (DANE-TA).</param>
public sealed record DaneCheck(bool Matched, TlsaRecord? Record, int Depth, string Reason)
{
    public static DaneCheck NoCertificate => new(false, null, -1, "no peer certificate");
}

/// <summary>
/// RFC 7672 §3.1 certificate matching as a pure function of (presented chain, usable TLSA
/// records, reference identifiers, time). DANE-EE(3) matches the leaf alone: names and
/// dates do not matter. DANE-TA(2) needs a certificate the server sent to match, a valid
/// chain (signatures, dates) from the leaf up to it, and the leaf to carry one of the
/// reference identifiers (the TLSA base domain, RFC 7672 §3.2.3) by RFC 6125 rules.
/// </summary>
public static class DaneVerifier
{
    public static DaneCheck Verify(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, IReadOnlyList<TlsaRecord> records,
        IReadOnlyList<string> referenceIdentifiers, DateTimeOffset now)
    {
        var usable = records.Where(r => r.IsUsable).ToList();
        foreach (var ee in usable.Where(r => r.Usage == TlsaRecord.DaneEe))
            if (ee.Matches(leaf)) return new DaneCheck(true, ee, 0, $"TLSA {ee} matched the end-entity certificate (depth 0)");

        var others = presented.Where(c => !c.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)).ToList();
        var tas = usable.Where(r => r.Usage == TlsaRecord.DaneTa).ToList();
        string? taProblem = null;
        foreach (var candidate in others)
        {
            var record = tas.FirstOrDefault(r => r.Matches(candidate));
            if (record is null) continue;
            var (depth, problem) = ChainTo(leaf, candidate, others, now);
            if (problem is not null) { taProblem ??= $"TLSA {record} matched {candidate.Subject}, but {problem}"; continue; }
            var names = CertificateVerifier.PresentedIdentities(leaf, IdentityRule.SubjectAltNameFirst);
            if (!names.Any(n => referenceIdentifiers.Any(reference => CertificateVerifier.Matches(n, reference))))
            {
                taProblem ??= $"TLSA {record} matched the trust anchor at depth {depth}, but the certificate names ({string.Join(", ", names)}) do not match {string.Join(" or ", referenceIdentifiers)}";
                continue;
            }
            return new DaneCheck(true, record, depth, $"TLSA {record} matched the trust anchor {candidate.Subject} at depth {depth}");
        }
        if (taProblem is not null) return new DaneCheck(false, null, -1, taProblem);
        var kinds = tas.Count > 0 && usable.Count > tas.Count ? "the end-entity certificate or any certificate of the chain"
            : tas.Count > 0 ? "any certificate the server sent (a DANE-TA trust anchor must be in the chain it sends)"
            : "the end-entity certificate";
        return new DaneCheck(false, null, -1, $"no usable TLSA record ({string.Join("; ", usable)}) matched {kinds}");
    }

    /// <summary>Builds the chain from the leaf to the trust anchor with the server's certificates only.</summary>
    private static (int Depth, string? Problem) ChainTo(X509Certificate2 leaf, X509Certificate2 anchor, IReadOnlyList<X509Certificate2> presented, DateTimeOffset now)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(anchor);
        foreach (var c in presented)
            if (!ReferenceEquals(c, anchor)) chain.ChainPolicy.ExtraStore.Add(c);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.Build(leaf);
        // An anchor that is not self-signed leaves the chain "partial" by .NET's reckoning; it
        // is complete for DANE when it ends at the anchor and nothing else is wrong.
        var flags = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (f, s) => f | s.Status) & ~X509ChainStatusFlags.PartialChain;
        var depth = -1;
        for (var i = 0; i < chain.ChainElements.Count; i++)
            if (chain.ChainElements[i].Certificate.RawDataMemory.Span.SequenceEqual(anchor.RawDataMemory.Span)) depth = i;
        if (depth < 1) return (-1, "the chain the server sent does not lead from the leaf to it");
        if (flags.HasFlag(X509ChainStatusFlags.NotTimeValid)) return (depth, "a certificate of the chain has expired or is not yet valid");
        if (flags != X509ChainStatusFlags.NoError) return (depth, "the chain is invalid: " + flags);
        return (depth, null);
    }
}
