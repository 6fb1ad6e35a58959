using System.Text;
using MimeKit;
using Postern.Admin;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>RFC 6152: 8BITMIME mail for a peer that does not offer 8BITMIME.</summary>
public sealed class EightBitTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    private async Task<RunningGateway> GatewayFor(ScriptedPeer peer, string name) =>
        await Task.FromResult(RunningGateway.Start(_world.NewConfig(name, c =>
        {
            c.DestinationControls.Default.Tls = TlsLevel.No;
            c.SmtpRoutes.Add(new SmtpRoute { Domain = "scripted.test", Hosts = { new SmtpRouteHost { Host = "127.0.6.1", Port = peer.EndPoint.Port } } });
        })));

    private static async Task Submit8Bit(System.Net.IPEndPoint listener, string sender, string message)
    {
        await using var c = await RawSmtp.ConnectAsync(listener);
        await c.ReadReplyAsync();
        await c.CommandAsync("EHLO client.test");
        Assert.StartsWith("250", await c.CommandAsync($"MAIL FROM:<{sender}> BODY=8BITMIME"));
        Assert.StartsWith("250", await c.CommandAsync("RCPT TO:<u@scripted.test>"));
        Assert.StartsWith("354", await c.CommandAsync("DATA"));
        await c.SendBytesAsync(Encoding.UTF8.GetBytes(message + ".\r\n"));
        Assert.StartsWith("250", await c.ReadReplyAsync());
    }

    [Fact]
    public async Task An_8bit_body_is_converted_to_seven_bit_MIME()
    {
        await using var peer = new ScriptedPeer(ScriptedPeer.Behaviour.SevenBitOnly);
        await using var gw = await GatewayFor(peer, "8bit-convert");
        const string text = "Grüße aus Köln — 東京\r\n";
        await Submit8Bit(gw.Private, "s@sender.test",
            "From: s@sender.test\r\nTo: u@scripted.test\r\nSubject: umlauts\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text);
        gw.WaitForLogLine("converted to 7-bit MIME: 127.0.6.1 does not offer 8BITMIME");
        gw.WaitForLogLine("Message finished MID");
        var raw = Assert.Single(peer.RawMessages);
        Assert.True(Postern.Outbound.MimeDowngrade.IsSevenBit(raw), "7-bit clean on the wire");
        var received = MimeMessage.Load(new MemoryStream(raw));
        var part = Assert.IsType<TextPart>(received.Body);
        // MimeKit picks quoted-printable or base64, whichever is smaller for the text.
        Assert.Contains(part.ContentTransferEncoding, new[] { ContentEncoding.QuotedPrintable, ContentEncoding.Base64 });
        Assert.Equal(text.Replace("\r\n", "\n"), part.Text.Replace("\r\n", "\n"));
    }

    [Fact]
    public async Task Raw_8bit_header_text_cannot_be_converted_and_bounces()
    {
        await using var peer = new ScriptedPeer(ScriptedPeer.Behaviour.SevenBitOnly);
        await using var gw = await GatewayFor(peer, "8bit-bounce");
        var sender = TestWorld.Unique("eightbit") + "@sender.test";
        await Submit8Bit(gw.Private, sender, "From: s@sender.test\r\nSubject: Grüße\r\n\r\nbody\r\n");
        var dsn = _world.WaitForMail(sender);
        Assert.Contains("Status: 5.6.3", dsn);
        Assert.Empty(peer.Messages);
    }
}
