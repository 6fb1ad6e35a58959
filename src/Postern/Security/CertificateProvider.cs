using System.Security.Cryptography.X509Certificates;
using Postern.Admin;
using Postern.Observability;

namespace Postern.Security;

/// <summary>
/// What the running gateway presents and trusts, kept in step with the configuration in force
/// and the certificate store: listener certificates (the assigned stored certificate, else the
/// listener's PEM files, else the demo certificate), the outbound client certificate and the
/// trusted CA lists. It rebuilds when a committed version is swapped in, or when the store's
/// version moves (a renewed certificate; looked at at most once a second). A change applies
/// to the next handshake; established sessions keep theirs.
/// </summary>
public sealed class CertificateProvider : IDisposable
{
    private readonly Func<PosternConfig> _live;
    private PosternConfig? _config;
    private readonly CertificateStore _store;
    private readonly MailEventStream _events;
    private readonly string _dataDirectory;
    private readonly Lock _gate = new();
    private long _version = -1;
    private DateTime _checked;
    private Dictionary<string, ServerCertificate?> _listeners = new(StringComparer.OrdinalIgnoreCase);
    private X509Certificate2? _outbound;
    private ServerCertificate? _web;
    private string? _outboundSource;
    private X509Certificate2Collection _roots = new();
    private ServerCertificate? _demo;
    private readonly Dictionary<string, ServerCertificate> _pemCache = new();
    private string? _trustSaid;

    public CertificateProvider(Func<PosternConfig> live, CertificateStore store, string dataDirectory, MailEventStream events)
    {
        _live = live;
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

    /// <summary>The HTTPS interface's certificate: the assigned stored one, else the demo certificate.</summary>
    public ServerCertificate ForWeb()
    {
        Refresh();
        lock (_gate) return _web!;
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

    /// <summary>Rebuilds when the configuration in force changed, or the store's version moved (checked at most once a second).</summary>
    public void Refresh(bool force = false)
    {
        var config = _live();
        lock (_gate)
        {
            var configChanged = !ReferenceEquals(config, _config);
            if (!force && !configChanged && DateTime.UtcNow - _checked < TimeSpan.FromSeconds(1)) return;
            _checked = DateTime.UtcNow;
            var version = _store.Version;
            if (!force && !configChanged && version == _version) return;
            _version = version;
            _config = config;

            var listeners = new Dictionary<string, ServerCertificate?>(StringComparer.OrdinalIgnoreCase);
            foreach (var l in config.Listeners)
            {
                var cert = Resolve($"listener {l.Name}", l.Certificate, l.CertificateFile, l.PrivateKeyFile, demoAllowed: true, config);
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

            var web = Resolve("the HTTPS interface", config.Web.Certificate, null, null, demoAllowed: true, config)!;
            if (_web is not null && _web.Source != web.Source)
                _events.Publish(new SystemNotice($"the HTTPS interface uses certificate {web.Source} ({web.Certificate.Subject}, expires {web.Certificate.NotAfter:yyyy-MM-dd})"));
            _web = web;

            var dc = config.DestinationControls;
            var outbound = Resolve("the outbound client certificate", dc.ClientCertificate, dc.ClientCertificateFile, dc.ClientPrivateKeyFile, demoAllowed: false, config);
            _outbound = outbound?.Certificate;
            _outboundSource = outbound?.Source;

            try
            {
                var trust = new TrustedAuthorities(config.CertificateAuthorities);
                var said = $"trusted CAs: system list {(trust.SystemCount > 0 ? $"enabled ({trust.SystemCount})" : "disabled")}, custom list {(config.CertificateAuthorities.CustomListEnabled ? $"enabled ({trust.CustomCount})" : "disabled")}";
                _roots = trust.Roots;
                if (said != _trustSaid) _events.Publish(new SystemNotice(said));
                _trustSaid = said;
            }
            catch (CertificateException e)
            {
                // Kept: the previous lists stay in force rather than trusting nothing or everything.
                _events.Publish(new SystemWarning($"trusted CA lists not changed: {e.Message}"));
            }
        }
    }

    private ServerCertificate? Resolve(string service, string? name, string? pemFile, string? keyFile, bool demoAllowed, PosternConfig config)
    {
        if (name is not null)
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
        return _demo ??= ServerCertificate.LoadOrCreateDemo(Path.Combine(_dataDirectory, "certs"), config.Hostname);
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
