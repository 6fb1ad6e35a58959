using System.Net;
using Postern.Admin;

namespace Postern.Tests.Support;

/// <summary>An in-process gateway for one test, with helpers to read its mail log.</summary>
public sealed class RunningGateway : IAsyncDisposable
{
    public Gateway Gateway { get; }
    public PosternConfig Config => Gateway.Config;

    private RunningGateway(Gateway gateway) => Gateway = gateway;

    public static RunningGateway Start(PosternConfig config) => new(Gateway.Start(config));

    public IPEndPoint Public => Gateway.Listeners.First(l => l.Settings.Type == ListenerType.Public).LocalEndPoint;
    public IPEndPoint Private => Gateway.Listeners.First(l => l.Settings.Type == ListenerType.Private).LocalEndPoint;

    public string MailLogText()
    {
        var path = Gateway.MailLog.CurrentPath;
        if (!File.Exists(path)) return "";
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(f).ReadToEnd();
    }

    /// <summary>Waits until the mail log has a line containing every one of the fragments.</summary>
    public string WaitForLogLine(params string[] fragments) => WaitForLogLine(TimeSpan.FromSeconds(30), fragments);

    public string WaitForLogLine(TimeSpan timeout, params string[] fragments)
    {
        string? found = null;
        try
        {
            TestWorld.WaitUntil(() =>
            {
                found = MailLogText().Split('\n').FirstOrDefault(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)));
                return found is not null;
            }, timeout, "mail log line with " + string.Join(" + ", fragments));
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(e.Message + "\n--- mail log ---\n" + MailLogText());
        }
        return found!;
    }

    public async ValueTask DisposeAsync() => await Gateway.DisposeAsync();
}
