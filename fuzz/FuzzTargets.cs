using System.Text;
using Postern.Inbound;
using Postern.Observability;
using Postern.Outbound;
using Postern.Queue;

namespace Postern.Fuzz;

/// <summary>A property that failed, with the input that broke it (escaped, so it can become a regression test).</summary>
public sealed class FuzzFailure(string target, string input, string problem, Exception? inner = null)
    : Exception($"{target}: {problem}\n  input: {input}", inner);

/// <summary>
/// Structured random inputs for the parsers that see peer bytes first, and the properties
/// each must keep: never throw, never accept what cannot be carried on safely, and agree
/// with itself (what is accepted re-parses, escapes round-trip). Seeded, so a run repeats.
/// Used by the long run (fuzz/Postern.Fuzz, a million inputs a target) and the test suite.
/// </summary>
public sealed class FuzzTargets(int seed)
{
    private readonly Random _random = new(seed);

    /// <summary>Inputs the target accepted (the rest were refused): shows the generator reaches both sides.</summary>
    public long Accepted { get; private set; }

    public static readonly string[] Names = ["command-line", "address", "esmtp-parameters", "reply", "dsn", "bare-newline", "log-escape"];

    public void Run(string name)
    {
        switch (name)
        {
            case "command-line": CommandLine(); break;
            case "address": Address(); break;
            case "esmtp-parameters": EsmtpParameters(); break;
            case "reply": Reply(); break;
            case "dsn": Dsn(); break;
            case "bare-newline": BareNewline(); break;
            case "log-escape": LogEscape(); break;
            default: throw new ArgumentException($"unknown target {name}");
        }
    }

    // ---- generators ----

    private static readonly string[] Tokens =
    [
        "MAIL FROM:", "RCPT TO:", "EHLO ", "BDAT ", "DATA", "<", ">", "<>", "@", ".", "..", "\"", "\\", ":", ";", ",", "(", ")", "[", "]",
        " ", "  ", "\t", "\r", "\n", "\r\n", "\0", "\u001b", "\u007f", "\u0085", "=", "+", "+0D", "+0A", "+00", "+2B", "+", "+Z",
        "SIZE=", "BODY=8BITMIME", "SMTPUTF8", "RET=HDRS", "ENVID=", "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;", "ORCPT=utf-8;",
        "user", "a", "postmaster", "example.com", "sender.test", "xn--bcher-kva.example", "bücher.example", "zoë", "用户",
        "IPv6:", "::1", "192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]", "-", "_", "1234567890", "99999999999999999999",
        "\ud800", "\uffff", "€", "250", "250-", "550 ", "421 ", "5.1.1", "2.0.0",
    ];

    private string Text(int maxTokens = 12)
    {
        var sb = new StringBuilder();
        var n = _random.Next(maxTokens + 1);
        for (var i = 0; i < n; i++)
        {
            switch (_random.Next(10))
            {
                case < 7: sb.Append(Tokens[_random.Next(Tokens.Length)]); break;
                case 7: sb.Append((char)_random.Next(0x20, 0x7F)); break;
                case 8: sb.Append((char)_random.Next(0, 0x20)); break;
                default: sb.Append((char)_random.Next(0x80, 0x3000)); break;
            }
        }
        return sb.ToString();
    }

    private byte[] Bytes(int maxTokens = 12)
    {
        var text = Encoding.UTF8.GetBytes(Text(maxTokens));
        if (_random.Next(4) == 0 && text.Length > 0) text[_random.Next(text.Length)] = (byte)_random.Next(256);   // break the UTF-8
        return text;
    }

    private const string Atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~";

    /// <summary>A local part that is usually valid (dot-string or quoted string) and sometimes one mutation off.</summary>
    private string LocalPart()
    {
        var sb = new StringBuilder();
        if (_random.Next(4) == 0)
        {
            sb.Append('"');
            for (var i = _random.Next(1, 10); i > 0; i--)
                sb.Append(_random.Next(8) switch { 0 => "\\\"", 1 => "\\\\", 2 => " ", 3 => "é", _ => ((char)_random.Next(0x23, 0x7F)).ToString() });
            sb.Append('"');
        }
        else
        {
            for (var atoms = _random.Next(1, 4); atoms > 0; atoms--)
            {
                for (var i = _random.Next(1, 8); i > 0; i--) sb.Append(_random.Next(12) == 0 ? 'ü' : Atext[_random.Next(Atext.Length)]);
                if (atoms > 1) sb.Append('.');
            }
        }
        if (_random.Next(4) == 0) sb.Insert(_random.Next(sb.Length + 1), Tokens[_random.Next(Tokens.Length)]);
        return sb.ToString();
    }

