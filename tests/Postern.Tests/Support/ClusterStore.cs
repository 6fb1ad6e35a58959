using System.Net;
using System.Net.Sockets;
using Npgsql;
using Postern.Admin;

namespace Postern.Tests.Support;

/// <summary>
/// The test world's PostgreSQL (testworld/world.sh, 127.0.9.1:5432): each cluster test gets a
/// database of its own, and its members get configurations that name it.
/// </summary>
public static class ClusterStore
{
    public const string Address = "127.0.9.1";
    public static string PasswordFile => Path.Combine(TestWorld.Instance.WorldDirectory, "postgres.password");

    /// <summary>Creates an empty database for one test and returns its name.</summary>
    public static string CreateDatabase(string prefix)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..(prefix.Length + 13)].ToLowerInvariant();
        var builder = new NpgsqlConnectionStringBuilder { Host = Address, Database = "postgres", Username = "postgres", Password = File.ReadAllText(PasswordFile).Trim() };
        using var c = new NpgsqlConnection(builder.ConnectionString);
        c.Open();
        using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", c);
        cmd.ExecuteNonQuery();
        return name;
    }

    public static ClusterSettings Settings(string database, string member, int leaseSeconds = 10) => new()
    {
        Postgres = $"Host={Address};Database={database};Username=postgres",
        PasswordFile = PasswordFile,
        Member = member,
        LeaseSeconds = leaseSeconds,
    };

    /// <summary>Submits count messages to token-N@good.test, one session each, spread over the members' OutgoingMail listeners in turn.</summary>
    public static Task SubmitSpreadAsync(IReadOnlyList<PosternProcess> members, int count, string token, string sender) =>
        Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            RawSmtp.SubmitAsync(members[i % members.Count].Listener("OutgoingMail"), sender, $"{token}-{i}@good.test")));

    /// <summary>A member's configuration: the world's usual test configuration, its own listener address, the shared database.</summary>
    public static PosternConfig Member(string database, string member, string address, int leaseSeconds = 10, Action<PosternConfig>? tweak = null) =>
        TestWorld.Instance.NewConfig($"cluster-{member}", c =>
        {
            c.Hostname = $"{member}.postern.test";
            foreach (var l in c.Listeners) l.Address = address;
            c.Cluster = Settings(database, member, leaseSeconds);
            tweak?.Invoke(c);
        });
}

/// <summary>A TCP relay in front of a receiver that counts how many connections are open through it at once.</summary>
public sealed class CountingRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _open;
    private int _peak;
    private int _total;

    public CountingRelay(string address, IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Parse(address), 0);
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;
    public int Peak => Volatile.Read(ref _peak);
    public int Total => Volatile.Read(ref _total);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch (Exception) { return; }
            _ = Task.Run(() => RelayAsync(client));
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        var now = Interlocked.Increment(ref _open);
        Interlocked.Increment(ref _total);
        int peak;
        while (now > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
        var ended = 0;
        // The session ends when the client says QUIT: it is counted out before the QUIT goes on
        // (so before the client can hear 221, close, and give its slot to another), not whenever
        // this relay's task next runs.
        void End() { if (Interlocked.Exchange(ref ended, 1) == 0) Interlocked.Decrement(ref _open); }
        try
        {
            using (client)
            using (var server = new TcpClient())
            {
                await server.ConnectAsync(_target);
                var a = client.GetStream();
                var b = server.GetStream();
                async Task ClientToServer()
                {
                    var buffer = new byte[64 * 1024];
                    var tail = "";
                    int n;
                    while ((n = await a.ReadAsync(buffer, _stop.Token)) > 0)
                    {
                        tail = (tail + System.Text.Encoding.ASCII.GetString(buffer, 0, n))[^Math.Min(tail.Length + n, 8)..];
                        if (tail.EndsWith("QUIT\r\n", StringComparison.OrdinalIgnoreCase)) End();
                        await b.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                    }
                }
                await Task.WhenAny(ClientToServer(), b.CopyToAsync(a, _stop.Token));
            }
        }
        catch (Exception) { /* a closed side */ }
        finally { End(); }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _loop;
    }
}
