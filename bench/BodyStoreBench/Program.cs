// bodystorebench: what storing a message body durably costs, the two ways issue 13 names.
//   bodystorebench sqlite|files DIR [messages] [size] [writers]
// sqlite: Postern's own SqliteQueueStore (body as a blob in queue.db, WAL, synchronous=FULL,
//         group commit), then the delivery's lease and the final update that deletes it.
// files:  the same store for the metadata (empty body), and the body in a spool file of its
//         own, written and fsync'd before the metadata commit (as Postfix's cleanup does),
//         read back for delivery and unlinked after.
// Writers queue concurrently, like inbound sessions; prints messages/s and CPU ms per message.
using System.Diagnostics;
using Postern.Queue;

var mode = args[0];
var dir = args[1];
var messages = args.Length > 2 ? int.Parse(args[2]) : 2000;
var size = args.Length > 3 ? int.Parse(args[3]) : 102400;
var writers = args.Length > 4 ? int.Parse(args[4]) : 20;
Directory.CreateDirectory(dir);
var spool = Path.Combine(dir, "spool");
Directory.CreateDirectory(spool);
var body = new byte[size];
new Random(13).NextBytes(body);
await using var store = new SqliteQueueStore(Path.Combine(dir, "queue.db"));

async Task OneAsync()
{
    var mid = await store.NextIdAsync(IdKind.Message);
    var message = new QueuedMessage
    {
        Mid = mid, ReceivedAt = DateTimeOffset.UtcNow, Sender = "s@bench.test", Size = size,
        Recipients = [new QueuedRecipient { Rid = 0, Address = "u@sink.test", Domain = "sink.test", NextAttempt = DateTimeOffset.UtcNow }],
    };
    if (mode == "files")
    {
        var path = Path.Combine(spool, mid.ToString());
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
        {
            file.Write(body);
            file.Flush(flushToDisk: true);   // fsync before the 250 may go out
        }
        await store.EnqueueAsync(message, ReadOnlyMemory<byte>.Empty);
        var read = File.ReadAllBytes(path);   // the delivery round
        if (read.Length != size) throw new InvalidDataException("short body");
        await store.UpdateRecipientsAsync(mid, [new RecipientUpdate(0, RecipientState.Delivered, 1, DateTimeOffset.UtcNow, "250 ok")]);
        File.Delete(path);
    }
    else
    {
        await store.EnqueueAsync(message, body);
        using (var lease = await store.LeaseBodyAsync(mid))
            if (lease?.Memory.Length != size) throw new InvalidDataException("short body");
        await store.UpdateRecipientsAsync(mid, [new RecipientUpdate(0, RecipientState.Delivered, 1, DateTimeOffset.UtcNow, "250 ok")]);
    }
}

// Warm-up (JIT, file sizes), then the measured run.
await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () => { for (var i = 0; i < 10; i++) await OneAsync(); })));
var cpu = Process.GetCurrentProcess().TotalProcessorTime;
var clock = Stopwatch.StartNew();
var next = 0;
await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
{
    while (Interlocked.Increment(ref next) <= messages) await OneAsync();
})));
var seconds = clock.Elapsed.TotalSeconds;
var cpuMs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds;
Console.WriteLine($"{{\"mode\":\"{mode}\",\"messages\":{messages},\"size\":{size},\"writers\":{writers},\"rate\":{messages / seconds:F1},\"cpu_ms_per_message\":{cpuMs / messages:F3}}}");
