using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.Data.Sqlite;
using Postern.Admin;
using Postern.Queue;

namespace Postern.Web;

/// <summary>Administrator: everything. Operator: the queue and tracking, configuration read-only. ReadOnly: looks only.</summary>
public enum WebRole { Administrator, Operator, ReadOnly }

public sealed record WebUser(string Name, WebRole Role, string PasswordHash, int FailedLogins, DateTimeOffset? LockedUntil);

/// <summary>The outcome of a login attempt; the caller shows one generic message for unknown users and wrong passwords.</summary>
public enum LoginResult { Success, WrongNameOrPassword, LockedOut }

/// <summary>Local accounts of the web interface (behind an interface so clusters can share them later).</summary>
public interface IWebUserStore : IDisposable
{
    IReadOnlyList<WebUser> List();
    WebUser? Find(string name);
    void Save(WebUser user);
    bool Delete(string name);
}

public sealed class SqliteWebUserStore(string path) : IWebUserStore
{
    private readonly SqliteConnection _db = SqliteFiles.OpenPrivate(path, """
        CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY COLLATE NOCASE, role TEXT NOT NULL, hash TEXT NOT NULL,
          failed INTEGER NOT NULL DEFAULT 0, locked_until INTEGER);
        """);
    private readonly Lock _gate = new();

    public static string PathFor(string dataDirectory) => Path.Combine(dataDirectory, "web", "users.db");

    public IReadOnlyList<WebUser> List()
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT name, role, hash, failed, locked_until FROM users ORDER BY name";
            using var r = cmd.ExecuteReader();
            var list = new List<WebUser>();
            while (r.Read()) list.Add(Read(r));
            return list;
        }
    }

    public WebUser? Find(string name)
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT name, role, hash, failed, locked_until FROM users WHERE name=$n";
            cmd.Parameters.AddWithValue("$n", name);
            using var r = cmd.ExecuteReader();
            return r.Read() ? Read(r) : null;
        }
    }

    private static WebUser Read(SqliteDataReader r) => new(r.GetString(0), Enum.Parse<WebRole>(r.GetString(1)), r.GetString(2), r.GetInt32(3),
        r.IsDBNull(4) ? null : DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(4)));

    public void Save(WebUser user)
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "INSERT OR REPLACE INTO users(name, role, hash, failed, locked_until) VALUES($n, $r, $h, $f, $l)";
            cmd.Parameters.AddWithValue("$n", user.Name);
            cmd.Parameters.AddWithValue("$r", user.Role.ToString());
            cmd.Parameters.AddWithValue("$h", user.PasswordHash);
            cmd.Parameters.AddWithValue("$f", user.FailedLogins);
            cmd.Parameters.AddWithValue("$l", user.LockedUntil is { } l ? l.ToUnixTimeSeconds() : DBNull.Value);
            cmd.ExecuteNonQuery();
        }
    }

    public bool Delete(string name)
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "DELETE FROM users WHERE name=$n";
            cmd.Parameters.AddWithValue("$n", name);
            return cmd.ExecuteNonQuery() > 0;
        }
    }

    public void Dispose() => _db.Dispose();
}

/// <summary>
/// The rules of the accounts: names, password strength, hashing (ASP.NET Core's password
/// hasher: PBKDF2; never a password in clear), lock-out after repeated failures, the initial
/// administrator made at first start.
/// </summary>
public sealed class WebUserService(IWebUserStore store, Func<DateTimeOffset> now, int maxFailedLogins = 5, int lockoutMinutes = 15)
{
    private static readonly PasswordHasher<string> Hasher = new();
    public const int MinPasswordLength = 10;

    public IReadOnlyList<WebUser> List() => store.List();

    public WebUser Add(string name, WebRole role, string password)
    {
        CheckName(name);
        if (store.Find(name) is not null) throw new ConfigException($"user '{name}' exists already");
        var user = new WebUser(name, role, Hash(name, password), 0, null);
        store.Save(user);
        return user;
    }

    public void SetPassword(string name, string password)
    {
        var user = store.Find(name) ?? throw new ConfigException($"there is no user '{name}'");
        store.Save(user with { PasswordHash = Hash(user.Name, password), FailedLogins = 0, LockedUntil = null });
    }

    public void SetRole(string name, WebRole role)
    {
        var user = store.Find(name) ?? throw new ConfigException($"there is no user '{name}'");
        if (user.Role == WebRole.Administrator && role != WebRole.Administrator && AdministratorCount() == 1)
            throw new ConfigException($"'{name}' is the last administrator");
        store.Save(user with { Role = role });
    }

    public void Delete(string name)
    {
        var user = store.Find(name) ?? throw new ConfigException($"there is no user '{name}'");
        if (user.Role == WebRole.Administrator && AdministratorCount() == 1) throw new ConfigException($"'{name}' is the last administrator");
        store.Delete(user.Name);
    }

    private int AdministratorCount() => store.List().Count(u => u.Role == WebRole.Administrator);

    /// <summary>Checks a login; counts failures and locks the account after too many in a row.</summary>
    public (LoginResult Result, WebUser? User) Login(string name, string password)
    {
        var user = store.Find(name);
        if (user is null)
        {
            Hasher.HashPassword(name, password);   // about the same time as a real check: no user enumeration by timing
            return (LoginResult.WrongNameOrPassword, null);
        }
        if (user.LockedUntil is { } until && until > now()) return (LoginResult.LockedOut, user);
        var verdict = Hasher.VerifyHashedPassword(user.Name, user.PasswordHash, password);
        if (verdict == PasswordVerificationResult.Failed)
        {
            var failed = user.FailedLogins + 1;
            var locked = failed >= maxFailedLogins ? now().AddMinutes(lockoutMinutes) : (DateTimeOffset?)null;
            store.Save(user with { FailedLogins = locked is null ? failed : 0, LockedUntil = locked });
            return (locked is null ? LoginResult.WrongNameOrPassword : LoginResult.LockedOut, user);
        }
        var fresh = user with
        {
            FailedLogins = 0, LockedUntil = null,
            PasswordHash = verdict == PasswordVerificationResult.SuccessRehashNeeded ? Hash(user.Name, password) : user.PasswordHash,
        };
        store.Save(fresh);
        return (LoginResult.Success, fresh);
    }

    /// <summary>At first start: an administrator "admin" with a generated password, written 0600 to FILE; returns the password once, else null.</summary>
    public string? CreateInitialAdministrator(string file)
    {
        if (store.List().Count > 0) return null;
        var password = GeneratePassword();
        Add("admin", WebRole.Administrator, password);
        Security.ServerCertificate.WritePrivate(file, $"admin {password}\n");
        return password;
    }

    public static string GeneratePassword()
    {
        const string alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        return string.Create(20, 0, (span, _) =>
        {
            for (var i = 0; i < span.Length; i++) span[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        });
    }

    private static string Hash(string name, string password)
    {
        if (password.Length < MinPasswordLength) throw new ConfigException($"a password needs at least {MinPasswordLength} characters");
        if (password.Length > 1024) throw new ConfigException("a password has at most 1024 characters");
        return Hasher.HashPassword(name, password);
    }

    private static void CheckName(string name)
    {
        if (name.Length is < 1 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '@'))
            throw new ConfigException($"'{name}' is not a user name (1-64 letters, digits, '.', '-', '_', '@')");
    }
}
