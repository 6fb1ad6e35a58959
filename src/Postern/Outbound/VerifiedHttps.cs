using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Postern.Dns;
using Postern.Policy;

namespace Postern.Outbound;

/// <summary>
/// An HTTPS client handler for Postern's own requests (MTA-STS policies, TLS reports):
/// addresses from Postern's resolver, TLS 1.2+, the server's certificate checked against
/// the enabled CA lists for exactly the host asked for, no redirects, no cookies, no
/// decompression, an optional proxy. The check's outcome is handed to <paramref name="onCheck"/>
/// so a refused certificate can be told apart from other failures.
/// </summary>
public static class VerifiedHttps
{
    public static SocketsHttpHandler Handler(IDnsResolver dns, string host, Func<X509Certificate2Collection> trustedRoots, VerificationOptions options,
        string? proxy, Action<CertificateCheck, string?> onCheck) => new()
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseProxy = proxy is not null,
        Proxy = proxy is not null ? new WebProxy(proxy) : null,
        ConnectCallback = async (context, token) =>
        {
            // Postern's resolver, not the system's: the same answers as every other decision.
            var name = context.DnsEndPoint.Host;
            var addresses = IPAddress.TryParse(name, out var literal) ? [literal]
                : (await dns.QueryAddressesAsync(name, false, token).ConfigureAwait(false)).Records
                    .Concat((await dns.QueryAddressesAsync(name, true, token).ConfigureAwait(false)).Records).ToList();
            if (addresses.Count == 0) throw new HttpRequestException($"no address for {name}");
            var socket = new Socket(addresses[0].AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(addresses[0], context.DnsEndPoint.Port), token).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
            {
                if (certificate is null) { onCheck(CertificateCheck.NoCertificate, null); return false; }
                var leaf = new X509Certificate2(certificate);
                var extra = chain?.ChainPolicy.ExtraStore.Cast<X509Certificate2>().ToList() ?? [];
                var check = CertificateVerifier.Verify(leaf, extra, trustedRoots(), [host], IdentityRule.SubjectAltNameOnly, DateTimeOffset.UtcNow, options);
                onCheck(check, SmtpClientConnection.PeerIdentity(leaf));
                return check.Verified;
            },
        },
    };

    /// <summary>Why a request failed, in one line: refused, TLS, the certificate, a timeout.</summary>
    public static string Describe(HttpRequestException e) =>
        e.InnerException is SocketException se ? (se.SocketErrorCode == SocketError.ConnectionRefused ? "connection refused" : se.Message)
        : e.InnerException is AuthenticationException ae ? "TLS handshake failed: " + SmtpClientException.Describe(ae)
        : e.Message;
}
