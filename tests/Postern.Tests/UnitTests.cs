using System.Net;
using System.Text;
using MimeKit;
using Postern.Admin;
using Postern.Dns;
using Postern.Inbound;
using Postern.Observability;
using Postern.Outbound;
using Postern.Queue;
using Xunit;

namespace Postern.Tests;

/// <summary>The pure parts: parsing, matching, formatting, validation.</summary>
public sealed class UnitTests
{
    [Theory]
    [InlineData("10.0.0.0/8", "10.200.3.4", true)]
    [InlineData("10.0.0.0/8", "11.0.0.1", false)]
    [InlineData("192.168.1.7", "192.168.1.7", true)]
    [InlineData("192.168.1.7", "192.168.1.8", false)]
    [InlineData("172.16.0.0/12", "172.31.255.255", true)]
    [InlineData("172.16.0.0/12", "172.32.0.0", false)]
    [InlineData("2001:db8::/32", "2001:db8:1::5", true)]
    [InlineData("2001:db8::/32", "2001:db9::5", false)]
    [InlineData("0.0.0.0/0", "8.8.8.8", true)]
    [InlineData("127.0.0.0/8", "::ffff:127.0.0.1", true)]
    public void Sender_patterns_match_IPs_and_CIDR_ranges(string pattern, string client, bool expected)
    {
        Assert.True(SenderPattern.TryParse(pattern, out var p));
        Assert.Equal(expected, p.Matches(IPAddress.Parse(client), null));
    }

    [Theory]
    [InlineData("mail.example.com", "mail.example.com", true)]
    [InlineData("mail.example.com", "MAIL.Example.com", true)]
    [InlineData("mail.example.com", "x.mail.example.com", false)]
    [InlineData(".example.com", "a.b.example.com", true)]
    [InlineData(".example.com", "example.com", false)]
    [InlineData(".example.com", "badexample.com", false)]
    [InlineData(".example.com", null, false)]
    public void Sender_patterns_match_verified_host_names(string pattern, string? host, bool expected)
    {
        Assert.True(SenderPattern.TryParse(pattern, out var p));
        Assert.True(p.NeedsHostName);
        Assert.Equal(expected, p.Matches(IPAddress.Parse("192.0.2.1"), host));
    }

    [Theory]
    [InlineData("10.0.0.0/33")]
    [InlineData("not a host!")]
    [InlineData("")]
    [InlineData("1.2.3.4/x")]
    public void Bad_sender_patterns_are_refused(string pattern) => Assert.False(SenderPattern.TryParse(pattern, out _));

    [Theory]
    [InlineData("Example.COM.", "example.com")]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    [InlineData("-bad.example", null)]
    [InlineData("a..b", null)]
    [InlineData("", null)]
    public void Domains_normalise_to_lower_case_A_labels(string input, string? expected) =>
        Assert.Equal(expected, DomainNames.Normalize(input));

    [Theory]
    [InlineData("<user@example.com>", "user@example.com", 0)]
    [InlineData("<user@example.com> SIZE=100 BODY=8BITMIME", "user@example.com", 2)]
    [InlineData("<@relay.example:user@example.com>", "user@example.com", 0)]
    [InlineData("<\"odd user\"@example.com>", "\"odd user\"@example.com", 0)]
    [InlineData("<>", "", 0)]
    public void Paths_parse(string text, string address, int parameters)
    {
        Assert.Null(SmtpSyntax.ParsePath(text, allowNull: true, out var parsed, out var p));
        Assert.Equal(address, parsed);
        Assert.Equal(parameters, p.Count);
    }

    [Theory]
    [InlineData("user@example.com")]
    [InlineData("<user>")]
    [InlineData("<user@>")]
    [InlineData("<user@-bad-.com>")]
    [InlineData("<user@example.com")]
    public void Bad_paths_are_refused(string text) =>
        Assert.NotNull(SmtpSyntax.ParsePath(text, allowNull: false, out _, out _));

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a+2Bb", "a+b")]
    [InlineData("x+3Dy", "x=y")]
    [InlineData("bad+2", null)]
    [InlineData("bad=", null)]
    public void Xtext_decodes(string xtext, string? expected) => Assert.Equal(expected, SmtpSyntax.DecodeXtext(xtext));

