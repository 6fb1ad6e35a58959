using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Data.Sqlite;
using Postern.Admin;
using Postern.Dns;

namespace Postern.Security;

public enum KeyKind { Rsa1024, Rsa2048, Rsa3072, Rsa4096, EcdsaP256, EcdsaP384 }

/// <summary>Where a certificate lives in a cluster: each machine its own (same name), or one for all.</summary>
public enum CertificateScope { Machine, Cluster }

/// <summary>A stored certificate as shown to administrators (no key material).</summary>
public sealed record CertificateInfo(string Name, string Subject, string Issuer, IReadOnlyList<string> DnsNames, DateTimeOffset NotBefore,
    DateTimeOffset NotAfter, string Thumbprint, string KeyType, bool SelfSigned, int Intermediates, CertificateScope Scope, IReadOnlyList<string> AssignedTo)
{
    public bool IsExpired(DateTimeOffset now) => now > NotAfter;
}

public sealed record SelfSignedRequest(string CommonName, string? Organization = null, string? Unit = null, string? City = null,
    string? State = null, string? Country = null, int Days = 365, KeyKind Key = KeyKind.Rsa2048, bool AllowInsecureKey = false,
    bool ValidateFqdn = false, IReadOnlyList<string>? ExtraDnsNames = null, string? Name = null, CertificateScope? Scope = null);

/// <summary>A trusted CA in the custom list.</summary>
public sealed record CaEntry(string Fingerprint, string Subject, DateTimeOffset NotAfter, X509Certificate2 Certificate);

/// <summary>What earlier versions kept in the certificate store (service → certificate, the system-list switch, custom CAs as PEM).</summary>
public sealed record LegacyCertificateSettings(IReadOnlyDictionary<string, string> Assignments, bool SystemListDisabled, IReadOnlyList<string> CustomCas)
{
    public bool IsEmpty => Assignments.Count == 0 && !SystemListDisabled && CustomCas.Count == 0;
}

