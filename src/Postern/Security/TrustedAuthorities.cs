using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Admin;

namespace Postern.Security;

/// <summary>The enabled trusted CA lists (system bundle and/or custom PEM list), loaded once.</summary>
public sealed class TrustedAuthorities
{
    public X509Certificate2Collection Roots { get; } = new();
    public int SystemCount { get; }
    public int CustomCount { get; }

    public TrustedAuthorities(CertificateAuthoritySettings settings)
    {
        if (settings.SystemListEnabled && File.Exists(settings.SystemBundle))
            SystemCount = Load(settings.SystemBundle);
        if (settings.CustomListEnabled && settings.CustomListFile is { } custom)
            CustomCount = Load(custom);
    }

    private int Load(string file)
    {
        var before = Roots.Count;
        try { Roots.ImportFromPemFile(file); }
        catch (Exception e) when (e is CryptographicException or IOException)
        {
            throw new CertificateException($"cannot load CA list {file}: {e.Message}");
        }
        return Roots.Count - before;
    }
}
