using System.Security.Cryptography.X509Certificates;
using Postern.Security;

namespace Postern.Admin;

/// <summary>One stored certificate in a configuration export: PKCS#12 (key encrypted under the export passphrase), base64.</summary>
public sealed record ExportedCertificate(string Name, string Scope, string Pkcs12);

/// <summary>A configuration export with the certificates: the document, and the certificates it may assign.</summary>
public sealed record ConfigurationBundle(System.Text.Json.Nodes.JsonNode Configuration, IReadOnlyList<ExportedCertificate> Certificates);

/// <summary>Where a stored certificate is used: one listener, the outbound client certificate, or the HTTPS interface.</summary>
public abstract record CertificateTarget
{
    public sealed record Listener(string Name) : CertificateTarget;
    public sealed record Outbound : CertificateTarget;
    public sealed record Https : CertificateTarget;

    /// <summary>From the CLI's --listener NAME | --outbound | --https (exactly one).</summary>
    public static CertificateTarget From(string? listener, bool outbound, bool https)
    {
        if ((listener is null ? 0 : 1) + (outbound ? 1 : 0) + (https ? 1 : 0) != 1)
            throw new ConfigException("name exactly one service: --listener NAME, --outbound or --https");
        return outbound ? new Outbound() : https ? new Https() : new Listener(listener!);
    }

    /// <summary>The form it takes in forms and in the store of earlier versions: "listener:NAME", "outbound", "https".</summary>
    public string Key => this switch
    {
        Listener l => "listener:" + l.Name,
        Outbound => "outbound",
        _ => "https",
    };

    public static CertificateTarget Parse(string key) => key switch
    {
        "outbound" => new Outbound(),
        "https" => new Https(),
        _ when key.StartsWith("listener:", StringComparison.Ordinal) => new Listener(key["listener:".Length..]),
        _ => throw new ConfigException($"'{key}' is not a service (listener:NAME, outbound, https)"),
    };

    public sealed override string ToString() => this switch
    {
        Listener l => $"listener {l.Name}",
        Outbound => "the outbound client certificate",
        _ => "the HTTPS interface",
    };
}

/// <summary>
/// Certificates as an application service: the certificates themselves are data in the
/// certificate store (created, renewed and deleted at once; private keys sealed there), while
/// which service uses which certificate and which CA lists are trusted are part of the
/// configuration, staged and applied by `postern commit` like every other change.
/// </summary>
public sealed class CertificateService(ConfigService config, PosternConfig fallback, CertificateStore store)
{
    public PosternConfig Working => config.Working(fallback);
    public CertificateStore Store => store;
    public bool HasStagedChanges => config.HasStagedChanges;

    /// <summary>The certificate store of a configuration's data directory, opened only while it is read (for choosing a certificate).</summary>
    public static IReadOnlyList<CertificateInfo> StoredCertificates(PosternConfig config)
    {
        using var store = CertificateStore.Open(config);
        return store.List();
    }

    /// <summary>The stored certificate's own name for <paramref name="name"/> (any case), or the reason it cannot be chosen.</summary>
    public static string StoredName(IReadOnlyList<CertificateInfo> stored, string name) =>
        stored.FirstOrDefault(x => x.Name.Equals(name, StringComparison.OrdinalIgnoreCase))?.Name
        ?? throw new ConfigException($"there is no stored certificate '{name}' (postern certconfig list shows them)");

    /// <summary>The stored certificates, with where the working configuration uses them.</summary>
    public IReadOnlyList<CertificateInfo> Certificates() => store.List(Working.CertificateAssignments());

    public CertificateInfo Find(string name) =>
        store.Find(name, Working.CertificateAssignments()) ?? throw new CertificateException($"no certificate named '{name}'");

    public void Assign(CertificateTarget target, string name)
    {
        var found = store.Find(name) ?? throw new CertificateException($"no certificate named '{name}'");
        Change(c => Set(c, target, found.Name));
    }

    public void Unassign(CertificateTarget target) => Change(c => Set(c, target, null));

