using System.CommandLine;
using System.Text.Json;
using Postern.Queue;

namespace Postern.Admin;

/// <summary>`postern queue list|show|retry|delete`: works on the store directly, so it also works while the daemon runs.</summary>
public static class QueueCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var queue = new Command("queue", "Inspect and manage the delivery queue");
        var midArgument = new Argument<long>("mid") { Description = "Message ID (MID)" };
        var optionalMid = new Argument<long?>("mid") { Description = "Message ID (MID); all messages when omitted", Arity = ArgumentArity.ZeroOrOne };

        var list = new Command("list", "List queued messages") { configOption, jsonOption };
        list.SetAction(async parse => await With(parse.GetValue(configOption), loadConfig, async queue =>
        {
            var messages = await queue.ListAsync();
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(messages.Select(ToJson), JsonOut)); return 0; }
            if (messages.Count == 0) { Console.WriteLine("The queue is empty."); return 0; }
            Console.WriteLine($"{"MID",-10} {"Received (UTC)",-20} {"Size",9} {"Pending",7}  Sender");
            foreach (var m in messages)
                Console.WriteLine($"{m.Mid,-10} {m.ReceivedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} {m.Size,9} {m.Recipients.Count(r => !r.IsFinal),7}  <{m.Sender}>");
            Console.WriteLine($"{messages.Count} message(s)");
            return 0;
        }));

        var show = new Command("show", "Show one queued message and its recipients") { midArgument, configOption, jsonOption };
        show.SetAction(async parse => await With(parse.GetValue(configOption), loadConfig, async queue =>
        {
            var m = await queue.GetAsync(parse.GetValue(midArgument));
            if (parse.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(ToJson(m), JsonOut)); return 0; }
            Console.WriteLine($"MID {m.Mid} from <{m.Sender}> received {m.ReceivedAt.UtcDateTime:u} via {m.Listener} ICID {m.Icid} from {m.ClientAddress}, {m.Size} bytes");
            foreach (var r in m.Recipients)
                Console.WriteLine($"  RID {r.Rid} <{r.Address}> {r.State.ToString().ToLowerInvariant()} attempts {r.Attempts} next {r.NextAttempt.UtcDateTime:u} {r.LastResponse}");
            return 0;
        }));

        var retry = new Command("retry", "Make deferred recipients due now") { optionalMid, configOption };
        retry.SetAction(async parse => await With(parse.GetValue(configOption), loadConfig, async queue =>
        {
            var n = await queue.RetryAsync(parse.GetValue(optionalMid));
            Console.WriteLine($"{n} recipient(s) scheduled for immediate delivery");
            return 0;
        }));

        var delete = new Command("delete", "Delete a message from the queue (no bounce is sent)") { midArgument, configOption };
        delete.SetAction(async parse => await With(parse.GetValue(configOption), loadConfig, async queue =>
        {
            var mid = parse.GetValue(midArgument);
            await queue.DeleteAsync(mid);
            Console.WriteLine($"MID {mid} deleted");
            return 0;
        }));

        queue.Subcommands.Add(list);
        queue.Subcommands.Add(show);
        queue.Subcommands.Add(retry);
        queue.Subcommands.Add(delete);
        return queue;
    }

    private static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static object ToJson(QueuedMessage m) => new
    {
        m.Mid, m.Icid, receivedAt = m.ReceivedAt.UtcDateTime, m.Sender, m.Size, m.Listener, m.ClientAddress, m.EnvelopeId, m.BounceOf,
        recipients = m.Recipients.Select(r => new
        {
            r.Rid, r.Address, state = r.State.ToString().ToLowerInvariant(), r.Attempts, nextAttempt = r.NextAttempt.UtcDateTime, r.LastResponse,
        }),
    };

    private static async Task<int> With(FileInfo? configFile, Func<FileInfo?, PosternConfig?> loadConfig, Func<QueueService, Task<int>> action)
    {
        var config = loadConfig(configFile);
        if (config is null) return 2;
        var path = Gateway.StorePath(Path.GetFullPath(config.DataDirectory));
        // A cluster's queue is in its database; a single machine's must exist (a wrong --config is not an empty queue).
        if (!Cluster.Stores.IsCluster(config) && !File.Exists(path)) { Console.Error.WriteLine($"postern: no queue at {path}"); return 1; }
        return await QueueService.WithAsync(config, action);
    }
}
