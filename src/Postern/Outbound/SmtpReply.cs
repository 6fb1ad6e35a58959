using System.Globalization;

namespace Postern.Outbound;

/// <summary>A complete (possibly multi-line) SMTP reply.</summary>
public sealed record SmtpReply(int Code, IReadOnlyList<string> Lines)
{
    public bool IsPositive => Code is >= 200 and < 400;
    public bool IsTransient => Code is >= 400 and < 500;
    public bool IsPermanent => Code >= 500;
    public string Text => string.Join(" ", Lines);

    /// <summary>The RFC 3463 status in the reply, or one derived from the code class.</summary>
    public string Status
    {
        get
        {
            var first = Lines.Count > 0 ? Lines[0] : "";
            var sp = first.IndexOf(' ');
            var candidate = sp > 0 ? first[..sp] : first;
            var parts = candidate.Split('.');
            if (parts.Length == 3 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit)) && parts[0] == (Code / 100).ToString(CultureInfo.InvariantCulture))
                return candidate;
            return Code >= 500 ? "5.0.0" : Code >= 400 ? "4.0.0" : "2.0.0";
        }
    }

    /// <summary>The appliance's way of quoting a peer's answer: ('550', ['text', ...]).</summary>
    public string Quoted => $"('{Code}', [{string.Join(", ", Lines.Select(l => "'" + l.Replace("'", "\\'") + "'"))}])";

    public override string ToString() => $"{Code} {Text}";
}

/// <summary>
/// Assembles reply lines into replies (RFC 5321 §4.2): "NNN-text" continues, "NNN text" or
/// "NNN" ends; every line of one reply carries the same code. Pure, so it can be fuzzed.
/// </summary>
public sealed class SmtpReplyAssembler
{
    public const int MaxLines = 1000;
    private readonly List<string> _lines = new();
    private int _code;

    /// <summary>
    /// Adds one line (without CRLF). Returns the reply when the line completes it, null when
    /// more lines follow; error is set (and the reply abandoned) when the line is malformed.
    /// </summary>
    public SmtpReply? Add(string line, out string? error)
    {
        error = null;
        if (line.Length < 3 || !char.IsAsciiDigit(line[0]) || !char.IsAsciiDigit(line[1]) || !char.IsAsciiDigit(line[2])
            || (line.Length > 3 && line[3] is not (' ' or '-')))
        {
            error = "malformed reply line";
            return Abandon();
        }
        var code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (code is < 200 or > 599) { error = $"reply code {code} out of range"; return Abandon(); }
        if (_lines.Count > 0 && code != _code) { error = $"multi-line reply changes its code from {_code} to {code}"; return Abandon(); }
        foreach (var c in line)
            if (char.IsControl(c) && c != '\t') { error = "control character in reply"; return Abandon(); }
        _code = code;
        _lines.Add(line.Length > 4 ? line[4..] : "");
        if (line.Length == 3 || line[3] == ' ')
        {
            var reply = new SmtpReply(code, _lines.ToArray());
            _lines.Clear();
            return reply;
        }
        if (_lines.Count >= MaxLines) { error = "reply too long"; return Abandon(); }
        return null;
    }

    private SmtpReply? Abandon()
    {
        _lines.Clear();
        return null;
    }
}

/// <summary>What the peer's EHLO reply offers. Replaced whole by every EHLO (RFC 3207 §4.2: forget what came before TLS).</summary>
public sealed record EhloCapabilities(IReadOnlySet<string> Extensions, long MaxSize)
{
    public static readonly EhloCapabilities None = new(new HashSet<string>(StringComparer.OrdinalIgnoreCase), 0);

    public bool Supports(string extension) => Extensions.Contains(extension);

    /// <summary>Reads the keywords from the lines after the first (the greeting line names the host).</summary>
    public static EhloCapabilities Parse(IReadOnlyList<string> lines)
    {
        var extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        long maxSize = 0;
        for (var i = 1; i < lines.Count; i++)
        {
            var parts = lines[i].Split(' ', 2, StringSplitOptions.TrimEntries);
            var keyword = parts[0];
            if (keyword.Length == 0) continue;
            extensions.Add(keyword);
            if (keyword.Equals("SIZE", StringComparison.OrdinalIgnoreCase) && parts.Length == 2
                && Inbound.SmtpSyntax.TryParseNumber(parts[1], out var size))
                maxSize = size;
        }
        return new EhloCapabilities(extensions, maxSize);
    }
}
