using System.Text;
using Postern.Inbound;
using Postern.Outbound;
using Xunit;

namespace Postern.Tests;

/// <summary>The message body's hot path: dot-stuffing in bulk, the pooled message buffer, lines taken from the buffer.</summary>
public sealed class BodyPathTests
{
    /// <summary>The rule as RFC 5321 §4.5.2 states it, one byte at a time: the reference for the bulk version.</summary>
    private static byte[] DotStuffOneByteAtATime(byte[] body)
    {
        var output = new List<byte>();
        var atLineStart = true;
        foreach (var b in body)
        {
            if (atLineStart && b == '.') output.Add((byte)'.');
            output.Add(b);
            atLineStart = b == '\n';
        }
        output.AddRange(body.Length >= 2 && body[^2] == '\r' && body[^1] == '\n' ? ".\r\n"u8.ToArray() : "\r\n.\r\n"u8.ToArray());
        return output.ToArray();
    }

    [Fact]
    public void Dot_stuffing_in_bulk_matches_the_rule_on_every_kind_of_body()
    {
        var random = new Random(1305);
        byte[] alphabet = "..\r\n\r\nab. \n"u8.ToArray();
        var bodies = new List<byte[]> { Array.Empty<byte>(), "."u8.ToArray(), ".\r\n"u8.ToArray(), "..\r\n."u8.ToArray(), "a\r\n.\r\n..\r\n"u8.ToArray(), "\n.\n.\n"u8.ToArray() };
        for (var i = 0; i < 2000; i++)
        {
            var body = new byte[random.Next(0, 64)];
            for (var j = 0; j < body.Length; j++) body[j] = alphabet[random.Next(alphabet.Length)];
            bodies.Add(body);
        }
        foreach (var body in bodies)
        {
            var expected = DotStuffOneByteAtATime(body);
            Assert.Equal(expected.Length, SmtpClientConnection.DotStuffedLength(body));
            Assert.Equal(expected, SmtpClientConnection.DotStuff(body));
            // The wire path's pieces, cut anywhere (a piece may end on an LF and the next start with a dot).
            foreach (var piece in new[] { 1, 2, 3, 7, 32 * 1024 })
            {
                var output = new byte[expected.Length + 16];
                var buffer = new byte[piece + piece / 2 + 8];
                var o = 0;
                var offset = 0;
                do
                {
                    var length = Math.Min(piece, body.Length - offset);
                    var n = SmtpClientConnection.StuffPiece(body, offset, length, buffer);
                    buffer.AsSpan(0, n).CopyTo(output.AsSpan(o));
                    o += n;
                    offset += length;
                } while (offset < body.Length);
                Assert.Equal(expected, output[..o]);
            }
        }
    }

    [Fact]
    public void The_message_buffer_grows_keeps_every_byte_and_puts_the_header_in_front_without_a_copy()
    {
        using var buffer = new MessageBuffer(initialCapacity: 16);
        var expected = new MemoryStream();
        for (var i = 0; i < 5000; i++)
        {
            var line = Encoding.ASCII.GetBytes($"line {i} of the message\r\n");
            buffer.Write(line);
            expected.Write(line);
        }
        Assert.Equal(expected.ToArray(), buffer.Data.ToArray());
        var header = "Received: from x\r\n"u8.ToArray();
        var whole = buffer.WithHeader(header);
        Assert.Equal(header.Concat(expected.ToArray()).ToArray(), whole.ToArray());
        Assert.Throws<InvalidOperationException>(() => buffer.WithHeader(header));
    }

    [Fact]
    public void A_header_larger_than_the_headroom_is_still_put_in_front()
    {
        using var buffer = new MessageBuffer();
        buffer.Write("body\r\n"u8);
        var header = Encoding.ASCII.GetBytes("X-Long: " + new string('h', MessageBuffer.Headroom) + "\r\n");
        Assert.Equal(header.Concat("body\r\n"u8.ToArray()).ToArray(), buffer.WithHeader(header).ToArray());
    }

    [Fact]
    public async Task Lines_taken_from_the_buffer_match_lines_read_one_by_one()
    {
        var text = "one\r\ntwo\r\nbare\nlf\r\nbare\rcr\r\n" + new string('x', 100) + "\r\nend\r\n";
        var expected = new List<SmtpLine>();
        var expectedText = new List<string>();
        using (var reader = new SmtpLineReader(new MemoryStream(Encoding.ASCII.GetBytes(text))))
            while (await reader.ReadLineAsync(50, CancellationToken.None) is { EndOfStream: false } line)
            {
                expected.Add(line with { Start = 0 });
                expectedText.Add(Encoding.ASCII.GetString(reader.Buffer, line.Start, line.Length));
            }
        var actual = new List<SmtpLine>();
        var actualText = new List<string>();
        using (var reader = new SmtpLineReader(new MemoryStream(Encoding.ASCII.GetBytes(text))))
            while (true)
            {
                if (!reader.TryReadBufferedLine(50, out var line)) line = await reader.ReadLineAsync(50, CancellationToken.None);
                if (line.EndOfStream) break;
                actual.Add(line with { Start = 0 });
                actualText.Add(Encoding.ASCII.GetString(reader.Buffer, line.Start, line.Length));
            }
        Assert.Equal(expected, actual);
        Assert.Equal(expectedText, actualText);
        Assert.Contains(actual, l => l.TooLong);
        Assert.Contains(actual, l => l.BareLineFeed);
        Assert.Contains(actual, l => l.BareCarriageReturn);
    }

    [Fact]
    public void Fresh_bodies_are_handed_out_once_and_stay_within_their_bound()
    {
        using var fresh = new Postern.Queue.FreshBodies(maxBytes: 1000);
        fresh.Add(1, "first body"u8);
        using (var body = fresh.Take(1))
            Assert.Equal("first body"u8.ToArray(), body!.Memory.ToArray());
        Assert.Null(fresh.Take(1));                       // once
        for (var mid = 2; mid < 100; mid++) fresh.Add(mid, new byte[200]);
        Assert.True(fresh.Bytes <= 1000);
        Assert.Null(fresh.Take(2));                       // the oldest went first
        Assert.NotNull(fresh.Take(99));
        fresh.Add(200, new byte[600]);                    // over a quarter of the bound: not kept
        Assert.Null(fresh.Take(200));
        fresh.Add(300, "x"u8);
        fresh.Remove(300);
        Assert.Null(fresh.Take(300));
    }
}
