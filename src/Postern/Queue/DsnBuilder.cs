using System.Text;
using MimeKit;
using MimeKit.Text;
using MimeKit.Utils;

namespace Postern.Queue;

/// <param name="Diagnostic">A Diagnostic-Code value with its type: "smtp; 550 ..." or "x-postern; ...".</param>
public sealed record DsnRecipient(QueuedRecipient Recipient, string Action, string Status, string Diagnostic, string? RemoteMta);

/// <summary>Builds RFC 3464 delivery status notifications (multipart/report) with MimeKit.</summary>
public static class DsnBuilder
{
    public static byte[] Build(string hostname, QueuedMessage original, byte[] originalBody, IReadOnlyList<DsnRecipient> recipients, DateTimeOffset now)
    {
        var failed = recipients.Any(r => r.Action == "failed");
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{hostname}"));
        message.To.Add(MailboxAddress.Parse(original.Sender));
        message.Subject = failed ? "Undelivered Mail Returned to Sender" : "Successful Mail Delivery Report";
        message.Date = now;
        message.MessageId = MimeUtils.GenerateMessageId(hostname);
        message.Headers.Add("Auto-Submitted", "auto-replied");

        var report = new MultipartReport("delivery-status");
        var text = new StringBuilder()
            .Append("This is the mail system at host ").Append(hostname).Append(".\n\n");
        text.Append(failed
            ? "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n"
            : "Your message was successfully delivered to the destination(s)\nlisted below.\n\n");
        foreach (var r in recipients)
            text.Append('<').Append(r.Recipient.Address).Append(">: ").Append(r.Diagnostic[(r.Diagnostic.IndexOf(';') + 1)..].Trim()).Append("\n\n");
        report.Add(new TextPart(TextFormat.Plain) { Text = text.ToString() });

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", $"dns; {hostname}" },
            { "X-Postern-Queue-ID", original.Mid.ToString() },
            { "Arrival-Date", DateUtils.FormatDate(original.ReceivedAt) },
        };
        if (original.EnvelopeId is not null) perMessage.Add("Original-Envelope-Id", original.EnvelopeId);
        status.StatusGroups.Add(perMessage);
        foreach (var r in recipients)
        {
            var group = new HeaderList();
            if (r.Recipient.OriginalRecipient is { } orcpt) group.Add("Original-Recipient", orcpt);
            group.Add("Final-Recipient", $"rfc822; {r.Recipient.Address}");
            group.Add("Action", r.Action);
            group.Add("Status", r.Status);
            if (r.RemoteMta is not null) group.Add("Remote-MTA", $"dns; {r.RemoteMta}");
            group.Add("Diagnostic-Code", r.Diagnostic);
            group.Add("Last-Attempt-Date", DateUtils.FormatDate(now));
            status.StatusGroups.Add(group);
        }
        report.Add(status);

        using (var originalStream = new MemoryStream(originalBody, writable: false))
        {
            var parsed = MimeMessage.Load(originalStream);
            if (original.Ret == DsnRet.Headers)
            {
                var headersOnly = new MimeMessage();
                headersOnly.Headers.Clear();
                foreach (var h in parsed.Headers) headersOnly.Headers.Add(h);
                report.Add(new TextRfc822Headers { Message = headersOnly });
            }
            else
            {
                report.Add(new MessagePart("rfc822") { Message = parsed });
            }
        }
        message.Body = report;

        using var output = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, output);
        return output.ToArray();
    }
}
