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
            if (parts.Length == 3 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit)) && parts[0] == (Code / 100).ToString())
                return candidate;
            return Code >= 500 ? "5.0.0" : Code >= 400 ? "4.0.0" : "2.0.0";
        }
    }

    /// <summary>The appliance's way of quoting a peer's answer: ('550', ['text', ...]).</summary>
    public string Quoted => $"('{Code}', [{string.Join(", ", Lines.Select(l => "'" + l.Replace("'", "\\'") + "'"))}])";

    public override string ToString() => $"{Code} {Text}";
}
