using System.Text;
using Postern.Dns;

namespace Postern.Inbound;

/// <summary>RFC 5321 path and parameter syntax shared by the server and the client.</summary>
public static class SmtpSyntax
{
    /// <summary>
    /// Parses "&lt;path&gt; [params]" after "MAIL FROM:" or "RCPT TO:". Source routes are
    /// dropped as RFC 5321 §4.1.1.3 allows. Returns an error text or null.
    /// </summary>
    public static string? ParsePath(string text, bool allowNull, out string address, out List<(string Key, string? Value)> parameters)
    {
        address = "";
        parameters = new();
        text = text.TrimStart();
        if (!text.StartsWith('<')) return "501 5.5.4 Syntax: path must be enclosed in <>";
        var close = FindClosingBracket(text);
        if (close < 0) return "501 5.5.4 Syntax: missing >";
        var path = text[1..close];
        var colon = path.IndexOf(':');
        if (path.StartsWith('@') && colon > 0) path = path[(colon + 1)..];   // drop source route
        foreach (var p in text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = p.IndexOf('=');
            parameters.Add(eq < 0 ? (p.ToUpperInvariant(), null) : (p[..eq].ToUpperInvariant(), p[(eq + 1)..]));
        }
        if (path.Length == 0)
        {
            if (allowNull) return null;
            return "501 5.1.3 Bad recipient address syntax";
        }
        if (!IsValidMailbox(path)) return "501 5.1.3 Bad address syntax";
        address = path;
        return null;
    }

    private static int FindClosingBracket(string text)
    {
        var quoted = false;
        for (var i = 1; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\\' && quoted) { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (c == '>' && !quoted) return i;
        }
        return -1;
    }

    public static bool IsValidMailbox(string mailbox)
    {
        var at = mailbox.LastIndexOf('@');
        if (at <= 0 || at == mailbox.Length - 1 || mailbox.Length > 512) return false;
        var local = mailbox[..at];
        var domain = mailbox[(at + 1)..];
        if (local.Length > 256) return false;
        foreach (var c in local) if (c < 33 && c != ' ' || c == 127) return false;
        if (local.Contains(' ') && !(local.StartsWith('"') && local.EndsWith('"'))) return false;
        if (domain.StartsWith('[') && domain.EndsWith(']')) return true;   // address literal
        return DomainNames.Normalize(domain) is not null;
    }

    public static string DomainOf(string mailbox) => mailbox[(mailbox.LastIndexOf('@') + 1)..];

    public static bool IsAscii(string s)
    {
        foreach (var c in s) if (c > 127) return false;
        return true;
    }

    /// <summary>RFC 3461 xtext: "+XX" escapes hex octets.</summary>
    public static string? DecodeXtext(string text)
    {
        var bytes = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '+')
            {
                if (i + 2 >= text.Length || !byte.TryParse(text.AsSpan(i + 1, 2), System.Globalization.NumberStyles.HexNumber, null, out var b)) return null;
                bytes.Add(b);
                i += 2;
            }
            else if (c is < '!' or > '~' or '=') return null;
            else bytes.Add((byte)c);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public static string EncodeXtext(string text)
    {
        var sb = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= (byte)'!' and <= (byte)'~' and not (byte)'+' and not (byte)'=') sb.Append((char)b);
            else sb.Append('+').Append(b.ToString("X2"));
        }
        return sb.ToString();
    }
}
