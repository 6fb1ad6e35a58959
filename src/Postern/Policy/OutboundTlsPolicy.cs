using Postern.Admin;

namespace Postern.Policy;

public enum TlsStep { ContinueInClear, StartTls, Fail }

/// <summary>What to do at one point of the outbound TLS negotiation, and why.</summary>
public sealed record TlsDecision(TlsStep Step, string? Reason = null);

/// <summary>How a TLS session ended up after the handshake: deliver over it, or not.</summary>
public sealed record TlsVerdict(bool Deliver, bool Verified, string LogText);

/// <summary>
/// The six Destination Controls TLS levels as pure functions of (level, what the peer
/// offered, what the certificate check found). The SMTP client does the I/O and asks these
/// at each step; the DANE and MTA-STS engines will sit in front of them.
/// </summary>
/// <summary>How a host's certificate is authenticated.</summary>
public enum HostAuthentication { None, Pkix, Dane }

/// <summary>What TLS one host must give: the level to negotiate by and how to authenticate.</summary>
/// <param name="References">Names the certificate must carry; null = the level's own (MX host and domain).</param>
/// <param name="StsEnforced">An enforced MTA-STS policy: TLS 1.2 or newer, SAN names, this MX host's name only (RFC 8461 §4.2).</param>
/// <param name="StsTesting">A testing MTA-STS policy: deliver by the level, report what enforce would have refused.</param>
public sealed record HostTlsRequirement(TlsLevel Level, HostAuthentication Authentication, string Source,
    IReadOnlyList<string>? References = null, bool StsEnforced = false, bool StsTesting = false);

public static class OutboundTlsPolicy
{
    /// <summary>
    /// The one place where DANE's decision for a host and the destination's TLS level meet
    /// (SPEC §3: DANE wins). Usable TLSA records: TLS mandatory, authenticated by DANE; a
    /// secure RRset of unusable records: TLS mandatory, unauthenticated; otherwise the level.
    /// The MTA-STS engine adds its policy here, behind DANE.
    /// </summary>
    public static HostTlsRequirement ForHost(EffectiveDestination destination, DaneHostPolicy dane, StsHostKind sts = StsHostKind.NotApplicable, string? mxHost = null) =>
        dane.Kind switch
        {
            // DANE wins: its success skips MTA-STS, and its failure is never overridden by it.
            DaneHostKind.Authenticate => new(TlsLevel.Required, HostAuthentication.Dane, "DANE: " + dane.Reason),
            DaneHostKind.EncryptOnly => new(TlsLevel.Required, HostAuthentication.None, "DANE: " + dane.Reason),
            // Never reached through delivery (such hosts are skipped), but never a path to clear text either.
            DaneHostKind.Unusable => new(TlsLevel.Required, HostAuthentication.Dane, "DANE: host unusable: " + dane.Reason),
            _ => sts switch
            {
                StsHostKind.Enforce => new(TlsLevel.RequiredVerifyHostedDomains, HostAuthentication.Pkix, "MTA-STS policy (enforce)", [mxHost!], StsEnforced: true),
                StsHostKind.Testing => new(destination.Tls, Verifies(destination.Tls) ? HostAuthentication.Pkix : HostAuthentication.None, destination.TlsSource, StsTesting: true),
                _ => new(destination.Tls, Verifies(destination.Tls) ? HostAuthentication.Pkix : HostAuthentication.None, destination.TlsSource),
            },
        };

    public static bool RequiresTls(TlsLevel level) =>
        level is TlsLevel.Required or TlsLevel.RequiredVerify or TlsLevel.RequiredVerifyHostedDomains;

    public static bool Verifies(TlsLevel level) =>
        level is TlsLevel.PreferredVerify or TlsLevel.RequiredVerify or TlsLevel.RequiredVerifyHostedDomains;

    /// <summary>After EHLO (or its failure): try STARTTLS, go on in clear, or give up on this host.</summary>
    public static TlsDecision AfterEhlo(TlsLevel level, bool esmtp, bool startTlsAdvertised)
    {
        if (level is TlsLevel.No or TlsLevel.Default) return new(TlsStep.ContinueInClear);
        string? problem = !esmtp ? "peer without ESMTP (EHLO not understood)"
            : !startTlsAdvertised ? "STARTTLS not advertised"
            : null;
        if (problem is null) return new(TlsStep.StartTls);
        return RequiresTls(level) ? new(TlsStep.Fail, problem) : new(TlsStep.ContinueInClear, problem);
    }

    /// <summary>STARTTLS was answered with something other than 220: only the preferred levels go on in clear.</summary>
    public static TlsDecision AfterStartTlsRefused(TlsLevel level, string reply)
    {
        var reason = $"STARTTLS answered with an error: {reply}";
        return RequiresTls(level) ? new(TlsStep.Fail, reason) : new(TlsStep.ContinueInClear, reason);
    }

    /// <summary>The handshake completed; the certificate check decides for the verifying levels.</summary>
    public static TlsVerdict AfterHandshake(TlsLevel level, CertificateCheck check) => level switch
    {
        TlsLevel.Preferred or TlsLevel.Required => new(true, check.Verified, check.Verified ? "certificate verified" : "certificate not verified (not required at this level)"),
        TlsLevel.PreferredVerify => new(true, check.Verified, check.Verified ? "certificate verified" : $"verify error: {check.Reason}; delivering encrypted (Preferred (Verify))"),
        _ => check.Verified ? new(true, true, "certificate verified") : new(false, false, $"TLS deferring: verify error: {check.Reason}"),
    };

    /// <summary>The identity rule a level uses (SPEC §2): hosted-domain verification takes SAN names first.</summary>
    public static IdentityRule IdentityRuleFor(TlsLevel level) =>
        level == TlsLevel.RequiredVerifyHostedDomains ? IdentityRule.SubjectAltNameFirst : IdentityRule.AnyNameOrCommonName;
}