    private string Domain()
    {
        if (_random.Next(6) == 0) return _random.Next(2) == 0 ? "[192.0.2." + _random.Next(300) + "]" : "[IPv6:2001:db8::" + _random.Next(0x10000).ToString("x") + "]";
        var labels = Enumerable.Range(0, _random.Next(1, 4)).Select(_ => new string(Enumerable.Range(0, _random.Next(1, 10))
            .Select(_ => "abcdefghijklmnopqrstuvwxyz0123456789-_"[_random.Next(38)]).ToArray()));
        var domain = string.Join('.', labels);
        if (_random.Next(5) == 0) domain = domain.Insert(_random.Next(domain.Length + 1), Tokens[_random.Next(Tokens.Length)]);
        return domain;
    }

    private string Parameters()
    {
        string[] keys = ["SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "NOTIFY", "ORCPT", "AUTH", "X-FOO", "b\u00e4d"];
        var sb = new StringBuilder();
        for (var i = _random.Next(4); i > 0; i--)
        {
            sb.Append(' ').Append(keys[_random.Next(keys.Length)]);
            if (_random.Next(3) > 0) sb.Append('=').Append(_random.Next(3) == 0 ? Text(2) : _random.Next(100000).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    private static string Show(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s) sb.Append(c is < ' ' or '"' or '\\' or > '~' ? $"\\u{(int)c:x4}" : c.ToString());
        return sb.Append('"').ToString();
    }

    private static string Show(byte[] b) => Convert.ToHexString(b);

    private static bool HasControl(string s) => s.Any(char.IsControl);

    // ---- targets ----

    /// <summary>The server's first look at a command line.</summary>
    private void CommandLine()
    {
        var bytes = Bytes(16);
        var bare = bytes.Contains((byte)'\r') || bytes.Contains((byte)'\n');
        string? error;
        string line;
        try { error = SmtpSyntax.DecodeCommandLine(bytes, bare, out line); }
        catch (Exception e) { throw new FuzzFailure("command-line", Show(bytes), "threw", e); }
        if (error is not null)
        {
            if (HasControl(error) || !error.StartsWith("50", StringComparison.Ordinal)) throw new FuzzFailure("command-line", Show(bytes), $"bad refusal {Show(error)}");
            return;
        }
        Accepted++;
        if (bare || HasControl(line)) throw new FuzzFailure("command-line", Show(bytes), "accepted a line with a control character");
        if (!Encoding.UTF8.GetBytes(line).AsSpan().SequenceEqual(bytes)) throw new FuzzFailure("command-line", Show(bytes), "accepted bytes that do not round-trip (invalid UTF-8)");
    }

    /// <summary>MAIL FROM / RCPT TO paths: what is accepted is a mailbox that a DSN can be built for.</summary>
    private void Address()
    {
        var text = _random.Next(4) switch
        {
            0 => Text(14),
            1 => "<" + Text(6) + "@" + Text(3) + ">" + Text(3),
            _ => "<" + LocalPart() + "@" + Domain() + ">" + Parameters(),
        };
        string? error;
        string address;
        List<(string Key, string? Value)> parameters;
        try { error = SmtpSyntax.ParsePath(text, allowNull: true, out address, out parameters); }
        catch (Exception e) { throw new FuzzFailure("address", Show(text), "threw", e); }
        if (error is not null)
        {
            if (HasControl(error)) throw new FuzzFailure("address", Show(text), "refusal carries a control character");
            return;
        }
        if (HasControl(address) || address.Contains('<') && !address.StartsWith('"')) throw new FuzzFailure("address", Show(text), $"accepted {Show(address)}");
        if (address.Length > 0 && !SmtpSyntax.IsValidMailbox(address)) throw new FuzzFailure("address", Show(text), $"accepted {Show(address)} which is not a valid mailbox");
        if (parameters.Select(p => p.Key).Distinct().Count() != parameters.Count) throw new FuzzFailure("address", Show(text), "accepted a repeated parameter");
        foreach (var (key, value) in parameters)
            if (!SmtpSyntax.IsEsmtpKeyword(key) || value is not null && (value.Length == 0 || HasControl(value)))
                throw new FuzzFailure("address", Show(text), $"accepted parameter {Show(key)}={Show(value ?? "")}");
        if (address.Length == 0) return;
        Accepted++;
        // Re-parsing the accepted address gives the same address.
        if (SmtpSyntax.ParsePath("<" + address + ">", false, out var again, out _) is { } e2 || again != address)
            throw new FuzzFailure("address", Show(text), $"accepted {Show(address)} does not re-parse");
        BuildDsnFor(address, "address", text);
    }

    private void BuildDsnFor(string sender, string target, string input)
    {
        var original = new QueuedMessage
        {
            Mid = 1, Sender = sender, ReceivedAt = DateTimeOffset.UnixEpoch, SmtpUtf8 = !SmtpSyntax.IsAscii(sender),
            Recipients = [new QueuedRecipient { Rid = 0, Address = "u@good.test", Domain = "good.test" }],
        };
        byte[] dsn;
        try { dsn = DsnBuilder.Build("postern.test", original, "Subject: x\r\n\r\nx\r\n"u8.ToArray(), [new DsnRecipient(original.Recipients[0], "failed", "5.1.1", "smtp; 550 no", null)], DateTimeOffset.UnixEpoch); }
        catch (Exception e) { throw new FuzzFailure(target, Show(input), $"DSN for {Show(sender)} threw", e); }
        CheckDsnHeaders(dsn, target, input);
    }

    /// <summary>The DSN's own header block: CRLF lines only, no control characters, one To field.</summary>
    private static void CheckDsnHeaders(byte[] dsn, string target, string input)
    {
        var text = Encoding.UTF8.GetString(dsn);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0) throw new FuzzFailure(target, Show(input), "DSN has no header block");
        var head = text[..end];
        foreach (var line in head.Split("\r\n"))
        {
            if (line.Length > 998) throw new FuzzFailure(target, Show(input), "DSN header line over 998 characters");
            if (line.Any(c => char.IsControl(c) && c != '\t')) throw new FuzzFailure(target, Show(input), $"DSN header line with a control character: {Show(line)}");
        }
        if (head.Split("\r\n").Count(l => l.StartsWith("To:", StringComparison.Ordinal)) != 1) throw new FuzzFailure(target, Show(input), "DSN has not exactly one To field");
    }

    /// <summary>ESMTP parameters, ORCPT and xtext: accepted values are printable; xtext round-trips.</summary>
    private void EsmtpParameters()
    {
        var text = Text(10);
        var parameters = new List<(string Key, string? Value)>();
        try
        {
            if (SmtpSyntax.ParseParameters(text, parameters) is null && parameters.Count > 0) Accepted++;
            if (parameters.Count > 0)
                foreach (var (key, value) in parameters)
                    if (!SmtpSyntax.IsEsmtpKeyword(key) || value is not null && !SmtpSyntax.IsEsmtpValue(value))
                        throw new FuzzFailure("esmtp-parameters", Show(text), $"accepted {Show(key)}");
            var orcpt = SmtpSyntax.ParseOrcpt(text);
            if (orcpt is not null && (HasControl(orcpt) || !orcpt.Contains(';'))) throw new FuzzFailure("esmtp-parameters", Show(text), $"ORCPT accepted as {Show(orcpt)}");
            var decoded = SmtpSyntax.DecodeXtext(text);
            if (decoded is not null && SmtpSyntax.DecodeXtext(SmtpSyntax.EncodeXtext(decoded)) != decoded) throw new FuzzFailure("esmtp-parameters", Show(text), "xtext does not round-trip");
            var plain = Text(6);
            if (!plain.Any(char.IsSurrogate) && SmtpSyntax.DecodeXtext(SmtpSyntax.EncodeXtext(plain)) != plain) throw new FuzzFailure("esmtp-parameters", Show(plain), "xtext encoding does not round-trip");
            SmtpSyntax.TryParseNumber(text, out _);
        }
        catch (FuzzFailure) { throw; }
        catch (Exception e) { throw new FuzzFailure("esmtp-parameters", Show(text), "threw", e); }
    }

    /// <summary>Reply lines from a peer: complete replies have one code in range and no control characters.</summary>
    private void Reply()
    {
        var assembler = new SmtpReplyAssembler();
        var lines = new List<string>();
        var n = _random.Next(1, 8);
        for (var i = 0; i < n; i++)
        {
            var code = _random.Next(4) == 0 ? Text(2) : _random.Next(100, 700).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var sep = _random.Next(3) switch { 0 => "-", 1 => " ", _ => Text(1) };
            lines.Add(code + sep + Text(6));
        }
        foreach (var line in lines)
        {
            SmtpReply? reply;
            string? error;
            try { reply = assembler.Add(line, out error); }
            catch (Exception e) { throw new FuzzFailure("reply", string.Join(" | ", lines.Select(Show)), "threw", e); }
            if (reply is null) continue;
            Accepted++;
            if (error is not null) throw new FuzzFailure("reply", string.Join(" | ", lines.Select(Show)), "a reply and an error at once");
            if (reply.Code is < 200 or > 599 || reply.Lines.Any(l => l.Any(c => char.IsControl(c) && c != '\t')))
                throw new FuzzFailure("reply", string.Join(" | ", lines.Select(Show)), $"accepted {Show(reply.ToString())}");
            _ = reply.Status + reply.Quoted;
        }
        try { EhloCapabilities.Parse(lines); }
        catch (Exception e) { throw new FuzzFailure("reply", string.Join(" | ", lines.Select(Show)), "EHLO parse threw", e); }
    }

    /// <summary>DSNs for any accepted envelope, any diagnostic text and any body.</summary>
    private void Dsn()
    {
        string sender;
        do { SmtpSyntax.ParsePath("<" + Text(4) + "@sender.test>", true, out sender, out _); }
        while (sender.Length == 0 && _random.Next(3) > 0);
        if (sender.Length == 0) sender = "s@sender.test";
        var recipients = Enumerable.Range(0, _random.Next(1, 4)).Select(i => new QueuedRecipient
        {
            Rid = i, Address = _random.Next(2) == 0 ? "zoë@good.test" : "u@good.test", Domain = "good.test",
            OriginalRecipient = _random.Next(3) == 0 ? SmtpSyntax.ParseOrcpt("rfc822;" + SmtpSyntax.EncodeXtext(Text(3))) : null,
        }).ToList();
        var original = new QueuedMessage
        {
            Mid = 1, Sender = sender, ReceivedAt = DateTimeOffset.UnixEpoch, SmtpUtf8 = _random.Next(2) == 0,
            Ret = _random.Next(2) == 0 ? DsnRet.Headers : DsnRet.Full, EnvelopeId = _random.Next(2) == 0 ? Text(3) : null, Recipients = recipients,
        };
        var body = Bytes(20);
        var input = $"sender {Show(sender)} body {Show(body)}";
        byte[] dsn;
        try
        {
            dsn = DsnBuilder.Build("postern.test", original, body,
                recipients.Select(r => new DsnRecipient(r, _random.Next(2) == 0 ? "failed" : "relayed", "5.1.1", "smtp; " + Text(8), _random.Next(2) == 0 ? null : Text(2))).ToList(),
                DateTimeOffset.UnixEpoch);
        }
        catch (Exception e) { throw new FuzzFailure("dsn", input, "threw", e); }
        CheckDsnHeaders(dsn, "dsn", input);
        Accepted++;
    }

    /// <summary>The BDAT bare-newline check over chunks agrees with a plain scan of the whole text.</summary>
    private void BareNewline()
    {
        var whole = Encoding.UTF8.GetBytes(Text(10));
        var expected = false;
        for (var i = 0; i < whole.Length; i++)
        {
            if (whole[i] == '\n' && (i == 0 || whole[i - 1] != '\r')) expected = true;
            if (whole[i] == '\r' && (i + 1 == whole.Length || whole[i + 1] != '\n')) expected = true;
        }
        var lastWasCr = false;
        var found = false;
        var pos = 0;
        while (pos < whole.Length && !found)
        {
            var size = _random.Next(1, Math.Max(2, whole.Length - pos + 1));
            found = MessageText.HasBareNewline(whole.AsSpan(pos, Math.Min(size, whole.Length - pos)), ref lastWasCr);
            pos += size;
        }
        found |= !found && lastWasCr;
        if (!expected) Accepted++;
        if (found != expected) throw new FuzzFailure("bare-newline", Show(whole), $"chunked check says {found}, whole text says {expected}");
    }

    /// <summary>A mail log line from any text is one line without control characters.</summary>
    private void LogEscape()
    {
        var text = Text(12);
        var escaped = MailLog.Escape(text);
        if (escaped == text) Accepted++;
        if (escaped.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029')) throw new FuzzFailure("log-escape", Show(text), $"escaped to {Show(escaped)}");
    }
}