/// <summary>
/// Named certificates with their private keys and chains. Private keys are encrypted at rest
/// (AES-256-GCM) with a key kept in a separate 0600 file; the database itself is 0600 too.
/// Nothing here logs key material. Which service uses which certificate, and the trusted CA
/// lists, are part of the versioned configuration (staged, committed); the certificates are
/// data. Every change bumps a version number, which the running daemon watches so a renewed
/// certificate is served without a restart.
/// </summary>
public sealed class CertificateStore : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly ICertificateRows _rows;
    private readonly byte[] _masterKey;

    public string MasterKeyPath { get; }

    /// <summary>One machine's store: SQLite under the data directory.</summary>
    public CertificateStore(string dataDirectory) : this(dataDirectory, new SqliteCertificateRows(dataDirectory)) { }

    /// <summary>A store whose rows live elsewhere (a cluster's database); the sealing key is still the machine's file.</summary>
    public CertificateStore(string dataDirectory, ICertificateRows rows)
    {
        var secrets = Path.Combine(dataDirectory, "secrets");
        CreatePrivateDirectory(secrets);
        MasterKeyPath = Path.Combine(secrets, "certificate-store.key");
        _masterKey = LoadOrCreateMasterKey(MasterKeyPath);
        _rows = rows;
        // Cluster-wide certificates need every member's sealing key to be the same: the rows compare its check value.
        rows.KnowSealingKey(SealingKeyCheck(_masterKey), MasterKeyPath);
    }

    /// <summary>A value that tells sealing keys apart without revealing them.</summary>
    public static byte[] SealingKeyCheck(byte[] key) => HMACSHA256.HashData(key, "postern certificate store key check"u8);

    /// <summary>The store a configuration uses: this machine's SQLite file, or the cluster's database (cluster-wide and this member's certificates).</summary>
    public static CertificateStore Open(PosternConfig config)
    {
        var data = Path.GetFullPath(config.DataDirectory);
        return config.Cluster is null ? new CertificateStore(data)
            : new CertificateStore(data, new Cluster.PostgresCertificateRows(Cluster.PostgresDatabase.For(config.Cluster), Cluster.Stores.MemberName(config)));
    }

    internal static void CreatePrivateDirectory(string dir)
    {
        Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static byte[] LoadOrCreateMasterKey(string path)
    {
        if (File.Exists(path))
        {
            var key = File.ReadAllBytes(path);
            if (key.Length != 32) throw new CertificateException($"certificate store key {path} is damaged (expected 32 bytes)");
            return key;
        }
        var fresh = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        using (var f = new FileStream(path, options)) f.Write(fresh);
        return fresh;
    }

    // ---- sealing private keys ----

    private byte[] Seal(byte[] pkcs8, string name)
    {
        var nonce = RandomNumberGenerator.GetBytes(12);
        var tag = new byte[16];
        var cipher = new byte[pkcs8.Length];
        using var aes = new AesGcm(_masterKey, 16);
        aes.Encrypt(nonce, pkcs8, cipher, tag, Encoding.UTF8.GetBytes(name.ToLowerInvariant()));
        CryptographicOperations.ZeroMemory(pkcs8);
        return [.. nonce, .. tag, .. cipher];
    }

    private byte[] Unseal(byte[] sealedKey, string name)
    {
        var plain = new byte[sealedKey.Length - 28];
        using var aes = new AesGcm(_masterKey, 16);
        try { aes.Decrypt(sealedKey.AsSpan(0, 12), sealedKey.AsSpan(28), sealedKey.AsSpan(12, 16), plain, Encoding.UTF8.GetBytes(name.ToLowerInvariant())); }
        catch (AuthenticationTagMismatchException)
        {
            throw new CertificateException($"the private key of '{name}' cannot be decrypted with {MasterKeyPath} (wrong store key? " +
                "in a cluster, cluster-wide certificates need the key file of the member that stored them)");
        }
        return plain;
    }

    // ---- certificates ----

    /// <param name="assignments">The configuration's assignments (service, certificate), for AssignedTo.</param>
    public IReadOnlyList<CertificateInfo> List(IEnumerable<(string Service, string Certificate)>? assignments = null)
    {
        var uses = (assignments ?? []).ToList();
        return _rows.All().OrderBy(r => r.Name, StringComparer.OrdinalIgnoreCase)
            .Select(r => Describe(r.Name, r.Scope, X509CertificateLoader.LoadCertificate(r.Certificate), r.Chain, r.KeyType, uses)).ToList();
    }

    public CertificateInfo? Find(string name, IEnumerable<(string Service, string Certificate)>? assignments = null) => List(assignments).FirstOrDefault(c => c.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    private static CertificateInfo Describe(string name, CertificateScope scope, X509Certificate2 cert, string chainPem, string keyType, IReadOnlyList<(string Service, string Certificate)> assignments)
    {
        var chain = new X509Certificate2Collection();
        if (chainPem.Length > 0) chain.ImportFromPem(chainPem);
        return new CertificateInfo(name, cert.Subject, cert.Issuer, Policy.CertificateVerifier.DnsNames(cert), cert.NotBefore, cert.NotAfter, cert.Thumbprint,
            keyType, cert.SubjectName.RawData.AsSpan().SequenceEqual(cert.IssuerName.RawData), chain.Count, scope,
            assignments.Where(a => a.Certificate.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(a => a.Service).Distinct().Order().ToList());
    }

    /// <summary>Creates a self-signed certificate and stores it with its key.</summary>
    public CertificateInfo CreateSelfSigned(SelfSignedRequest request)
    {
        var cn = request.CommonName.Trim();
        if (cn.Length == 0) throw new CertificateException("the common name is empty");
        if (request.Country is { } c && (c.Length != 2 || !c.All(char.IsAsciiLetter)))
            throw new CertificateException($"country '{c}' is not a 2-letter ISO 3166 code");
        if (request.Days is < 1 or > 3650) throw new CertificateException("days until expiry must be 1-3650");
        var names = new List<string> { cn };
        names.AddRange(request.ExtraDnsNames ?? []);
        if (request.ValidateFqdn)
            foreach (var n in names)
            {
                var bare = n.StartsWith("*.", StringComparison.Ordinal) ? n[2..] : n;
                if (!bare.Contains('.') || !DomainNames.IsValidHostname(bare))
                    throw new CertificateException($"'{n}' is not a fully qualified domain name");
            }
        if (request.Key == KeyKind.Rsa1024 && !request.AllowInsecureKey)
            throw new CertificateException("a 1024-bit RSA key is insecure and rejected by modern TLS stacks; pass the insecure flag to create one anyway");
        var name = request.Name ?? cn;
        ValidateName(name);
        if (Exists(name)) throw new CertificateException($"a certificate named '{name}' exists already");

        var subject = new StringBuilder("CN=").Append(Escape(cn));
        void Part(string key, string? value) { if (!string.IsNullOrWhiteSpace(value)) subject.Append(", ").Append(key).Append('=').Append(Escape(value.Trim())); }
        Part("OU", request.Unit);
        Part("O", request.Organization);
        Part("L", request.City);
        Part("S", request.State);
        Part("C", request.Country?.ToUpperInvariant());

        using var key = NewKey(request.Key);
        var csr = NewRequest(subject.ToString(), key, names);
        var now = DateTimeOffset.UtcNow;
        using var cert = csr.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(request.Days));
        var scope = request.Scope ?? DefaultScope(names);
        Save(name, scope, cert, new X509Certificate2Collection(), KeyTypeName(key), ExportKey(key), replace: false);
        return Find(name)!;
    }

    /// <summary>Wildcard and multi-name certificates may serve a whole cluster; others are per machine.</summary>
    private static CertificateScope DefaultScope(IReadOnlyCollection<string> names) =>
        names.Any(n => n.StartsWith("*.", StringComparison.Ordinal)) || names.Distinct(StringComparer.OrdinalIgnoreCase).Count() > 1
            ? CertificateScope.Cluster : CertificateScope.Machine;

    private static string Escape(string value) => value.IndexOfAny([',', '+', '"', '\\', '<', '>', ';', '=']) >= 0 ? "\"" + value.Replace("\"", "\\\"") + "\"" : value;

    private static void ValidateName(string name)
    {
        if (name.Length is 0 or > 128 || name.Any(ch => char.IsControl(ch) || ch is '/' or '\\'))
            throw new CertificateException($"'{name}' is not a usable certificate name");
    }

    private static AsymmetricAlgorithm NewKey(KeyKind kind) => kind switch
    {
        KeyKind.Rsa1024 => RSA.Create(1024),
        KeyKind.Rsa2048 => RSA.Create(2048),
        KeyKind.Rsa3072 => RSA.Create(3072),
        KeyKind.Rsa4096 => RSA.Create(4096),
        KeyKind.EcdsaP256 => ECDsa.Create(ECCurve.NamedCurves.nistP256),
        KeyKind.EcdsaP384 => ECDsa.Create(ECCurve.NamedCurves.nistP384),
        _ => throw new CertificateException($"unknown key type {kind}"),
    };

    private static CertificateRequest NewRequest(string subject, AsymmetricAlgorithm key, IEnumerable<string> names)
    {
        var req = key is RSA rsa
            ? new CertificateRequest(subject, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest(subject, (ECDsa)key, key.KeySize > 256 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in names.Distinct(StringComparer.OrdinalIgnoreCase)) san.AddDnsName(n);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | (key is RSA ? X509KeyUsageFlags.KeyEncipherment : 0), true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        return req;
    }

    private static string KeyTypeName(AsymmetricAlgorithm key) => key is RSA ? $"RSA {key.KeySize}" : $"ECDSA P-{key.KeySize}";
    private static byte[] ExportKey(AsymmetricAlgorithm key) => key switch
    {
        RSA rsa => rsa.ExportPkcs8PrivateKey(),
        ECDsa ec => ec.ExportPkcs8PrivateKey(),
        _ => throw new CertificateException("unsupported key algorithm"),
    };

    private static AsymmetricAlgorithm ImportKey(byte[] pkcs8, X509Certificate2 cert)
    {
        AsymmetricAlgorithm key = cert.GetKeyAlgorithm() == "1.2.840.10045.2.1" ? ECDsa.Create() : RSA.Create();
        if (key is RSA rsa) rsa.ImportPkcs8PrivateKey(pkcs8, out _); else ((ECDsa)key).ImportPkcs8PrivateKey(pkcs8, out _);
        CryptographicOperations.ZeroMemory(pkcs8);
        return key;
    }

    /// <summary>A PEM certificate signing request for a stored certificate's key and names.</summary>
    public string CreateSigningRequest(string name)
    {
        var (cert, _, _, sealedKey, _) = Load(name);
        using var key = ImportKey(Unseal(sealedKey, name), cert);
        return NewRequest(cert.SubjectName.Name, key, Policy.CertificateVerifier.DnsNames(cert)).CreateSigningRequestPem();
    }

    /// <summary>Replaces the certificate with the CA-signed one, only if it carries the stored public key.</summary>
    public CertificateInfo UploadSigned(string name, string certificatePem, string? intermediatesPem)
    {
        var (current, scope, keyType, sealedKey, _) = Load(name);
        var signed = ParseSingle(certificatePem, "signed certificate");
        if (!signed.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(current.PublicKey.ExportSubjectPublicKeyInfo()))
            throw new CertificateException($"the uploaded certificate does not match the private key of '{name}' (its public key differs); nothing was changed");
        var chain = intermediatesPem is null ? new X509Certificate2Collection() : ParseMany(intermediatesPem, "intermediate certificates");
        SaveSealed(name, scope, signed, chain, keyType, sealedKey);
        return Find(name)!;
    }

    /// <summary>Sets the intermediate certificates sent with this certificate in TLS handshakes.</summary>
    public CertificateInfo SetIntermediates(string name, string intermediatesPem)
    {
        var (cert, scope, keyType, sealedKey, _) = Load(name);
        SaveSealed(name, scope, cert, ParseMany(intermediatesPem, "intermediate certificates"), keyType, sealedKey);
        return Find(name)!;
    }

    public CertificateInfo ImportPkcs12(string name, byte[] pkcs12, string passphrase, CertificateScope? scope = null)
    {
        ValidateName(name);
        if (Exists(name)) throw new CertificateException($"a certificate named '{name}' exists already");
        X509Certificate2Collection all;
        try { all = X509CertificateLoader.LoadPkcs12Collection(pkcs12, passphrase, X509KeyStorageFlags.Exportable); }
        catch (CryptographicException e)
        {
            throw new CertificateException(e.Message.Contains("password", StringComparison.OrdinalIgnoreCase) || e.HResult == -2146893819 || e.Message.Contains("MAC", StringComparison.OrdinalIgnoreCase)
                ? "the PKCS#12 passphrase is wrong (or the file is damaged); nothing was imported"
                : $"the PKCS#12 file cannot be read: {e.Message}; nothing was imported");
        }
        var leaf = all.FirstOrDefault(c => c.HasPrivateKey)
            ?? throw new CertificateException("the PKCS#12 file holds no certificate with a private key; nothing was imported");
        using AsymmetricAlgorithm key = (AsymmetricAlgorithm?)leaf.GetRSAPrivateKey() ?? leaf.GetECDsaPrivateKey()
            ?? throw new CertificateException("only RSA and ECDSA keys are supported; nothing was imported");
        var chain = new X509Certificate2Collection();
        foreach (var c in all)
            if (!c.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)) chain.Add(X509CertificateLoader.LoadCertificate(c.RawData));
        var plainLeaf = X509CertificateLoader.LoadCertificate(leaf.RawData);
        Save(name, scope ?? DefaultScope(Policy.CertificateVerifier.DnsNames(plainLeaf)), plainLeaf, chain, KeyTypeName(key), ExportKey(key), replace: false);
        return Find(name)!;
    }

    /// <summary>PKCS#12 with PBES2 / AES-256-CBC / SHA-256 and the chain included.</summary>
    public byte[] ExportPkcs12(string name, string passphrase)
    {
        if (passphrase.Length < 8) throw new CertificateException("the export passphrase must have at least 8 characters");
        var (cert, _, _, sealedKey, chain) = Load(name);
        using var key = ImportKey(Unseal(sealedKey, name), cert);
        using var withKey = key is RSA rsa ? cert.CopyWithPrivateKey(rsa) : cert.CopyWithPrivateKey((ECDsa)key);
        var collection = new X509Certificate2Collection { withKey };
        collection.AddRange(chain);
        return collection.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, passphrase);
    }

    /// <summary>The certificate with its key and chain, ready for TLS.</summary>
    public ServerCertificate LoadForTls(string name)
    {
        var (cert, _, _, sealedKey, chain) = Load(name);
        using var key = ImportKey(Unseal(sealedKey, name), cert);
        var withKey = key is RSA rsa ? cert.CopyWithPrivateKey(rsa) : cert.CopyWithPrivateKey((ECDsa)key);
        return ServerCertificate.From(withKey, chain, isDemo: false, name);
    }

    /// <param name="assignments">Every assignment that may use it (committed and staged configuration).</param>
    public void Delete(string name, IEnumerable<(string Service, string Certificate)> assignments)
    {
        var users = assignments.Where(a => a.Certificate.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(a => a.Service).Distinct().ToList();
        if (users.Count > 0) throw new CertificateException($"'{name}' is assigned to {string.Join(", ", users)}; unassign it first (and commit)");
        if (!_rows.Delete(name)) throw new CertificateException($"no certificate named '{name}'");
        _rows.Bump();
    }

    public bool Exists(string name) => _rows.Get(name) is not null;

    private (X509Certificate2 Cert, CertificateScope Scope, string KeyType, byte[] SealedKey, X509Certificate2Collection Chain) Load(string name)
    {
        var row = _rows.Get(name) ?? throw new CertificateException($"no certificate named '{name}'");
        var chain = new X509Certificate2Collection();
        if (row.Chain.Length > 0) chain.ImportFromPem(row.Chain);
        return (X509CertificateLoader.LoadCertificate(row.Certificate), row.Scope, row.KeyType, row.SealedKey, chain);
    }

    private void Save(string name, CertificateScope scope, X509Certificate2 cert, X509Certificate2Collection chain, string keyType, byte[] pkcs8, bool replace) =>
        SaveSealed(name, scope, cert, chain, keyType, Seal(pkcs8, name), replace);

    private void SaveSealed(string name, CertificateScope scope, X509Certificate2 cert, X509Certificate2Collection chain, string keyType, byte[] sealedKey, bool replace = true)
    {
        var chainPem = string.Concat(chain.Select(c => c.ExportCertificatePem() + "\n"));
        _rows.Save(new CertificateRow(name, scope, cert.RawData, chainPem, keyType, sealedKey), replace);
        _rows.Bump();
    }

    private static X509Certificate2 ParseSingle(string pem, string what)
    {
        var all = ParseMany(pem, what);
        if (all.Count != 1) throw new CertificateException($"the {what} must be exactly one PEM certificate (found {all.Count})");
        return all[0];
    }

    public static X509Certificate2Collection ParseMany(string pem, string what)
    {
        var all = new X509Certificate2Collection();
        try { all.ImportFromPem(pem); }
        catch (CryptographicException e) { throw new CertificateException($"the {what} are malformed PEM: {e.Message}; nothing was changed"); }
        if (all.Count == 0)
            throw new CertificateException(pem.Contains("-----BEGIN", StringComparison.Ordinal)
                ? $"the {what} hold a PEM block that cannot be decoded (malformed PEM); nothing was changed"
                : $"no PEM certificate found in the {what}; nothing was changed");
        return all;
    }

    // ---- settings kept here by earlier versions ----

    /// <summary>
    /// Assignments and CA-list settings that earlier versions kept in this store; they live in
    /// the versioned configuration now; read for the migration, then cleared.
    /// </summary>
    public LegacyCertificateSettings ReadLegacySettings() => _rows.ReadLegacy();

    public void ClearLegacySettings() => _rows.ClearLegacy();

    public static string Fingerprint(X509Certificate2 c) => Convert.ToHexString(SHA256.HashData(c.RawData));

    // ---- version ----

    /// <summary>Increases on every change; the daemon reloads when it moves.</summary>
    public long Version => _rows.Version;

    /// <summary>Moves the version without a change: running gateways reload (the system bundle after an OS update).</summary>
    public void Touch() => _rows.Bump();

    public void Dispose() => _rows.Dispose();
}

/// <summary>One stored certificate as its rows keep it: the key sealed, the chain as PEM.</summary>
public sealed record CertificateRow(string Name, CertificateScope Scope, byte[] Certificate, string Chain, string KeyType, byte[] SealedKey);

/// <summary>Where a certificate store keeps its rows: a SQLite file on one machine, the cluster's database for members.</summary>
public interface ICertificateRows : IDisposable
{
    /// <summary>Every certificate this machine may use.</summary>
    IEnumerable<CertificateRow> All();
    CertificateRow? Get(string name);
    /// <summary>Stores a certificate; without replace, an existing name is an error.</summary>
    void Save(CertificateRow row, bool replace);
    bool Delete(string name);
    long Version { get; }
    void Bump();
    /// <summary>The sealing key's check value and file, for rows that must refuse a key other than the one they were sealed with (a cluster member with another key file).</summary>
    void KnowSealingKey(byte[] check, string keyPath) { }
    LegacyCertificateSettings ReadLegacy() => new(new Dictionary<string, string>(), false, []);
    void ClearLegacy() { }
}

/// <summary>The rows in &lt;data&gt;/certs/certificates.db (0600 in a 0700 folder).</summary>
public sealed class SqliteCertificateRows : ICertificateRows
{
    private readonly SqliteConnection _db;

    public string DatabasePath { get; }

    public SqliteCertificateRows(string dataDirectory)
    {
        var dir = Path.Combine(dataDirectory, "certs");
        CertificateStore.CreatePrivateDirectory(dir);
        DatabasePath = Path.Combine(dir, "certificates.db");
        if (!File.Exists(DatabasePath)) { using (File.Create(DatabasePath)) { } }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(DatabasePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        _db.Open();
        Exec("""
            PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;
            CREATE TABLE IF NOT EXISTS certificates(name TEXT PRIMARY KEY COLLATE NOCASE, scope INTEGER NOT NULL,
              certificate BLOB NOT NULL, chain TEXT NOT NULL, key_type TEXT NOT NULL, key_sealed BLOB NOT NULL, created INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS assignments(service TEXT PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE);
            CREATE TABLE IF NOT EXISTS custom_cas(fingerprint TEXT PRIMARY KEY, certificate BLOB NOT NULL, added INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO settings(key, value) VALUES('version', '1'), ('system_cas_enabled', '1');
            """);
    }

    public IEnumerable<CertificateRow> All() => Read("");

    public CertificateRow? Get(string name) => Read("WHERE name=$n", ("$n", name)).FirstOrDefault();

    private List<CertificateRow> Read(string where, params (string Name, object Value)[] parameters)
    {
        using var cmd = Command("SELECT name, scope, certificate, chain, key_type, key_sealed FROM certificates " + where, parameters);
        using var r = cmd.ExecuteReader();
        var rows = new List<CertificateRow>();
        while (r.Read()) rows.Add(new CertificateRow(r.GetString(0), (CertificateScope)r.GetInt32(1), (byte[])r[2], r.GetString(3), r.GetString(4), (byte[])r[5]));
        return rows;
    }

    public void Save(CertificateRow row, bool replace)
    {
        using var cmd = Command((replace ? "INSERT OR REPLACE" : "INSERT") + " INTO certificates(name, scope, certificate, chain, key_type, key_sealed, created) VALUES($n, $s, $c, $ch, $k, $key, $t)",
            ("$n", row.Name), ("$s", (int)row.Scope), ("$c", row.Certificate), ("$ch", row.Chain), ("$k", row.KeyType), ("$key", row.SealedKey), ("$t", DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
        cmd.ExecuteNonQuery();
    }

    public bool Delete(string name)
    {
        using var cmd = Command("DELETE FROM certificates WHERE name=$n", ("$n", name));
        return cmd.ExecuteNonQuery() > 0;
    }

    public long Version => long.Parse(Setting("version") ?? "0", System.Globalization.CultureInfo.InvariantCulture);

    public void Bump() => Exec("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key='version'");

    public LegacyCertificateSettings ReadLegacy()
    {
        var assignments = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        using (var cmd = Command("SELECT service, name FROM assignments"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) assignments[r.GetString(0)] = r.GetString(1);
        var customCas = new List<string>();
        using (var cmd = Command("SELECT certificate FROM custom_cas ORDER BY added, fingerprint"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) customCas.Add(X509CertificateLoader.LoadCertificate((byte[])r[0]).ExportCertificatePem());
        return new LegacyCertificateSettings(assignments, Setting("system_cas_enabled") == "0", customCas);
    }

    public void ClearLegacy() =>
        Exec("DELETE FROM assignments; DELETE FROM custom_cas; UPDATE settings SET value='1' WHERE key='system_cas_enabled';");

    private string? Setting(string key)
    {
        using var cmd = Command("SELECT value FROM settings WHERE key=$k", ("$k", key));
        return cmd.ExecuteScalar() as string;
    }

    private SqliteCommand Command(string sql, params (string Name, object Value)[] parameters)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in parameters) cmd.Parameters.AddWithValue(n, v);
        return cmd;
    }

    private void Exec(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => _db.Dispose();
}
