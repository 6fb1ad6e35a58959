using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Observability;

namespace Postern.Security;

/// <summary>
/// What the running gateway presents and trusts, kept in step with the certificate store:
/// listener certificates (store assignment, else the listener's PEM files, else the demo
/// certificate), the outbound client certificate and the trusted CA lists. It looks at the
/// store's version at most once a second; a new assignment applies to the next handshake,
/// and established sessions keep theirs.
/// </summary>
public sealed class CertificateProvider : IDisposable
{
    private readonly PosternConfig _config;
    private readonly CertificateStore _store;
    private readonly MailEventStream _events;
    private readonly string _dataDirectory;
    private readonly Lock _gate = new();
    private long _version = -1;
    private DateTime _checked;
    private Dictionary<string, ServerCertificate?> _listeners = new(StringComparer.OrdinalIgnoreCase);
    private X509Certificate2? _outbound;
    private string? _outboundSource;
    private X509Certificate2Collection _roots = new();
    private ServerCertificate? _demo;
    private readonly Dictionary<string, ServerCertificate> _pemCache = new();

    public CertificateProvider(PosternConfig config, CertificateStore store, string dataDirectory, MailEventStream events)
    {
        _config = config;
        _store = store;
        _dataDirectory = dataDirectory;
        _events = events;
        Refresh(force: true);
    }

    public ServerCertificate? ForListener(string listener)
    {
        Refresh();
        lock (_gate) return _listeners.GetValueOrDefault(listener);
    }

    public X509Certificate2? OutboundClientCertificate()
    {
        Refresh();
        lock (_gate) return _outbound;
    }

    public X509Certificate2Collection TrustedRoots()
    {
        Refresh();
        lock (_gate) return _roots;
    }

    /// <summary>Reloads from the store when its version moved (checked at most once a second).</summary>
    public void Refresh(bool force = false)
    {
        lock (_gate)
        {
            if (!force && DateTime.UtcNow - _checked < TimeSpan.FromSeconds(1)) return;
            _checked = DateTime.UtcNow;
            var version = _store.Version;
            if (!force && version == _version) return;
            _version = version;
            var assignments = _store.Assignments();

            var listeners = new Dictionary<string, ServerCertificate?>(StringComparer.OrdinalIgnoreCase);
            foreach (var l in _config.Listeners)
            {
                var cert = Resolve(CertificateStore.ListenerService(l.Name), assignments, l.CertificateFile, l.PrivateKeyFile, demoAllowed: true);
                var previous = _listeners.GetValueOrDefault(l.Name);
                if (previous?.Source != cert?.Source)
                {
                    if (cert?.IsDemo == true)
                        _events.Publish(new SystemWarning($"listener {l.Name} uses the demo certificate; assign a real certificate before production use"));
                    else if (cert is not null)
                        _events.Publish(new SystemNotice($"listener {l.Name} uses certificate {cert.Source} ({cert.Certificate.Subject}, expires {cert.Certificate.NotAfter:yyyy-MM-dd})"));
                }
                listeners[l.Name] = cert;
            }
            _listeners = listeners;

            var dc = _config.DestinationControls;
            var outbound = Resolve(CertificateStore.OutboundService, assignments, dc.ClientCertificateFile, dc.ClientPrivateKeyFile, demoAllowed: false);
            _outbound = outbound?.Certificate;
            _outboundSource = outbound?.Source;

            var trust = new TrustedAuthorities(_config.CertificateAuthorities, _store.SystemListEnabled, _store.CustomCas().Select(c => c.Certificate));
            _roots = trust.Roots;
            _events.Publish(new SystemNotice($"trusted CAs: system list {(trust.SystemCount > 0 ? $"enabled ({trust.SystemCount})" : "disabled")}, custom list {trust.CustomCount} certificate(s)"));
        }
    }

    private ServerCertificate? Resolve(string service, IReadOnlyDictionary<string, string> assignments, string? pemFile, string? keyFile, bool demoAllowed)
    {
        if (assignments.TryGetValue(service, out var name))
        {
            try { return _store.LoadForTls(name); }
            catch (CertificateException e) { _events.Publish(new SystemWarning($"certificate {name} assigned to {service} cannot be used: {e.Message}")); }
        }
        if (pemFile is not null)
        {
            if (!_pemCache.TryGetValue(pemFile, out var pem)) _pemCache[pemFile] = pem = ServerCertificate.FromPemFiles(pemFile, keyFile!);
            return pem;
        }
        if (!demoAllowed) return null;
        return _demo ??= ServerCertificate.LoadOrCreateDemo(Path.Combine(_dataDirectory, "certs"), _config.Hostname);
    }

    /// <summary>Every certificate in service now, by service name (for the expiry watch).</summary>
    public IReadOnlyList<(string Service, string Source, X509Certificate2 Certificate)> InService()
    {
        Refresh();
        lock (_gate)
        {
            var list = _listeners.Where(l => l.Value is not null).Select(l => ("listener " + l.Key, l.Value!.Source, l.Value.Certificate)).ToList();
            if (_outbound is not null) list.Add(("outbound client certificate", _outboundSource ?? "", _outbound));
            return list;
        }
    }

    public void Dispose() => _store.Dispose();
}
