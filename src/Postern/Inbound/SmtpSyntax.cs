using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Dns;

namespace Postern.Inbound;

/// <summary>
/// RFC 5321 command, path and parameter syntax shared by the server and the client
/// (with the RFC 6531 extension for UTF-8). Everything a peer sends passes through here
/// before it reaches a header, a log line or a reply.
/// </summary>
public static class SmtpSyntax
{
    private static readonly Encoding StrictUtf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
    /// <summary>RFC 5321 §4.5.3.1.1 says 64; real mail has longer ones, so we allow more but not without bound.</summary>
    public const int MaxLocalPartLength = 256;

    /// <summary>
    /// Decodes one command line (framing already removed). Returns the reply for a line that
    /// must not be interpreted: bare CR or LF, control characters, invalid UTF-8. The
    /// offending bytes never appear in the reply.
    /// </summary>
    public static string? DecodeCommandLine(ReadOnlySpan<byte> bytes, bool bareNewline, out string line)
    {
        line = "";
        if (bareNewline) return "501 5.5.2 Syntax error: bare CR or LF in command";
        foreach (var b in bytes)
            if (b < 0x20 || b == 0x7F) return "501 5.5.2 Syntax error: control character in command";
        try { line = StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return "501 5.5.2 Syntax error: invalid UTF-8 in command"; }
        foreach (var c in line)
            if (c is >= '\u0080' and <= '\u009F') { line = ""; return "501 5.5.2 Syntax error: control character in command"; }
        return null;
    }

    /// <summary>
    /// Parses "&lt;path&gt; [params]" after "MAIL FROM:" or "RCPT TO:". Source routes are
    /// dropped as RFC 5321 §4.1.1.3 allows. Returns an error reply or null.
    /// </summary>
    public static string? ParsePath(string text, bool allowNull, out string address, out List<(string Key, string? Value)> parameters)
    {
        address = "";
        parameters = new();
        text = text.TrimStart(' ');
        if (!text.StartsWith('<')) return "501 5.5.4 Syntax: path must be enclosed in <>";
        var close = FindClosingBracket(text);
        if (close < 0) return "501 5.5.4 Syntax: missing >";
        var path = text[1..close];
        if (path.StartsWith('@'))
        {
            // A source route "@a,@b:" precedes the mailbox; each hop must be a domain.
            var colon = path.IndexOf(':');
            if (colon < 0) return "501 5.1.3 Bad address syntax";
            foreach (var hop in path[..colon].Split(','))
                if (hop.Length < 2 || hop[0] != '@' || !IsDomain(hop[1..])) return "501 5.1.3 Bad address syntax";
            path = path[(colon + 1)..];
        }
        var rest = text[(close + 1)..];
        if (rest.Length > 0 && rest[0] != ' ') return "501 5.5.4 Syntax: parameters must follow the path after a space";
        var error = ParseParameters(rest, parameters);
        if (error is not null) return error;
        if (path.Length == 0)
        {
            if (allowNull) return null;
            return "501 5.1.3 Bad recipient address syntax";
        }
        if (!IsValidMailbox(path)) return "501 5.1.3 Bad address syntax";
        address = path;
        return null;
    }

    /// <summary>
    /// RFC 5321 §4.1.2 esmtp-param: keyword ["=" value], keyword = ALPHA/DIGIT *(ALPHA/DIGIT/"-"),
    /// value = 1*(%d33-60 / %d62-126) (and UTF-8 with SMTPUTF8). A keyword may appear once.
    /// </summary>
    public static string? ParseParameters(string text, List<(string Key, string? Value)> parameters)
    {
        foreach (var p in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = p.IndexOf('=');
            var key = (eq < 0 ? p : p[..eq]).ToUpperInvariant();
            string? value = eq < 0 ? null : p[(eq + 1)..];
            if (!IsEsmtpKeyword(key)) return "501 5.5.4 Syntax: bad parameter name";
            if (value is not null && !IsEsmtpValue(value)) return $"501 5.5.4 Syntax: bad value for parameter {key}";
            if (parameters.Exists(x => x.Key == key)) return $"501 5.5.4 Syntax: parameter {key} given twice";
            parameters.Add((key, value));
        }
        return null;
    }

    public static bool IsEsmtpKeyword(string key)
    {
        if (key.Length is 0 or > 64 || !char.IsAsciiLetterOrDigit(key[0])) return false;
        foreach (var c in key) if (!char.IsAsciiLetterOrDigit(c) && c != '-') return false;
        return true;
    }

