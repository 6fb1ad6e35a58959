using System.CommandLine;
using System.Text.Json;
using Postern.Queue;

namespace Postern.Admin;

/// <summary>
/// Operator commands (the appliance's suspenddel/resumedel, suspendlistener/resumelistener,
/// delivernow, status; Postfix's postqueue -f / postsuper -h habits). Holds are written to
/// the store and a running gateway takes them within a second; the audit line is in its log.
/// </summary>
public static class OperatorCommands
{
    public static void AddTo(RootCommand root, Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var optionalDomain = new Argument<string?>("domain") { Description = "A destination domain; all domains when omitted", Arity = ArgumentArity.ZeroOrOne };
        var listenerName = new Argument<string>("listener") { Description = "Listener name" };

        Command Hold(string name, string description, string kind, bool on, Argument argument, Func<ParseResult, string> target, Func<string, string> said)
        {
            var command = new Command(name, description) { argument, configOption };
            command.SetAction(async p =>
            {
                var config = loadConfig(p.GetValue(configOption));
                if (config is null) return 2;
                return await QueueService.WithAsync(config, queue =>
                {
                    var t = kind == "listener" ? queue.SetListenerHold(target(p), on, ConfigService.CurrentUser) : queue.SetDeliveryHold(target(p), on, ConfigService.CurrentUser);
                    Console.WriteLine(said(t) + " A running gateway takes this within a second.");
                    return Task.FromResult(0);
                });
            });
            return command;
        }

        string Domain(ParseResult p) => p.GetValue(optionalDomain) is { Length: > 0 } d ? d.ToLowerInvariant() : "*";
        string All(string t) => t == "*" ? "all domains" : t;
        root.Subcommands.Add(Hold("suspenddel", "Hold deliveries (to one domain, or all): messages stay queued, nothing is attempted", "delivery", true,
            optionalDomain, Domain, t => $"Delivery to {All(t)} suspended."));
        root.Subcommands.Add(Hold("resumedel", "Resume deliveries held by suspenddel", "delivery", false,
            optionalDomain, Domain, t => $"Delivery to {All(t)} resumed."));
        root.Subcommands.Add(Hold("suspendlistener", "Stop accepting connections on a listener (new connections get 421; open sessions go on)", "listener", true,
            listenerName, p => p.GetValue(listenerName)!, t => $"Listener {t} suspended."));
        root.Subcommands.Add(Hold("resumelistener", "Accept connections on a suspended listener again", "listener", false,
            listenerName, p => p.GetValue(listenerName)!, t => $"Listener {t} resumed."));

        var delivernow = new Command("delivernow", "Make deferred recipients due now (one domain, or all)") { optionalDomain, configOption };
        delivernow.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            return await QueueService.WithAsync(config, async queue =>
            {
                var domain = Domain(p);
                var n = await queue.RetryAsync(domain: domain);
                Console.WriteLine($"{n} recipient(s) to {All(domain)} are due now; a running gateway picks them up within 5 seconds.");
                return 0;
            });
        });
        root.Subcommands.Add(delivernow);

        var status = new Command("status", "The running gateway: uptime, listeners, counters, holds; the queue") { configOption, jsonOption };
        status.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            var data = Path.GetFullPath(config.DataDirectory);
            var running = RunningStatus(data);
            await using var queue = Cluster.Stores.Queue(config);
            var (messages, recipients, oldest) = await queue.StatsAsync();
            using var versions = Cluster.Stores.Config(config);
            var holds = versions.Holds();
            if (p.GetValue(jsonOption))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    running = running is not null, gateway = running, queue = new { messages, pendingRecipients = recipients, oldest },
                    configVersion = versions.Latest()?.Number, holds,
                }, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true }));
                return running is null ? 1 : 0;
            }
            if (running is { } r)
            {
                var started = r.GetProperty("started").GetDateTimeOffset();
                Console.WriteLine($"Postern running (pid {r.GetProperty("pid").GetInt32()}), up {DateTimeOffset.UtcNow - started:d\\.hh\\:mm\\:ss}; configuration version {versions.Latest()?.Number.ToString() ?? "(none committed)"}");
                foreach (var l in r.GetProperty("listeners").EnumerateArray())
                    Console.WriteLine($"  listener {l.GetProperty("name").GetString()} on {l.GetProperty("endpoint").GetString()}: {l.GetProperty("sessions").GetInt32()} session(s){(l.GetProperty("suspended").GetBoolean() ? ", SUSPENDED" : "")}");
                var counters = r.GetProperty("counters");
                long C(string name) => counters.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
                Console.WriteLine($"  since start: {C("MessageQueued")} queued, {C("RecipientResponse")} recipient(s) delivered, {C("RecipientBounced")} bounced, {C("RecipientDelayed")} deferral(s), {C("ConnectionOpened")} connection(s)");
            }
            else Console.WriteLine("Postern is not running (no status written in the last 10 seconds).");
            Console.WriteLine($"  queue: {messages} message(s), {recipients} pending recipient(s){(oldest is { } o ? $", oldest received {o.UtcDateTime:u}" : "")}");
            foreach (var h in holds) Console.WriteLine($"  hold: {h.Kind} {(h.Target == "*" ? "(all domains)" : h.Target)} by {h.Who} since {h.Since.UtcDateTime:u}");
            return running is null ? 1 : 0;
        });
        root.Subcommands.Add(status);
    }

    /// <summary>The running gateway's status file (`&lt;data&gt;/status.json`), or null when none was written in the last 10 seconds.</summary>
    public static JsonElement? RunningStatus(string data)
    {
        var file = Path.Combine(data, "status.json");
        if (!File.Exists(file)) return null;
        var doc = JsonDocument.Parse(File.ReadAllText(file)).RootElement;
        return DateTimeOffset.UtcNow - doc.GetProperty("written").GetDateTimeOffset() < TimeSpan.FromSeconds(10) ? doc : null;
    }
}

