using MimeKit;

namespace Postern.Outbound;

/// <summary>
/// RFC 6152 §3: an 8BITMIME message for a peer without 8BITMIME is converted to 7-bit MIME
/// (quoted-printable or base64 bodies), or returned to its sender when that is impossible
/// (raw 8-bit header text, which MIME cannot carry in 7 bits without rewriting it).
/// </summary>
public static class MimeDowngrade
{
    public static byte[]? ToSevenBit(byte[] message)
    {
        if (IsSevenBit(message)) return message;
        MimeMessage parsed;
        try { parsed = MimeMessage.Load(new MemoryStream(message, writable: false)); }
        catch (FormatException) { return null; }
        parsed.Prepare(EncodingConstraint.SevenBit, 998);
        using var output = new MemoryStream(message.Length * 4 / 3 + 1024);
        parsed.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos, International = false }, output);
        var converted = output.ToArray();
        return IsSevenBit(converted) ? converted : null;
    }

    public static bool IsSevenBit(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyInRange((byte)0x80, (byte)0xFF) < 0 && bytes.IndexOf((byte)0) < 0;
}
