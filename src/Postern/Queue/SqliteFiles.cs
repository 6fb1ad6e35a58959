using Microsoft.Data.Sqlite;

namespace Postern.Queue;

/// <summary>The small SQLite files beside the queue (versions, MTA-STS cache): opened one way, readable by the service user only.</summary>
public static class SqliteFiles
{
    /// <summary>Opens (creating the folder) with WAL, synchronous=FULL and a busy timeout, runs the schema, and restricts the files to 0600.</summary>
    public static SqliteConnection OpenPrivate(string path, string schema)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, DefaultTimeout = 30 }.ToString());
        connection.Open();
        using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;\n" + schema;
            cmd.ExecuteNonQuery();
        }
        RestrictToOwner(path);
        return connection;
    }

    /// <summary>The database and its WAL and shared-memory files: owner read/write only.</summary>
    public static void RestrictToOwner(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (var f in new[] { path, path + "-wal", path + "-shm" })
            if (File.Exists(f)) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}