    private static void Set(PosternConfig c, CertificateTarget target, string? name)
    {
        switch (target)
        {
            case CertificateTarget.Listener l: FindListener(c, l).Certificate = name; break;
            case CertificateTarget.Outbound: c.DestinationControls.ClientCertificate = name; break;
            default: c.Web.Certificate = name; break;
        }
    }

    /// <summary>The certificate a target has in a configuration (null: none assigned).</summary>
    public static string? Assigned(PosternConfig c, CertificateTarget target) => target switch
    {
        CertificateTarget.Listener l => FindListener(c, l).Certificate,
        CertificateTarget.Outbound => c.DestinationControls.ClientCertificate,
        _ => c.Web.Certificate,
    };

    private static ListenerSettings FindListener(PosternConfig c, CertificateTarget.Listener l) =>
        c.Listeners.FirstOrDefault(x => x.Name.Equals(l.Name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ConfigException($"no listener named '{l.Name}' (listeners: {string.Join(", ", c.Listeners.Select(x => x.Name))})");

    /// <summary>Deletes a certificate no configuration uses: neither the committed one nor the staged changes.</summary>
    public void Delete(string name)
    {
        var uses = Working.CertificateAssignments().Concat(config.Committed()?.CertificateAssignments() ?? []);
        store.Delete(name, uses);
    }

    public void SetSystemList(bool enabled) => Change(c => c.CertificateAuthorities.SystemListEnabled = enabled);

    public void SetCustomList(bool enabled) => Change(c => c.CertificateAuthorities.CustomListEnabled = enabled);

    /// <summary>The custom list kept in the configuration (the optional customListFile is listed by its path only).</summary>
    public IReadOnlyList<CaEntry> CustomCas() => Working.CertificateAuthorities.CustomList.Select(Entry).ToList();

    private static CaEntry Entry(string pem)
    {
        var c = X509Certificate2.CreateFromPem(pem);
        return new CaEntry(CertificateStore.Fingerprint(c), c.Subject, c.NotAfter, c);
    }

    /// <summary>Adds every CA certificate of a PEM text to the custom list; returns how many were new.</summary>
    public int AddCustomCas(string pem)
    {
        var certificates = CertificateStore.ParseMany(pem, "CA certificates");
        foreach (var c in certificates)
        {
            var constraints = c.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
            if (constraints is not null && !constraints.CertificateAuthority)
                throw new CertificateException($"'{c.Subject}' is not a CA certificate (basicConstraints CA:FALSE); nothing was changed");
        }
        var added = 0;
        Change(cfg =>
        {
            var known = cfg.CertificateAuthorities.CustomList.Select(p => Entry(p).Fingerprint).ToHashSet();
            foreach (var c in certificates)
                if (known.Add(CertificateStore.Fingerprint(c)))
                {
                    cfg.CertificateAuthorities.CustomList.Add(c.ExportCertificatePem());
                    added++;
                }
        }, stageUnchanged: false);
        return added;
    }

    public void RemoveCustomCa(string fingerprint)
    {
        var normalized = fingerprint.Replace(":", "").ToUpperInvariant();
        Change(c =>
        {
            if (c.CertificateAuthorities.CustomList.RemoveAll(p => Entry(p).Fingerprint == normalized) == 0)
                throw new CertificateException($"no custom CA with fingerprint {fingerprint}");
        });
    }

    /// <summary>Makes a change on the working configuration, checks the whole document, and stages it.</summary>
    private void Change(Action<PosternConfig> change, bool stageUnchanged = true)
    {
        var c = Working;
        var before = c.ToJson();
        change(c);
        c.Validate();
        if (stageUnchanged || c.ToJson() != before) config.Stage(c);
    }

    /// <summary>Every stored certificate as PKCS#12 (PBES2 / AES-256) under one passphrase, for `config export --with-certificates`.</summary>
    public IReadOnlyList<ExportedCertificate> ExportAll(string passphrase) =>
        store.List().Select(c => new ExportedCertificate(c.Name, c.Scope.ToString().ToLowerInvariant(), Convert.ToBase64String(store.ExportPkcs12(c.Name, passphrase)))).ToList();

    /// <summary>
    /// Puts exported certificates into the store: a certificate already stored under its name
    /// with the same thumbprint is skipped, one that differs refuses the whole import. Everything
    /// is checked (passphrase, names) before anything is stored. Returns how many were added.
    /// </summary>
    public int ImportAll(IReadOnlyList<ExportedCertificate> certificates, string passphrase)
    {
        var toAdd = new List<(ExportedCertificate Entry, byte[] Bytes, CertificateScope Scope)>();
        foreach (var e in certificates)
        {
            byte[] bytes;
            try { bytes = Convert.FromBase64String(e.Pkcs12); }
            catch (FormatException) { throw new CertificateException($"certificate '{e.Name}': pkcs12 is not base64; nothing was imported"); }
            X509Certificate2 leaf;
            try
            {
                leaf = X509CertificateLoader.LoadPkcs12Collection(bytes, passphrase, X509KeyStorageFlags.EphemeralKeySet).FirstOrDefault(c => c.HasPrivateKey)
                    ?? throw new CertificateException($"certificate '{e.Name}' has no private key; nothing was imported");
            }
            catch (System.Security.Cryptography.CryptographicException)
            {
                throw new CertificateException($"certificate '{e.Name}': the passphrase is wrong (or the data is damaged); nothing was imported");
            }
            var scope = e.Scope.ToLowerInvariant() switch
            {
                "machine" => CertificateScope.Machine,
                "cluster" => CertificateScope.Cluster,
                _ => throw new CertificateException($"certificate '{e.Name}': scope '{e.Scope}' is not machine or cluster; nothing was imported"),
            };
            if (store.Find(e.Name) is { } existing)
            {
                if (!existing.Thumbprint.Equals(leaf.Thumbprint, StringComparison.OrdinalIgnoreCase))
                    throw new CertificateException($"a different certificate named '{e.Name}' is stored here already; rename or delete one of them; nothing was imported");
                continue;
            }
            toAdd.Add((e, bytes, scope));
        }
        foreach (var (e, bytes, scope) in toAdd) store.ImportPkcs12(e.Name, bytes, passphrase, scope);
        return toAdd.Count;
    }

    /// <summary>
    /// Moves the assignments and CA-list settings that earlier versions kept in the certificate
    /// store into the configuration: one version committed by Postern (and the same edits made
    /// to staged changes, if any), then cleared from the store. Returns what it said, or null.
    /// </summary>
    public string? MigrateLegacySettings()
    {
        var legacy = store.ReadLegacySettings();
        if (legacy.IsEmpty) return null;
        void Apply(PosternConfig c)
        {
            foreach (var (service, name) in legacy.Assignments)
            {
                try
                {
                    var target = CertificateTarget.Parse(service);
                    if (store.Exists(name) && Assigned(c, target) is null) Set(c, target, name);
                }
                catch (ConfigException) { /* a listener that no longer exists: nothing to move */ }
            }
            if (legacy.SystemListDisabled) c.CertificateAuthorities.SystemListEnabled = false;
            var known = c.CertificateAuthorities.CustomList.Select(p => Entry(p).Fingerprint).ToHashSet();
            foreach (var pem in legacy.CustomCas)
                if (known.Add(Entry(pem).Fingerprint)) c.CertificateAuthorities.CustomList.Add(pem);
            if (legacy.CustomCas.Count > 0) c.CertificateAuthorities.CustomListEnabled = true;
        }
        var hadStaged = config.HasStagedChanges;
        var staged = hadStaged ? Working : null;
        var committed = config.Committed() ?? fallback;
        Apply(committed);
        var version = config.CommitDirectly(committed, "postern", "certificate assignments and CA lists moved from the certificate store into the configuration");
        if (staged is not null) { Apply(staged); config.Stage(staged); }
        store.ClearLegacySettings();
        return $"certificate assignments and CA lists were moved from the certificate store into the configuration (version {version.Number})";
    }
}
