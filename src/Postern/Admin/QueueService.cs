using Postern.Queue;

namespace Postern.Admin;

/// <summary>A message that is not (or no longer) in the queue.</summary>
public sealed class NotInQueueException(long mid) : Exception($"MID {mid} is not in the queue");

/// <summary>
/// The queue and the operator holds as an application service: what `postern queue`,
/// `suspenddel`/`resumedel`, `suspendlistener`/`resumelistener` and `delivernow` do, and what
/// the web interface's queue page will do. It works on the stores of the data directory, so
/// it works while a gateway runs (which takes holds within a second and due recipients within
/// a few).
/// </summary>
public sealed class QueueService(IQueueStore queue, IConfigStore versions, PosternConfig inForce)
{
    /// <summary>The store names delivery holds for every domain "*".</summary>
    public const string AllDomains = "*";

    public Task<IReadOnlyList<QueuedMessage>> ListAsync() => queue.ListAsync();

    public async Task<QueuedMessage> GetAsync(long mid) =>
        await queue.GetAsync(mid).ConfigureAwait(false) ?? throw new NotInQueueException(mid);

    /// <summary>Makes deferred recipients due now: of one message, one domain, or all. Returns how many.</summary>
    public Task<int> RetryAsync(long? mid = null, string? domain = null)
    {
        if (mid is not null && domain is not null) throw new ConfigException("retry one message or one domain, not both");
        return domain is { Length: > 0 } && domain != AllDomains ? queue.RetryDomainNowAsync(domain.ToLowerInvariant()) : queue.RetryNowAsync(mid);
    }

    /// <summary>Deletes a message and its recipients; no bounce is sent.</summary>
    public async Task DeleteAsync(long mid)
    {
        await GetAsync(mid).ConfigureAwait(false);
        await queue.RemoveAsync(mid).ConfigureAwait(false);
    }

    public Task<(int Messages, int Recipients, DateTimeOffset? Oldest)> StatsAsync() => queue.StatsAsync();

    public IReadOnlyList<OperatorHold> Holds() => versions.Holds();

    /// <summary>Holds or releases deliveries to one domain (or all, with null or "*").</summary>
    public string SetDeliveryHold(string? domain, bool on, string who)
    {
        var target = domain is { Length: > 0 } d && d != AllDomains ? d.ToLowerInvariant() : AllDomains;
        if (target != AllDomains && !Dns.DomainNames.IsValidDomainPattern(target)) throw new ConfigException($"'{domain}' is not a domain");
        versions.SetHold("delivery", target, who, on, Cluster.Stores.MemberName(inForce));
        return target;
    }

    /// <summary>Stops (or resumes) accepting connections on a listener of the configuration in force.</summary>
    public string SetListenerHold(string listener, bool on, string who)
    {
        var settings = inForce.Listeners.FirstOrDefault(l => l.Name.Equals(listener, StringComparison.OrdinalIgnoreCase))
            ?? throw new ConfigException($"there is no listener '{listener}'");
        versions.SetHold("listener", settings.Name, who, on, Cluster.Stores.MemberName(inForce));
        return settings.Name;
    }

    /// <summary>Opens the stores of a configuration (its data directory, or the cluster's database) for one operation.</summary>
    public static async Task<int> WithAsync(PosternConfig fromFile, Func<QueueService, Task<int>> action)
    {
        await using var queue = Cluster.Stores.Queue(fromFile);
        using var versions = Cluster.Stores.Config(fromFile);
        var inForce = Cluster.Stores.ConfigService(versions, fromFile).Committed() ?? fromFile;
        try { return await action(new QueueService(queue, versions, inForce)).ConfigureAwait(false); }
        catch (NotInQueueException e)
        {
            Console.Error.WriteLine($"postern: {e.Message}");
            return 1;
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"postern: {e.Message}");
            return 2;
        }
    }
}