    public static bool IsEsmtpValue(string value)
    {
        if (value.Length == 0) return false;
        foreach (var c in value) if (c is < '!' or '=' or '\u007F' || c is >= '\u0080' and <= '\u009F') return false;
        return true;
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

    /// <summary>
    /// RFC 5321 Mailbox = Local-part "@" ( Domain / address-literal ), Local-part =
    /// Dot-string / Quoted-string; RFC 6531 adds UTF-8 to atext, qtext and domains.
    /// </summary>
    public static bool IsValidMailbox(string mailbox)
    {
        var at = mailbox.LastIndexOf('@');
        if (at <= 0 || at == mailbox.Length - 1 || mailbox.Length > 512) return false;
        var local = mailbox[..at];
        var domain = mailbox[(at + 1)..];
        if (Encoding.UTF8.GetByteCount(local) > MaxLocalPartLength) return false;
        if (!IsLocalPart(local)) return false;
        return domain.StartsWith('[') ? IsAddressLiteral(domain) : IsDomain(domain);
    }

    public static bool IsLocalPart(string local) => local.StartsWith('"') ? IsQuotedString(local) : IsDotString(local);

    /// <summary>Dot-string = Atom *("." Atom): no leading, trailing or doubled dots.</summary>
    private static bool IsDotString(string s)
    {
        if (s.Length == 0 || s[0] == '.' || s[^1] == '.') return false;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '.') { if (s[i - 1] == '.') return false; continue; }
            if (!IsAtext(c)) return false;
        }
        return true;
    }

    /// <summary>RFC 5321 atext (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531), never a control character.</summary>
    public static bool IsAtext(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-/=?^_`{|}~".Contains(c) || (c > '\u009F' && !char.IsControl(c));

    /// <summary>Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE.</summary>
    private static bool IsQuotedString(string s)
    {
        if (s.Length < 2 || s[0] != '"' || s[^1] != '"') return false;
        for (var i = 1; i < s.Length - 1; i++)
        {
            var c = s[i];
            if (c == '\\')
            {
                if (++i >= s.Length - 1 || s[i] is < ' ' or > '~') return false;   // quoted-pairSMTP = "\" %d32-126
                continue;
            }
            if (c == '"') return false;
            if (c is >= ' ' and <= '~' || (c > '\u009F' && !char.IsControl(c))) continue;
            return false;
        }
        return true;
    }

    /// <summary>A domain as written in a path: LDH labels (or U-labels), no trailing dot.</summary>
    public static bool IsDomain(string domain)
    {
        if (domain.Length == 0 || domain.EndsWith('.') || domain.StartsWith('.')) return false;
        foreach (var c in domain)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' || (c > '\u009F' && !char.IsControl(c) && !char.IsWhiteSpace(c)))) return false;
        return DomainNames.Normalize(domain) is not null;
    }

    /// <summary>"[192.0.2.1]", "[IPv6:2001:db8::1]" or a general literal "[tag:content]".</summary>
    public static bool IsAddressLiteral(string literal)
    {
        if (literal.Length < 3 || literal[0] != '[' || literal[^1] != ']') return false;
        var inner = literal[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
            return IPAddress.TryParse(inner[5..], out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
        var colon = inner.IndexOf(':');
        if (colon < 0)
            return inner.Split('.').Length == 4 && IPAddress.TryParse(inner, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork;
        // General-address-literal = Standardized-tag ":" 1*dcontent
        var tag = inner[..colon];
        if (tag.Length == 0 || !IsEsmtpKeyword(tag)) return false;
        var content = inner[(colon + 1)..];
        return content.Length > 0 && content.All(c => c is >= '!' and <= 'Z' or >= '^' and <= '~');
    }

    /// <summary>
    /// A decimal number of ASCII digits only. long.TryParse is not strict enough: it takes
    /// trailing NULs ("10\0"), so peer numbers (SIZE, BDAT) go through here.
    /// </summary>
    public static bool TryParseNumber(string text, out long value)
    {
        value = 0;
        if (text.Length is 0 or > 18) return false;
        foreach (var c in text)
        {
            if (!char.IsAsciiDigit(c)) return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }

    public static string DomainOf(string mailbox) => mailbox[(mailbox.LastIndexOf('@') + 1)..];

    public static bool IsAscii(string s)
    {
        foreach (var c in s) if (c > 127) return false;
        return true;
    }

    /// <summary>RFC 3461 xtext: "+XX" escapes hex octets. Null when malformed or not UTF-8.</summary>
    public static string? DecodeXtext(string text)
    {
        var bytes = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '+')
            {
                if (i + 2 >= text.Length || !IsHex(text[i + 1]) || !IsHex(text[i + 2])) return null;
                bytes.Add(byte.Parse(text.AsSpan(i + 1, 2), System.Globalization.NumberStyles.HexNumber, null));
                i += 2;
            }
            else if (c is < '!' or > '~' or '=') return null;
            else bytes.Add((byte)c);
        }
        try { return StrictUtf8.GetString(bytes.ToArray()); }
        catch (DecoderFallbackException) { return null; }
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    /// <summary>True when a decoded peer value is safe to carry on: no control characters.</summary>
    public static bool IsPrintable(string s)
    {
        foreach (var c in s) if (char.IsControl(c)) return false;
        return true;
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

    /// <summary>
    /// RFC 3461 ORCPT: addr-type ";" xtext. Returns "type;decoded" or null when malformed or
    /// when the decoded address holds control characters (it is relayed and reported).
    /// </summary>
    public static string? ParseOrcpt(string? value)
    {
        if (value is null) return null;
        var semi = value.IndexOf(';');
        if (semi <= 0) return null;
        var type = value[..semi];
        if (!IsEsmtpKeyword(type)) return null;
        var decoded = DecodeXtext(value[(semi + 1)..]);
        if (decoded is null || decoded.Length == 0 || decoded.Length > 500 || !IsPrintable(decoded)) return null;
        return type + ";" + decoded;
    }

    /// <summary>
    /// EHLO/HELO argument: one domain or address literal. Legacy clients send names that are
    /// not domains (underscores, NetBIOS names); any single visible token is taken, since the
    /// name only goes into the Received header, but never a control or a space.
    /// </summary>
    public static bool IsHeloArgument(string arg)
    {
        if (arg.Length is 0 or > 255) return false;
        foreach (var c in arg)
            if (c is <= ' ' or '\u007F' or '(' or ')' or '<' or '>' or ';' or '"' or '\\' || char.IsControl(c) || char.IsWhiteSpace(c)) return false;
        return true;
    }
}
