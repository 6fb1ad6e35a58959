using MimeKit;

namespace Postern.Outbound;

/// <summary>
/// RFC 6152 §3: an 8BITMIME message for a peer without 8BITMIME is converted to 7-bit MIME
/// (quoted-printable or base64 bodies), or returned to its sender when that is impossible
/// (raw 8-bit header text, which MIME cannot carry in 7 bits without rewriting it).
/// </summary>
public static class MimeDowngrade
{
    public static ReadOnlyMemory<byte>? ToSevenBit(ReadOnlyMemory<byte> message)
    {
        if (IsSevenBit(message.Span)) return message;
        MimeMessage parsed;
        var input = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(message, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false) : new MemoryStream(message.ToArray(), writable: false);
        try { parsed = MimeMessage.Load(input); }
        catch (FormatException) { return null; }
        parsed.Prepare(EncodingConstraint.SevenBit, 998);
        using var output = new MemoryStream(message.Length * 4 / 3 + 1024);
        parsed.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos, International = false }, output);
        var converted = output.ToArray();
        if (!IsSevenBit(converted)) return null;
        return converted;
    }

    public static bool IsSevenBit(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyInRange((byte)0x80, (byte)0xFF) < 0 && bytes.IndexOf((byte)0) < 0;
}