    [Fact]
    public void Xtext_round_trips() =>
        Assert.Equal("user+tag=x@exämple.com", SmtpSyntax.DecodeXtext(SmtpSyntax.EncodeXtext("user+tag=x@exämple.com")));

    private static async Task<List<SmtpLine>> Lines(string input, int max)
    {
        var reader = new SmtpLineReader(new MemoryStream(Encoding.ASCII.GetBytes(input)), 4096);
        var lines = new List<SmtpLine>();
        while (true)
        {
            var l = await reader.ReadLineAsync(max, CancellationToken.None);
            if (l.EndOfStream) return lines;
            lines.Add(l);
        }
    }

    [Fact]
    public async Task Line_reader_reports_bare_newlines_and_overlong_lines()
    {
        var lines = await Lines("ok\r\nbare lf\nbare\rcr\r\n" + new string('x', 3000) + "\r\nafter\r\n", 1000);
        Assert.Equal(5, lines.Count);
        Assert.False(lines[0].HasBareNewline);
        Assert.Equal(2, lines[0].Length);
        Assert.True(lines[1].BareLineFeed);
        Assert.True(lines[2].BareCarriageReturn);
        Assert.True(lines[3].TooLong);
        Assert.False(lines[4].TooLong);
        Assert.Equal(5, lines[4].Length);
    }

    [Fact]
    public async Task Line_reader_handles_lines_longer_than_its_buffer()
    {
        var lines = await Lines(new string('y', 20000) + "\r\nz\r\n", 1000);
        Assert.Equal(2, lines.Count);
        Assert.True(lines[0].TooLong);
        Assert.Equal(1, lines[1].Length);
    }

    [Fact]
    public void Equal_MX_preferences_are_shuffled_and_lower_preferences_come_first()
    {
        var hosts = new[] { new MxHost(20, "c"), new MxHost(10, "a"), new MxHost(10, "b"), new MxHost(30, "d") };
        var firsts = new HashSet<string>();
        for (var i = 0; i < 200; i++)
        {
            var ordered = RouteResolver.OrderByPreference(hosts);
            Assert.Equal([10, 10, 20, 30], ordered.Select(h => h.Preference));
            firsts.Add(ordered[0].Host);
        }
        Assert.Equal(["a", "b"], firsts.Order());
    }

    [Theory]
    [InlineData("550 5.1.1 <x>: unknown", 550, "5.1.1")]
    [InlineData("451 4.3.0 try later", 451, "4.3.0")]
    [InlineData("554 rejected", 554, "5.0.0")]
    [InlineData("450 5.1.1 class mismatch", 450, "4.0.0")]
    public void Reply_status_codes_are_read_or_derived(string line, int code, string status)
    {
        var reply = new SmtpReply(code, [line[4..]]);
        Assert.Equal(status, reply.Status);
    }

    [Fact]
    public void Mail_log_lines_have_the_appliance_layout()
    {
        var when = new DateTimeOffset(2024, 9, 6, 15, 23, 39, TimeZoneInfo.Local.GetUtcOffset(new DateTime(2024, 9, 6)));
        var line = MailLog.Format(new MessageQueued(5444) { Time = when });
        Assert.Equal("Fri Sep  6 15:23:39 2024 Info: MID 5444 queued for delivery", line);
        Assert.EndsWith("Debug: DNS query: Q(_mta-sts.domain.com, 'TXT') NoError", MailLog.Format(new DnsQueried("_mta-sts.domain.com", "TXT", "NoError")));
        Assert.Contains("Info: New SMTP DCID 834833 interface 10.1.1.2 address 10.1.1.3 port 25",
            MailLog.Format(new DeliveryConnectionOpened(834833, IPEndPoint.Parse("10.1.1.2:40000"), IPAddress.Parse("10.1.1.3"), 25, "mx", "domain.com")));
    }

