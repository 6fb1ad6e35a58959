using System.Net;
using System.Net.Sockets;
using Postern.Dns;

namespace Postern.Inbound;

/// <summary>One HAT sender entry: an IP, a CIDR range, a host name or a ".domain" pattern.</summary>
public sealed class SenderPattern
{
    private readonly IPAddress? _network;
    private readonly int _prefixLength;
    private readonly string? _hostPattern;

    private SenderPattern(IPAddress network, int prefix) { _network = network; _prefixLength = prefix; }
    private SenderPattern(string hostPattern) { _hostPattern = hostPattern.ToLowerInvariant(); }

    public bool NeedsHostName => _hostPattern is not null;

    public static bool TryParse(string text, out SenderPattern pattern)
    {
        pattern = null!;
        text = text.Trim();
        var slash = text.IndexOf('/');
        if (slash > 0)
        {
            if (!IPAddress.TryParse(text[..slash], out var net) || !int.TryParse(text[(slash + 1)..], out var prefix)) return false;
            var max = net.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            if (prefix < 0 || prefix > max) return false;
            pattern = new SenderPattern(net, prefix);
            return true;
        }
        if (IPAddress.TryParse(text, out var ip))
        {
            pattern = new SenderPattern(ip, ip.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }
        if (DomainNames.IsValidDomainPattern(text))
        {
            pattern = new SenderPattern(text);
            return true;
        }
        return false;
    }

    /// <param name="verifiedHostName">Forward-confirmed reverse DNS name of the client, if any.</param>
    public bool Matches(IPAddress client, string? verifiedHostName)
    {
        if (_hostPattern is not null)
            return verifiedHostName is not null && DomainNames.MatchesPattern(verifiedHostName, _hostPattern);
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        if (client.AddressFamily != _network!.AddressFamily) return false;
        var a = client.GetAddressBytes();
        var b = _network.GetAddressBytes();
        var bits = _prefixLength;
        for (var i = 0; i < a.Length && bits > 0; i++, bits -= 8)
        {
            var mask = bits >= 8 ? 0xFF : (byte)(0xFF << (8 - bits));
            if ((a[i] & mask) != (b[i] & mask)) return false;
        }
        return true;
    }
}
