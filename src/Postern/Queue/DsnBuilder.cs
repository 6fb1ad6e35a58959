using System.Globalization;
using System.Text;
using MimeKit.Utils;
using Postern.Inbound;

namespace Postern.Queue;

/// <param name="Diagnostic">A Diagnostic-Code value with its type: "smtp; 550 ..." or "x-postern; ...".</param>
public sealed record DsnRecipient(QueuedRecipient Recipient, string Action, string Status, string Diagnostic, string? RemoteMta);

/// <summary>
/// Builds RFC 3464 delivery status notifications (multipart/report). Written directly
/// rather than through a MIME library: nothing in the original message or envelope is
/// parsed, so no sender, header or body can make building fail. Non-ASCII addresses get
/// RFC 6533's utf-8 address type in message/global-delivery-status, and an SMTPUTF8
/// original is returned as message/global (RFC 6532 §3.7).
/// </summary>
public static class DsnBuilder
{
    /// <summary>A header field value stays one line of bounded length whatever went into it.</summary>
    private const int MaxFieldLength = 900;

    public static byte[] Build(string hostname, QueuedMessage original, ReadOnlySpan<byte> originalBody, IReadOnlyList<DsnRecipient> recipients, DateTimeOffset now)
    {
        var failed = recipients.Any(r => r.Action == "failed");
        var global = original.SmtpUtf8 || !SmtpSyntax.IsAscii(original.Sender)
            || recipients.Any(r => !SmtpSyntax.IsAscii(r.Recipient.Address) || r.Recipient.OriginalRecipient is { } o && !SmtpSyntax.IsAscii(o));
        var originalIs8Bit = originalBody.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0;
        var boundary = $"{original.Mid}.{Guid.NewGuid():N}/{hostname}";
        var headersOnly = original.Ret == DsnRet.Headers;

        var text = new StringBuilder()
            .Append("This is the mail system at host ").Append(hostname).Append(".\r\n\r\n")
            .Append(failed
                ? "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n\r\n"
                : "Your message was successfully delivered to the destination(s)\r\nlisted below.\r\n\r\n");
        foreach (var r in recipients)
            text.Append('<').Append(Clean(r.Recipient.Address)).Append(">: ").Append(Clean(r.Diagnostic[(r.Diagnostic.IndexOf(';') + 1)..].Trim())).Append("\r\n\r\n");
        var textIs8Bit = !SmtpSyntax.IsAscii(text.ToString());

        var sb = new StringBuilder();
        void Field(string name, string value) => sb.Append(name).Append(": ").Append(Clean(value)).Append("\r\n");

        Field("From", $"Mail Delivery System <MAILER-DAEMON@{hostname}>");
        Field("To", $"<{original.Sender}>");
        Field("Subject", failed ? "Undelivered Mail Returned to Sender" : "Successful Mail Delivery Report");
        Field("Date", DateUtils.FormatDate(now));
        Field("Message-ID", $"<{original.Mid}.{Guid.NewGuid():N}@{hostname}>");
        Field("Auto-Submitted", "auto-replied");
        Field("MIME-Version", "1.0");
        sb.Append("Content-Type: multipart/report; report-type=").Append(global ? "global-delivery-status" : "delivery-status")
            .Append(";\r\n\tboundary=\"").Append(boundary).Append("\"\r\n");
        if (global || originalIs8Bit || textIs8Bit) Field("Content-Transfer-Encoding", "8bit");
        sb.Append("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

        sb.Append("--").Append(boundary).Append("\r\n");
        Field("Content-Description", "Notification");
        Field("Content-Type", "text/plain; charset=utf-8");
        Field("Content-Transfer-Encoding", textIs8Bit ? "8bit" : "7bit");
        sb.Append("\r\n").Append(text);

        sb.Append("--").Append(boundary).Append("\r\n");
        Field("Content-Description", "Delivery report");
        Field("Content-Type", global ? "message/global-delivery-status" : "message/delivery-status");
        if (global) Field("Content-Transfer-Encoding", "8bit");
        sb.Append("\r\n");
        Field("Reporting-MTA", $"dns; {hostname}");
        Field("X-Postern-Queue-ID", original.Mid.ToString(CultureInfo.InvariantCulture));
        if (original.EnvelopeId is not null) Field("Original-Envelope-Id", SmtpSyntax.EncodeXtext(original.EnvelopeId));
        Field("Arrival-Date", DateUtils.FormatDate(original.ReceivedAt));
        foreach (var r in recipients)
        {
            sb.Append("\r\n");
            if (r.Recipient.OriginalRecipient is { } orcpt) Field("Original-Recipient", orcpt);
            var address = r.Recipient.Address;
            Field("Final-Recipient", SmtpSyntax.IsAscii(address) ? $"rfc822; {address}" : $"utf-8; {address}");
            Field("Action", r.Action);
            Field("Status", r.Status);
            if (r.RemoteMta is not null) Field("Remote-MTA", $"dns; {r.RemoteMta}");
            Field("Diagnostic-Code", r.Diagnostic);
            Field("Last-Attempt-Date", DateUtils.FormatDate(now));
        }
        sb.Append("\r\n");

        sb.Append("--").Append(boundary).Append("\r\n");
        Field("Content-Description", headersOnly ? "Undelivered Message Headers" : failed ? "Undelivered Message" : "Delivered Message");
        Field("Content-Type", (headersOnly, original.SmtpUtf8) switch
        {
            (true, true) => "message/global-headers",
            (true, false) => "text/rfc822-headers",
            (false, true) => "message/global",
            (false, false) => "message/rfc822",
        });
        if (originalIs8Bit) Field("Content-Transfer-Encoding", "8bit");
        sb.Append("\r\n");

        var enclosed = headersOnly ? originalBody[..HeaderBlockLength(originalBody)] : originalBody;
        var head = Encoding.UTF8.GetBytes(sb.ToString());
        var endsWithNewline = enclosed.Length >= 2 && enclosed[^2] == '\r' && enclosed[^1] == '\n';
        var tail = Encoding.ASCII.GetBytes((endsWithNewline ? "" : "\r\n") + "\r\n--" + boundary + "--\r\n");
        var output = new byte[head.Length + enclosed.Length + tail.Length];
        head.CopyTo(output, 0);
        enclosed.CopyTo(output.AsSpan(head.Length));
        tail.CopyTo(output, head.Length + enclosed.Length);
        return output;
    }

    /// <summary>Length of the header block including its terminating empty line (or the whole message when there is none).</summary>
    public static int HeaderBlockLength(ReadOnlySpan<byte> message)
    {
        var end = message.IndexOf("\r\n\r\n"u8);
        return end < 0 ? message.Length : end + 4;
    }

    /// <summary>One line, no control characters, bounded: peer text (replies, addresses) passes through here.</summary>
    private static string Clean(string value)
    {
        var sb = new StringBuilder(Math.Min(value.Length, MaxFieldLength));
        foreach (var c in value)
        {
            if (sb.Length >= MaxFieldLength) { sb.Append("..."); break; }
            sb.Append(char.IsControl(c) ? ' ' : c);
        }
        return sb.ToString();
    }
}