    [Fact]
    public async Task Mail_log_rolls_over_past_its_size_limit()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var events = new MailEventStream();
        await using (var log = new MailLog(dir, new MailLogSettings { MaxFileBytes = 65536 }, Admin.LogLevel.Info))
        {
            log.Attach(events);
            for (var i = 0; i < 3000; i++)
            {
                events.Publish(new MessageQueued(i));
                if (i % 500 == 0) await Task.Delay(50);   // several write batches
            }
        }
        var rolled = Directory.GetFiles(dir, "mail.@*.s");
        Assert.NotEmpty(rolled);
        var all = rolled.Append(Path.Combine(dir, "mail.current")).SelectMany(File.ReadAllLines).ToList();
        Assert.Equal(3000, all.Count);
        Assert.All(rolled, f => Assert.InRange(new FileInfo(f).Length, 1, 65536 + (1 << 20)));
    }

    [Fact]
    public void Configuration_validation_lists_every_problem()
    {
        var config = PosternConfig.CreateDefault();
        config.Hostname = "not a host";
        config.Listeners[0].Port = 70000;
        config.Listeners[0].DefaultPolicy = "MISSING";
        config.DestinationControls.Default.MaxMessagesPerConnection = 0;
        config.DefaultBounceProfile.MaxRetrySeconds = 1;
        var e = Assert.Throws<ConfigException>(config.Validate);
        Assert.Contains("hostname 'not a host'", e.Message);
        Assert.Contains("port 70000", e.Message);
        Assert.Contains("'MISSING' is not defined", e.Message);
        Assert.Contains("maxMessagesPerConnection", e.Message);
        Assert.Contains("maxRetrySeconds", e.Message);
    }

    [Fact]
    public void Configuration_files_round_trip_and_reject_unknown_keys()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var file = Path.Combine(dir, "p.json");
        File.WriteAllText(file, PosternConfig.CreateDefault().ToJson());
        Assert.Equal(PosternConfig.CreateDefault().ToJson(), PosternConfig.Load(file).ToJson());
        File.WriteAllText(file, "{ \"hostname\": \"a.example\", \"listners\": [] }");
        Assert.Contains("listners", Assert.Throws<ConfigException>(() => PosternConfig.Load(file)).Message);
        File.WriteAllText(file, "{ \"hostname\": ");
        Assert.Contains("not valid", Assert.Throws<ConfigException>(() => PosternConfig.Load(file)).Message);
    }

    [Fact]
    public void DSN_with_RET_HDRS_carries_only_the_original_headers()
    {
        var original = new QueuedMessage
        {
            Mid = 7, Sender = "s@sender.test", Ret = DsnRet.Headers, EnvelopeId = "env-1", ReceivedAt = DateTimeOffset.UtcNow,
            Recipients = [new QueuedRecipient { Rid = 0, Address = "r@good.test", Domain = "good.test", OriginalRecipient = "rfc822;R@good.test" }],
        };
        var body = Encoding.ASCII.GetBytes("Subject: secret stuff\r\nFrom: s@sender.test\r\n\r\nthe body must not come back\r\n");
        var dsn = DsnBuilder.Build("postern.test", original, body,
            [new DsnRecipient(original.Recipients[0], "failed", "5.1.1", "smtp; 550 5.1.1 unknown", "mx1.good.test")], DateTimeOffset.UtcNow);
        var text = Encoding.ASCII.GetString(dsn);
        Assert.DoesNotContain("the body must not come back", text);
        Assert.Contains("text/rfc822-headers", text);
        Assert.Contains("Subject: secret stuff", text);
        var message = MimeMessage.Load(new MemoryStream(dsn));
        Assert.Equal("auto-replied", message.Headers["Auto-Submitted"]);
        var status = Assert.IsType<MultipartReport>(message.Body).OfType<MessageDeliveryStatus>().Single();
        Assert.Equal("env-1", status.StatusGroups[0]["Original-Envelope-Id"]);
        Assert.Equal("rfc822;R@good.test", status.StatusGroups[1]["Original-Recipient"]);
        Assert.Equal("smtp; 550 5.1.1 unknown", status.StatusGroups[1]["Diagnostic-Code"]);
    }

    [Fact]
    public void Header_peek_finds_Message_ID_and_Subject_in_the_header_block_only()
    {
        var (id, subject, received) = HeaderPeek.Find(Encoding.ASCII.GetBytes("Subject: hi\r\nReceived: from a\r\nmessage-id: <a@b>\r\n\r\nSubject: not this\r\nReceived: no\r\n"));
        Assert.Equal(1, received);
        Assert.Equal("<a@b>", id);
        Assert.Equal("hi", subject);
    }
}
