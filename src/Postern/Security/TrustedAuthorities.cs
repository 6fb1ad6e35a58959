using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Admin;

namespace Postern.Security;

/// <summary>The enabled trusted CA lists: the system bundle and/or the custom list.</summary>
public sealed class TrustedAuthorities
{
    public X509Certificate2Collection Roots { get; } = new();
    public int SystemCount { get; }
    public int CustomCount { get; }

    public TrustedAuthorities(CertificateAuthoritySettings settings)
    {
        if (settings.SystemListEnabled)
            SystemCount = LoadFile(settings.SystemBundle, optional: true);
        if (!settings.CustomListEnabled) return;
        if (settings.CustomListFile is { } custom)
            CustomCount = LoadFile(custom, optional: false);
        foreach (var pem in settings.CustomList)
        {
            Roots.Add(X509Certificate2.CreateFromPem(pem));   // validated with the configuration
            CustomCount++;
        }
    }

    /// <summary>The certificates of a PEM bundle (the system list for `certconfig ca system list`).</summary>
    public static X509Certificate2Collection ReadBundle(string file)
    {
        var c = new X509Certificate2Collection();
        if (File.Exists(file)) c.ImportFromPemFile(file);
        return c;
    }

    private int LoadFile(string file, bool optional)
    {
        if (optional && !File.Exists(file)) return 0;
        var before = Roots.Count;
        try { Roots.ImportFromPemFile(file); }
        catch (Exception e) when (e is CryptographicException or IOException)
        {
            throw new CertificateException($"cannot load CA list {file}: {e.Message}");
        }
        return Roots.Count - before;
    }
}
