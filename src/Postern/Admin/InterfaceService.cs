using System.CommandLine;
using System.Net;
using System.Text.Json;

namespace Postern.Admin;

/// <summary>One IP address the gateway serves on, and what it serves there.</summary>
public sealed record IpInterface(string Address, IReadOnlyList<string> Services);

/// <summary>
/// IP interfaces as the appliance shows them (Network &gt; IP Interfaces, `interfaceconfig`):
/// the addresses the gateway listens on with the services on each (SMTP listeners, the HTTPS
/// administration interface, the metrics endpoint), and the HTTPS service's address, port and
/// certificate. Changes are staged; address and port apply at the next start (the mail log
/// says so), the certificate at the next handshake.
/// </summary>
public sealed class InterfaceService(ConfigService config, PosternConfig fallback, Func<IReadOnlyList<Security.CertificateInfo>>? storedCertificates = null, string? who = null)
{
    public PosternConfig Working => config.Working(fallback);

    public IReadOnlyList<IpInterface> List()
    {
        var c = Working;
        var services = new List<(string Address, string Service)>();
        services.AddRange(c.Listeners.Select(l => (l.Address, $"SMTP {l.Name} ({l.Type.ToString().ToLowerInvariant()}) port {l.Port}")));
        if (c.Web.Enabled) services.Add((c.Web.Address, $"HTTPS port {c.Web.Port}, certificate {c.Web.Certificate ?? "demo"}"));
        if (c.Metrics.Enabled) services.Add((c.Metrics.Address, $"metrics (HTTP) port {c.Metrics.Port}"));
        return services.GroupBy(s => s.Address).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new IpInterface(g.Key, g.Select(s => s.Service).ToList())).ToList();
    }

    /// <summary>Turns HTTPS on (on an address and port, with a stored certificate or "demo") or off.</summary>
    public void SetHttps(bool enabled, string? address, int? port, string? certificate)
    {
        var c = Working;
        c.Web.Enabled = enabled;
        if (address is not null)
            c.Web.Address = IPAddress.TryParse(address, out var ip) && address.Contains(ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? ':' : '.')
                ? ip.ToString() : throw new ConfigException($"'{address}' is not an IP address");
        if (port is { } p) c.Web.Port = p is >= 1 and <= 65535 ? p : throw new ConfigException($"port {p} is out of range 1-65535");
        if (certificate is not null)
            c.Web.Certificate = certificate.Equals("demo", StringComparison.OrdinalIgnoreCase) ? null
                : CertificateService.StoredName(storedCertificates?.Invoke() ?? [], certificate);
        var clash = c.Listeners.FirstOrDefault(l => l.Address == c.Web.Address && l.Port == c.Web.Port && l.Port != 0);
        if (enabled && clash is not null) throw new ConfigException($"{c.Web.Address}:{c.Web.Port} is listener {clash.Name}'s");
        c.Validate();
        config.Stage(c, who);
    }
}

/// <summary>`postern interfaceconfig list|https`: the appliance's interfaceconfig for the HTTPS service.</summary>
public static class InterfaceCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var command = new Command("interfaceconfig", "IP interfaces: the addresses served on, and the HTTPS administration service (staged; postern commit applies it)");
        var list = new Command("list", "The IP addresses the gateway serves on, and the services on each (staged changes included)") { configOption, jsonOption };
        list.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
        {
            var rows = new InterfaceService(service, config).List();
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(rows, PosternConfig.JsonOptions)); return 0; }
            foreach (var r in rows)
            {
                Console.WriteLine(r.Address);
                foreach (var s in r.Services) Console.WriteLine($"  {s}");
            }
            return 0;
        }));
        var enable = new Option<string?>("--enable") { HelpName = "on|off", Description = "on | off: serve the HTTPS administration interface" };
        var address = new Option<string?>("--address") { Description = "The IP address (interface) to serve HTTPS on" };
        var port = new Option<int?>("--port") { Description = "The HTTPS port (the appliance's default is 443; Postern's 8443)" };
        var certificate = new Option<string?>("--certificate") { HelpName = "NAME|demo", Description = "A stored certificate (certconfig list), or demo" };
        var https = new Command("https", "Enable or change the HTTPS service: address, port, certificate") { enable, address, port, certificate, configOption };
        https.SetAction(p => ConfigCommands.WithService(p.GetValue(configOption), loadConfig, (service, config) =>
        {
            var current = service.Working(config).Web;
            var on = p.GetValue(enable) switch
            {
                null => current.Enabled,
                var v when v.Equals("on", StringComparison.OrdinalIgnoreCase) => true,
                var v when v.Equals("off", StringComparison.OrdinalIgnoreCase) => false,
                var v => throw new ConfigException($"--enable '{v}' is not on or off"),
            };
            new InterfaceService(service, config, () => CertificateService.StoredCertificates(config)).SetHttps(on, p.GetValue(address), p.GetValue(port), p.GetValue(certificate));
            Console.WriteLine($"The HTTPS service is {(on ? "enabled" : "disabled")} (staged). postern commit applies it: the certificate at the next handshake, an address or port at the next start.");
            return 0;
        }));
        command.Subcommands.Add(list);
        command.Subcommands.Add(https);
        return command;
    }
}
