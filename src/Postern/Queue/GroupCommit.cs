using System.Threading.Channels;

namespace Postern.Queue;

/// <summary>
/// The writer loop both queue stores use: take whatever writes have gathered (up to a batch),
/// commit them in one transaction so they share one flush, and when that fails redo them one
/// by one, so one bad write (a constraint, a lost claim) never fails its neighbours.
/// </summary>
public static class GroupCommit
{
    public sealed record Op<T>(T Write, TaskCompletionSource Done);

    public static async Task RunAsync<T>(ChannelReader<Op<T>> reader, int maxBatch, Func<IReadOnlyList<T>, Task> commit)
    {
        var batch = new List<Op<T>>(maxBatch);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < maxBatch && reader.TryRead(out var op)) batch.Add(op);
            if (batch.Count == 0) continue;   // another writer took them
            try
            {
                await commit(batch.Select(o => o.Write).ToList()).ConfigureAwait(false);
                foreach (var op in batch) op.Done.TrySetResult();
            }
            catch (Exception)
            {
                foreach (var op in batch)
                {
                    try { await commit([op.Write]).ConfigureAwait(false); op.Done.TrySetResult(); }
                    catch (Exception e) { op.Done.TrySetException(e); }
                }
            }
        }
    }
}
