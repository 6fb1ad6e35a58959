using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Postern.Security;

public enum BounceTagCheck { Untagged, Valid, BadTag, Expired }

/// <summary>
/// Bounce Verification (address tagging, in the BATV "prvs" form): outbound envelope senders
/// become prvs=KDDDSSSSSS=local@domain, K the key number, DDD the day the tag expires (days
/// since 1970, mod 1000), SSSSSS the first three bytes of an HMAC-SHA256 over K, DDD and the
/// address. A real bounce comes back to a tagged address; backscatter from forged senders
/// comes to untagged or badly tagged ones. Pure apart from the key, which is a 0600 file.
/// </summary>
public sealed class BounceTagger
{
    private const char KeyNumber = '0';
    private readonly byte[] _key;
    public int MaxAgeDays { get; }

    public BounceTagger(byte[] key, int maxAgeDays)
    {
        if (key.Length < 16) throw new ArgumentException("the tagging key must have at least 16 bytes", nameof(key));
        if (maxAgeDays is < 1 or > 365) throw new ArgumentOutOfRangeException(nameof(maxAgeDays));
        _key = key;
        MaxAgeDays = maxAgeDays;
    }

    /// <summary>The key in &lt;data&gt;/bounce-verification.key (32 random bytes, made on first use, 0600).</summary>
    public static BounceTagger LoadOrCreate(string dataDirectory, int maxAgeDays)
    {
        var path = Path.Combine(dataDirectory, "bounce-verification.key");
        if (!File.Exists(path))
        {
            var fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
            ServerCertificate.WritePrivate(path, fresh + "\n");
        }
        byte[] key;
        try { key = Convert.FromBase64String(File.ReadAllText(path).Trim()); }
        catch (FormatException) { throw new CertificateException($"bounce verification key {path} is not base64"); }
        return new BounceTagger(key, maxAgeDays);
    }

    private static int Day(DateTimeOffset t) => (int)(t.ToUnixTimeSeconds() / 86400);

    /// <summary>The tagged form of a sender. Quoted local parts and already tagged senders stay as they are.</summary>
    public string Tag(string address, DateTimeOffset now)
    {
        if (address.Length == 0 || address.StartsWith('"') || address.StartsWith("prvs=", StringComparison.OrdinalIgnoreCase)) return address;
        var expires = ((Day(now) + MaxAgeDays) % 1000).ToString("D3", CultureInfo.InvariantCulture);
        return $"prvs={KeyNumber}{expires}{Signature(KeyNumber, expires, address)}={address}";
    }

    /// <summary>Checks a recipient of a bounce; returns the address without its tag when it is valid.</summary>
    public (BounceTagCheck Check, string Address) Check(string address, DateTimeOffset now)
    {
        if (!address.StartsWith("prvs=", StringComparison.OrdinalIgnoreCase)) return (BounceTagCheck.Untagged, address);
        var rest = address[5..];
        var eq = rest.IndexOf('=');
        if (eq != 10) return (BounceTagCheck.BadTag, address);
        var tag = rest[..10];
        var original = rest[11..];
        if (original.Length == 0 || !tag.All(char.IsAsciiHexDigit) || tag[0] != KeyNumber) return (BounceTagCheck.BadTag, address);
        var expires = tag.Substring(1, 3);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(tag[4..].ToLowerInvariant()), Encoding.ASCII.GetBytes(Signature(tag[0], expires, original))))
            return (BounceTagCheck.BadTag, address);
        // Days left until the expiry day, on the 1000-day circle; more than the maximum age means it passed.
        var left = (int.Parse(expires, CultureInfo.InvariantCulture) - Day(now) % 1000 + 1000) % 1000;
        return left > MaxAgeDays ? (BounceTagCheck.Expired, address) : (BounceTagCheck.Valid, original);
    }

    private string Signature(char keyNumber, string expires, string address)
    {
        var mac = HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes($"{keyNumber}{expires}{address.ToLowerInvariant()}"));
        return Convert.ToHexString(mac, 0, 3).ToLowerInvariant();
    }
}
