using System.Net;
using System.Net.NetworkInformation;

namespace Postern.Outbound;

/// <summary>Where Postern itself listens: a next hop here would send mail back to us.</summary>
public sealed class OwnEndpoints
{
    private volatile IPEndPoint[] _endpoints = [];
    private readonly Lazy<HashSet<IPAddress>> _interfaces = new(InterfaceAddresses);

    public void Add(IPEndPoint endpoint)
    {
        lock (this) _endpoints = [.. _endpoints, Normalize(endpoint)];
    }

    public bool Contains(IPAddress address, int port)
    {
        address = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        foreach (var ep in _endpoints)
        {
            if (ep.Port != port) continue;
            if (ep.Address.Equals(address)) return true;
            // A wildcard listener answers on every address of this machine.
            if ((ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any))
                && (IPAddress.IsLoopback(address) || _interfaces.Value.Contains(address))) return true;
        }
        return false;
    }

    private static IPEndPoint Normalize(IPEndPoint ep) =>
        ep.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(ep.Address.MapToIPv4(), ep.Port) : ep;

    private static HashSet<IPAddress> InterfaceAddresses()
    {
        var set = new HashSet<IPAddress>();
        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
                foreach (var a in nic.GetIPProperties().UnicastAddresses) set.Add(a.Address);
        }
        catch (NetworkInformationException) { /* loopback check still applies */ }
        return set;
    }
}
