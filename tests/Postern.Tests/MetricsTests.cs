using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Admin;
using Postern.Observability;
using Postern.Tests.Support;
using Xunit;

namespace Postern.Tests;

/// <summary>The Prometheus endpoint: counters that follow the mail flow, the exposition format, and a hostile HTTP client.</summary>
public sealed class MetricsTests
{
    private readonly TestWorld _world = TestWorld.Instance;

    [Fact]
    public async Task Scrape_shows_counters_move_with_delivered_bounced_and_deferred_mail()
    {
        await using var gw = RunningGateway.Start(_world.NewConfig("metrics"));
        var endpoint = gw.Gateway.MetricsEndpoint!.LocalEndPoint;
        Assert.NotEqual(9187, endpoint.Port);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var before = await ScrapeAsync(http, endpoint);
        Assert.Equal(0, before.Value("postern_config_version"));
        Assert.Equal(1, before.Value("postern_queue_stats_up"));
        Assert.Equal(0, before.Value("postern_queue_messages"));
        Assert.Equal(0, before.Value("postern_queue_oldest_message_age_seconds"));
        Assert.True(before.Value("postern_uptime_seconds") >= 0);
        Assert.Equal(0, before.Value("postern_inbound_sessions", ("listener", "OutgoingMail")));

        var sender = TestWorld.Unique("msend") + "@sender.test";
        var good = TestWorld.Unique("mgood") + "@good.test";
        var rejected = TestWorld.Unique("reject") + "@good.test";
        var deferred = TestWorld.Unique("tempfail") + "@good.test";
        foreach (var rcpt in new[] { good, rejected, deferred }) await RawSmtp.SubmitAsync(gw.Private, sender, rcpt, "metrics");
        _world.WaitForMail(good);
        gw.WaitForLogLine("Bounced: DCID", $"To:<{rejected}>", "5.1.1");
        gw.WaitForLogLine("Delayed: DCID", $"To:<{deferred}>", "4.2.0");

        // Outbound TLS is counted when the outcome is known, at the latest when the connection closes: poll.
        Exposition after = before;
        var deadline = Stopwatch.StartNew();
        bool Moved(Exposition now) =>
            now.Value("postern_messages_received_total") >= before.Value("postern_messages_received_total") + 3
            && now.Value("postern_recipients_delivered_total") > before.Value("postern_recipients_delivered_total")
            && now.Value("postern_recipients_bounced_total") > before.Value("postern_recipients_bounced_total")
            && now.Value("postern_recipients_deferred_total") > before.Value("postern_recipients_deferred_total")
            && now.Value("postern_connections_total", ("direction", "inbound")) >= before.Value("postern_connections_total", ("direction", "inbound")) + 3
            && now.Value("postern_connections_total", ("direction", "outbound")) > before.Value("postern_connections_total", ("direction", "outbound"))
            && now.Sum("postern_outbound_tls_total", ("level", "preferred")) > before.Sum("postern_outbound_tls_total", ("level", "preferred"));
        while (!Moved(after = await ScrapeAsync(http, endpoint)))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "counters did not move:\n" + after.Text);
            await Task.Delay(200);
        }
        Assert.True(after.Value("postern_received_bytes_total") > 0);
        Assert.True(after.Value("postern_messages_queued_total") >= 4, after.Text);   // three received and (at least) the DSN
        Assert.True(after.Value("postern_bounces_generated_total") >= 1, after.Text);
        Assert.True(after.Value("postern_recipients_accepted_total") >= 3, after.Text);
        Assert.True(after.Value("postern_hat_decisions_total", ("action", "relay")) >= 3, after.Text);
        // Postfix in the test world offers STARTTLS: every outbound connection at level Preferred was encrypted.
        var tls = after.Samples.Where(s => s.Name == "postern_outbound_tls_total").ToList();
        Assert.NotEmpty(tls);
        Assert.All(tls, s => Assert.Contains(s.Labels["outcome"], new[] { "certificate_verified", "encrypted" }));
        // The deferred message waits in the queue for its next attempt.
        Assert.True(after.Value("postern_queue_messages") >= 1, after.Text);
        Assert.True(after.Value("postern_queue_recipients") >= 1, after.Text);
        Assert.True(after.Value("postern_queue_oldest_message_age_seconds") > 0, after.Text);
        Assert.Contains("# TYPE postern_destination_active_connections gauge\n", after.Text);
        Assert.Equal(0, after.Value("postern_dane_outcomes_total", ("result", "authenticated")));
        Assert.Equal(0, after.Value("postern_mta_sts_outcomes_total", ("result", "ok"), ("mode", "enforce")));

        // Any other path is 404, any other method 405; the gateway's mail log says where metrics are served.
        using (var other = await http.GetAsync($"http://{endpoint}/other"))
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        using (var post = await http.PostAsync($"http://{endpoint}/metrics", new StringContent("x")))
        {
            Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
            Assert.Equal("GET", Assert.Single(post.Content.Headers.Allow));
        }
        gw.WaitForLogLine($"metrics on http://{endpoint}/metrics");
    }

    [Fact]
    public async Task Oversize_headers_idle_clients_and_too_many_connections_are_closed_without_hanging()
    {
        await using var endpoint = MetricsEndpoint.Start(new MetricsSettings { Port = 0 }, _ => Task.FromResult("# HELP x_total x\n# TYPE x_total counter\nx_total 1\n"));
        var at = endpoint.LocalEndPoint;

        // A header line longer than the 8 KB bound: 431 and the connection closed, promptly.
        var watch = Stopwatch.StartNew();
        var reply = await ExchangeAsync(at, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: " + new string('a', 10_000) + "\r\n\r\n", TimeSpan.FromSeconds(10));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
        Assert.True(reply.Length == 0 || reply.StartsWith("HTTP/1.1 431 ", StringComparison.Ordinal), reply);

        // Malformed requests: 400; a good one: 200 with the exposition content type and Connection: close.
        foreach (var bad in new[] { "GET /metrics\r\n\r\n", "GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
                     "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n", "GET /metrics HTTP/1.1\r\nX: a\rb\r\n\r\n", "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n" })
            Assert.StartsWith("HTTP/1.1 400 ", await ExchangeAsync(at, bad, TimeSpan.FromSeconds(10)));
        var ok = await ExchangeAsync(at, "GET /metrics?x=1 HTTP/1.0\n\n", TimeSpan.FromSeconds(10));
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", ok);
        Assert.Contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n", ok);
        Assert.Contains("\r\nConnection: close\r\n", ok);
        Assert.EndsWith("\r\n\r\n# HELP x_total x\n# TYPE x_total counter\nx_total 1\n", ok);
        Assert.StartsWith("HTTP/1.1 405 ", await ExchangeAsync(at, "DELETE /metrics HTTP/1.1\r\n\r\n", TimeSpan.FromSeconds(10)));

        // Sixteen idle connections fill the endpoint: the seventeenth is closed at once, and the idle
        // ones are closed at the 5 s read deadline, after which scrapes are answered again.
        var idle = new List<TcpClient>();
        try
        {
            for (var i = 0; i < MetricsEndpoint.MaxConnections; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(at);
                idle.Add(c);
            }
            await Task.Delay(300);   // all accepted
            watch.Restart();
            var extra = await ExchangeAsync(at, "", TimeSpan.FromSeconds(10));
            Assert.Equal("", extra);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"the connection over the limit took {watch.Elapsed} to close");
            watch.Restart();
            var buffer = new byte[16];
            foreach (var c in idle)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try { Assert.Equal(0, await c.GetStream().ReadAsync(buffer, cts.Token)); }
                catch (IOException) { }   // a reset is a close too
            }
            Assert.InRange(watch.Elapsed.TotalSeconds, 3.5, 8);
        }
        finally
        {
            foreach (var c in idle) c.Dispose();
        }
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", await ExchangeAsync(at, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_taken_metrics_port_is_a_clear_start_and_preflight_error_and_metrics_can_be_switched_off()
    {
        await using var first = RunningGateway.Start(_world.NewConfig("metrics-a"));
        var taken = first.Gateway.MetricsEndpoint!.LocalEndPoint.Port;
        var second = _world.HoldingConfig("metrics-b", c => c.Metrics.Port = taken);
        var error = Assert.Throws<ConfigException>(() => Gateway.Start(second));
        Assert.Contains($"metrics endpoint cannot bind 127.0.0.1:{taken}", error.Message);
        Assert.Contains(ConfigPreflight.Problems(second, checkBind: true), p => p.StartsWith($"metrics endpoint cannot bind 127.0.0.1:{taken}", StringComparison.Ordinal));
        Assert.DoesNotContain(ConfigPreflight.Warnings(second), w => w.Contains("metrics", StringComparison.Ordinal));
        // The failed start released its listeners: a gateway on the same configuration without metrics starts.
        second.Metrics.Enabled = false;
        await using var off = RunningGateway.Start(second);
        Assert.Null(off.Gateway.MetricsEndpoint);
        Assert.True(new MetricsSettings().Enabled);
        Assert.Equal(("127.0.0.1", 9187), (new MetricsSettings().Address, new MetricsSettings().Port));
    }

    [Fact]
    public void Writer_escapes_label_values_and_help_and_checks_names()
    {
        Assert.Equal(@"a\\b\""c\nd", PrometheusTextWriter.EscapeLabelValue("a\\b\"c\nd"));
        Assert.Equal("plain.example", PrometheusTextWriter.EscapeLabelValue("plain.example"));
        Assert.Equal("tab\tand ünïcode", PrometheusTextWriter.EscapeLabelValue("tab\tand ünïcode"));
        Assert.Equal(@"help with \\ and \n and ""quotes""", PrometheusTextWriter.EscapeHelp("help with \\ and \n and \"quotes\""));
        var w = new PrometheusTextWriter();
        w.Counter("demo_total", "A demo.\nSecond line");
        w.Sample(3, ("domain", "evil\"}\n x 1"), ("kind", "a\\b"));
        w.Gauge("demo_ratio", "Ratio.");
        w.Sample(0.25);
        w.Sample(double.PositiveInfinity, ("le", "inf"));
        Assert.Equal("# HELP demo_total A demo.\\nSecond line\n# TYPE demo_total counter\n" +
                     "demo_total{domain=\"evil\\\"}\\n x 1\",kind=\"a\\\\b\"} 3\n" +
                     "# HELP demo_ratio Ratio.\n# TYPE demo_ratio gauge\ndemo_ratio 0.25\ndemo_ratio{le=\"inf\"} +Inf\n", w.ToString());
        var parsed = Exposition.Parse(w.ToString());
        Assert.Equal(3, parsed.Value("demo_total", ("domain", "evil\"}\n x 1"), ("kind", "a\\b")));
        Assert.Equal(double.PositiveInfinity, parsed.Value("demo_ratio", ("le", "inf")));

        Assert.Throws<ArgumentException>(() => new PrometheusTextWriter().Counter("demo", "no _total"));
        Assert.Throws<ArgumentException>(() => new PrometheusTextWriter().Gauge("1demo", "bad name"));
        Assert.Throws<ArgumentException>(() => { var x = new PrometheusTextWriter(); x.Gauge("g", "g"); x.Sample(1, ("bad-label", "v")); });
        Assert.Throws<InvalidOperationException>(() => { var x = new PrometheusTextWriter(); x.Gauge("g", "g"); x.Gauge("g", "again"); });
        Assert.Throws<InvalidOperationException>(() => new PrometheusTextWriter().Sample(1));
    }

    [Fact]
    public void Events_become_bounded_series_and_only_the_top_destinations_get_a_domain_label()
    {
        var stream = new MailEventStream();
        var metrics = new MailMetrics();
        metrics.Attach(stream);
        var local = new IPEndPoint(IPAddress.Loopback, 40000);
        // A Preferred connection that negotiated TLS with no verdict: "encrypted", counted when it closes.
        stream.Publish(new DeliveryConnectionOpened(1, local, IPAddress.Loopback, 25, "mx.a.example", "a.example"));
        stream.Publish(new DeliveryPolicyApplied(1, "a.example", "Preferred", "Default"));
        stream.Publish(new DeliveryTlsNegotiated(1, "TLSv1.3", "TLS_AES_256_GCM_SHA384", ""));
        // A Required (Verify) connection whose certificate failed: counted at once.
        stream.Publish(new DeliveryConnectionOpened(2, local, IPAddress.Loopback, 25, "mx.b.example", "b.example"));
        stream.Publish(new DeliveryPolicyApplied(2, "b.example", "Required (Verify)", "b.example"));
        stream.Publish(new DeliveryTlsOutcome(2, TlsOutcomeKind.VerifyFailed, "certificate has expired"));
        // DANE-authenticated after the handshake; MTA-STS testing mode that would have failed.
        stream.Publish(new DeliveryConnectionOpened(3, local, IPAddress.Loopback, 25, "mx.c.example", "c.example"));
        stream.Publish(new DeliveryPolicyApplied(3, "c.example", "Preferred", "Default", "opportunistic"));
        stream.Publish(new StsApplying(3, "c.example", "testing"));
        stream.Publish(new DeliveryTlsNegotiated(3, "TLSv1.3", "TLS_AES_256_GCM_SHA384", ""));
        stream.Publish(new DaneOutcome(3, "c.example", "mx.c.example", DaneResult.Authenticated, "3 1 1 ab", 0, "matched"));
        stream.Publish(new StsHostFailed(3, "c.example", "mx.c.example", StsResult.WebPkiInvalid, "untrusted", Testing: true));
        stream.Publish(new StsSuccessful(3, "c.example"));
        // Received over SMTP (ready, then queued) versus a DSN (queued only).
        stream.Publish(new MessageReady(10, 1234, "s@x.example"));
        stream.Publish(new MessageQueued(10));
        stream.Publish(new MessageQueued(11));
        stream.Publish(new MessageFinished(10, "done (some recipients bounced)"));
        stream.Publish(new ConfigurationApplied(7, "admin", ""));

        var active = Enumerable.Range(1, 50).ToDictionary(i => $"d{i:00}.example", i => i);
        active["evil\"\n.example"] = 100;
        var text = metrics.Render(new MailMetrics.Gauges(null, active, [("IncomingMail", 2)], TopDestinations: 3, DateTimeOffset.UtcNow));
        var expo = Exposition.Parse(text);

        Assert.Equal(0, expo.Sum("postern_outbound_tls_total", ("outcome", "encrypted")));   // connection 1 still open: not counted yet
        Assert.Equal(2, expo.Sum("postern_outbound_tls_total"));
        Assert.Equal(1, expo.Value("postern_outbound_tls_total", ("level", "required_verify"), ("outcome", "verify_failed")));
        Assert.Equal(1, expo.Value("postern_outbound_tls_total", ("level", "preferred"), ("outcome", "dane_authenticated")));
        stream.Publish(new DeliveryConnectionClosed(1, ""));
        stream.Publish(new DeliveryConnectionClosed(2, ""));
        stream.Publish(new DeliveryConnectionClosed(3, ""));
        expo = Exposition.Parse(metrics.Render(new MailMetrics.Gauges(null, active, [], 3, DateTimeOffset.UtcNow)));
        Assert.Equal(1, expo.Value("postern_outbound_tls_total", ("level", "preferred"), ("outcome", "encrypted")));
        Assert.Equal(3, expo.Sum("postern_outbound_tls_total"));   // one per connection, closing adds nothing twice
        Assert.Equal(3, expo.Value("postern_connections_total", ("direction", "outbound")));
        Assert.Equal(1, expo.Value("postern_dane_outcomes_total", ("result", "authenticated")));
        Assert.Equal(1, expo.Value("postern_mta_sts_outcomes_total", ("result", "web_pki_invalid"), ("mode", "testing")));
        Assert.Equal(1, expo.Value("postern_mta_sts_outcomes_total", ("result", "ok"), ("mode", "testing")));
        // Results that cannot happen in a series are left out until counted; the possible ones are always there.
        Assert.Equal(0, expo.Value("postern_mta_sts_policy_fetches_total", ("result", "policy_invalid")));
        Assert.DoesNotContain("postern_mta_sts_policy_fetches_total{result=\"start_tls_not_supported\"}", text);
        Assert.Equal(0, expo.Value("postern_mta_sts_outcomes_total", ("result", "not_in_policy"), ("mode", "enforce")));
        Assert.Equal(1, expo.Value("postern_messages_received_total"));
        Assert.Equal(1234, expo.Value("postern_received_bytes_total"));
        Assert.Equal(2, expo.Value("postern_messages_queued_total"));
        Assert.Equal(1, expo.Value("postern_messages_finished_total", ("outcome", "partly_bounced")));
        Assert.Equal(7, expo.Value("postern_config_version"));
        Assert.Equal(0, expo.Value("postern_queue_stats_up"));
        Assert.DoesNotContain("postern_queue_messages", text.Split('\n').Where(l => !l.StartsWith('#')).Select(l => l.Split(' ')[0]));

        // Top 3 by active connections, the busiest (with its hostile name escaped) first.
        var domains = expo.Samples.Where(s => s.Name == "postern_destination_active_connections").ToList();
        Assert.Equal(["evil\"\n.example", "d50.example", "d49.example"], domains.Select(s => s.Labels["domain"]));
        Assert.Equal(100 + Enumerable.Range(1, 50).Sum(), expo.Value("postern_outbound_active_connections"));
        // Every label value is from a fixed set except those three domains.
        var labelValues = expo.Samples.Where(s => s.Name != "postern_destination_active_connections").SelectMany(s => s.Labels.Values).Distinct().Count();
        Assert.True(labelValues < 60, $"{labelValues} distinct label values");
    }

    [Fact]
    public void The_enums_used_as_label_indexes_are_contiguous_from_zero()
    {
        // MailMetrics indexes its counters by (int)value: a value set explicitly later must fail here, not miscount.
        static void Contiguous<T>() where T : struct, Enum => Assert.Equal(Enumerable.Range(0, Enum.GetValues<T>().Length), Enum.GetValues<T>().Select(v => Convert.ToInt32(v, CultureInfo.InvariantCulture)));
        Contiguous<TlsOutcomeKind>();
        Contiguous<DaneResult>();
        Contiguous<StsResult>();
        Contiguous<TlsLevel>();
        Contiguous<PolicyAction>();
    }

    // ---- helpers ----

    private static async Task<Exposition> ScrapeAsync(HttpClient http, IPEndPoint endpoint)
    {
        using var response = await http.GetAsync($"http://{endpoint}/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var type = response.Content.Headers.ContentType!;
        Assert.Equal("text/plain", type.MediaType);
        Assert.Equal("utf-8", type.CharSet);
        Assert.Contains(type.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        Assert.True(response.Headers.ConnectionClose);
        return Exposition.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Sends raw bytes and reads until the server closes (or resets) the connection; a timeout fails the test.</summary>
    private static async Task<string> ExchangeAsync(IPEndPoint at, string request, TimeSpan timeout)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(at);
        var stream = client.GetStream();
        using var cts = new CancellationTokenSource(timeout);
        var received = new MemoryStream();
        try
        {
            if (request.Length > 0) await stream.WriteAsync(Encoding.Latin1.GetBytes(request), cts.Token);
            var buffer = new byte[4096];
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0) received.Write(buffer, 0, n);
        }
        catch (IOException) { }   // reset by the server: closed
        catch (OperationCanceledException) { throw new TimeoutException("the metrics endpoint did not close the connection: " + Encoding.UTF8.GetString(received.ToArray())); }
        return Encoding.UTF8.GetString(received.ToArray());
    }

    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    /// <summary>A strict reader of the text format: HELP and TYPE before each family's samples, every other line `name{labels} value`.</summary>
    public sealed class Exposition
    {
        public string Text { get; private init; } = "";
        public List<Sample> Samples { get; } = new();

        public double Value(string name, params (string Name, string Value)[] labels)
        {
            var found = Samples.Where(s => s.Name == name && s.Labels.Count == labels.Length && labels.All(l => s.Labels.GetValueOrDefault(l.Name) == l.Value)).ToList();
            Assert.True(found.Count == 1, $"series {name} {string.Join(",", labels)} found {found.Count} times in:\n{Text}");
            return found[0].Value;
        }

        public double Sum(string name, params (string Name, string Value)[] labels) =>
            Samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Name) == l.Value)).Sum(s => s.Value);

        public static Exposition Parse(string text)
        {
            var result = new Exposition { Text = text };
            Assert.EndsWith("\n", text);
            string? help = null, family = null;
            var families = new HashSet<string>();
            var series = new HashSet<string>();
            foreach (var line in text[..^1].Split('\n'))
            {
                if (line.StartsWith("# HELP ", StringComparison.Ordinal))
                {
                    help = line[7..].Split(' ')[0];
                    Assert.True(PrometheusTextWriter.IsMetricName(help), line);
                    Assert.True(families.Add(help), $"family {help} appears twice");
                    continue;
                }
                if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
                {
                    var parts = line[7..].Split(' ');
                    Assert.Equal(2, parts.Length);
                    Assert.Equal(help, parts[0]);
                    Assert.Contains(parts[1], new[] { "counter", "gauge" });
                    if (parts[1] == "counter") Assert.EndsWith("_total", parts[0]);
                    family = parts[0];
                    continue;
                }
                Assert.False(line.StartsWith('#'), line);
                var sample = ParseSample(line);
                Assert.Equal(family, sample.Name);
                Assert.True(series.Add(sample.Name + "{" + string.Join(",", sample.Labels.OrderBy(l => l.Key).Select(l => $"{l.Key}={l.Value}")) + "}"), "duplicate series: " + line);
                result.Samples.Add(sample);
            }
            return result;
        }

        private static Sample ParseSample(string line)
        {
            var i = 0;
            while (i < line.Length && line[i] is not ('{' or ' ')) i++;
            var name = line[..i];
            Assert.True(PrometheusTextWriter.IsMetricName(name), line);
            var labels = new Dictionary<string, string>();
            if (i < line.Length && line[i] == '{')
            {
                i++;
                while (true)
                {
                    var start = i;
                    while (i < line.Length && line[i] != '=') i++;
                    var label = line[start..i];
                    Assert.True(PrometheusTextWriter.IsLabelName(label), line);
                    Assert.True(i + 1 < line.Length && line[i + 1] == '"', line);
                    i += 2;
                    var value = new StringBuilder();
                    for (; i < line.Length && line[i] != '"'; i++)
                    {
                        if (line[i] != '\\') { value.Append(line[i]); continue; }
                        i++;
                        Assert.True(i < line.Length, line);
                        value.Append(line[i] switch { '\\' => '\\', '"' => '"', 'n' => '\n', _ => throw new Xunit.Sdk.XunitException("bad escape: " + line) });
                    }
                    Assert.True(i < line.Length, "unterminated label value: " + line);
                    Assert.True(labels.TryAdd(label, value.ToString()), line);
                    i++;
                    Assert.True(i < line.Length, line);
                    if (line[i] == '}') { i++; break; }
                    Assert.Equal(',', line[i]);
                    i++;
                }
            }
            Assert.True(i < line.Length && line[i] == ' ', line);
            var text = line[(i + 1)..];
            var number = text switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            return new Sample(name, labels, number);
        }
    }
}