/// <summary>`postern hoststatus DOMAIN` and `postern tophosts`: a destination as delivery sees it, and the busiest ones.</summary>
public static class HostStatusCommands
{
    public static void AddTo(RootCommand root, Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var domainArgument = new Argument<string>("domain") { Description = "Destination domain" };
        var hoststatus = new Command("hoststatus", "Destination Controls in force, open connections and delayed recipients for a domain") { domainArgument, configOption, jsonOption };
        hoststatus.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            var data = Path.GetFullPath(config.DataDirectory);
            var domain = (p.GetValue(domainArgument) ?? "").ToLowerInvariant();
            config = ConfigCommands.InForce(config);
            var destination = config.DestinationControls.Resolve(domain);
            await using var store = Cluster.Stores.Queue(config);
            var delayed = (await store.ListAsync())
                .SelectMany(m => m.Recipients.Where(r => !r.IsFinal && r.Domain == domain).Select(r => new { mid = m.Mid, address = r.Address, attempts = r.Attempts, nextAttempt = r.NextAttempt, lastResponse = r.LastResponse }))
                .ToList();
            var active = ActiveConnections(data).GetValueOrDefault(domain);
            var lastTls = LastTls(data, domain);
            if (p.GetValue(jsonOption))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { domain, destination, activeConnections = active, lastTls, delayed }, PosternConfig.JsonOptions));
                return 0;
            }
            Console.WriteLine($"{domain}: Destination Controls entry {destination.Entry}: TLS {EffectiveDestination.LevelName(destination.Tls)}, DANE {destination.Dane.ToString().ToLowerInvariant()}, " +
                $"MTA-STS {destination.MtaSts.ToString().ToLowerInvariant()}, {destination.ConcurrentConnections} connections, {destination.MaxMessagesPerConnection} messages per connection, bounce profile {destination.BounceProfile}");
            Console.WriteLine($"  open connections now: {active}");
            Console.WriteLine(lastTls is { } t
                ? $"  last TLS outcome: {t.Outcome}{(t.Protocol is null ? "" : $" ({t.Protocol})")}{(t.Detail.Length > 0 ? $": {t.Detail}" : "")}; TLS {t.Level}; MX {t.MxHost} [{t.Address}] at {t.Time.UtcDateTime:u}"
                : "  last TLS outcome: none since the gateway started (or it is not running); the mail log has earlier ones");
            Console.WriteLine($"  pending recipients: {delayed.Count}");
            foreach (var d in delayed.Take(20))
                Console.WriteLine($"    MID {d.mid} <{d.address}> attempts {d.attempts}, next {d.nextAttempt.UtcDateTime:u}: {d.lastResponse}");
            return 0;
        });
        root.Subcommands.Add(hoststatus);

        var tophosts = new Command("tophosts", "Destinations by pending recipients, with open connections") { configOption, jsonOption };
        tophosts.SetAction(async p =>
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            var data = Path.GetFullPath(config.DataDirectory);
            await using var store = Cluster.Stores.Queue(config);
            var active = ActiveConnections(data);
            var rows = (await store.ListAsync()).SelectMany(m => m.Recipients.Where(r => !r.IsFinal)).GroupBy(r => r.Domain)
                .Select(g => new { domain = g.Key, pending = g.Count(), activeConnections = active.GetValueOrDefault(g.Key) })
                .Concat(active.Select(a => new { domain = a.Key, pending = 0, activeConnections = a.Value }))
                .GroupBy(r => r.domain).Select(g => new { domain = g.Key, pending = g.Sum(x => x.pending), activeConnections = g.Max(x => x.activeConnections) })
                .OrderByDescending(r => r.pending).ThenByDescending(r => r.activeConnections).Take(20).ToList();
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(rows, PosternConfig.JsonOptions)); return 0; }
            if (rows.Count == 0) Console.WriteLine("No destination has pending recipients or open connections.");
            foreach (var r in rows) Console.WriteLine($"{r.domain,-40} {r.pending,8} pending {r.activeConnections,5} connection(s)");
            return 0;
        });
        root.Subcommands.Add(tophosts);
    }

    /// <summary>Open connections per domain from the running gateway's status file (empty when it is not running).</summary>
    /// <summary>The running gateway's last TLS outcome for a domain, from its status file.</summary>
    private static Observability.HostTlsOutcome? LastTls(string data, string domain)
    {
        if (OperatorCommands.RunningStatus(data) is not { } doc || !doc.TryGetProperty("lastTls", out var all)) return null;
        foreach (var entry in all.EnumerateObject())
            if (entry.Name.Equals(domain, StringComparison.OrdinalIgnoreCase))
                return entry.Value.Deserialize<Observability.HostTlsOutcome>(new JsonSerializerOptions(JsonSerializerDefaults.Web));
        return null;
    }

    private static Dictionary<string, int> ActiveConnections(string data)
    {
        if (OperatorCommands.RunningStatus(data) is not { } doc || !doc.TryGetProperty("activeConnections", out var a)) return [];
        return a.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetInt32());
    }
}
