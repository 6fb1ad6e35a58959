using Npgsql;
using Postern.Security;

namespace Postern.Cluster;

/// <summary>
/// A cluster's certificates in the shared database (SPEC §5): a cluster-wide certificate is one
/// row every member uses; a machine certificate is a row per member under the same name, so each
/// member serves its own. A member sees the cluster's and its own; its own wins a name clash.
/// Keys are sealed with each member's certificate-store key. Cluster-wide certificates need one
/// key on every member that serves them: the key of the member that stored the first one is
/// recorded as a check value, and a member with another key may not store cluster-wide
/// certificates (and cannot unseal them) until that key file is copied to it.
/// </summary>
public sealed class PostgresCertificateRows : ICertificateRows
{
    private static readonly string[] Steps =
    [
        // 1: certificates (member '' = cluster-wide), the store's change counter and key check.
        """
        CREATE TABLE certificates(member text NOT NULL, name text NOT NULL, lower_name text NOT NULL, scope int NOT NULL,
          certificate bytea NOT NULL, chain text NOT NULL, key_type text NOT NULL, key_sealed bytea NOT NULL, created bigint NOT NULL,
          PRIMARY KEY(member, lower_name));
        CREATE TABLE certificate_store(id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, key_check bytea);
        INSERT INTO certificate_store(id, version) VALUES(1, 1);
        """,
    ];

    private readonly PostgresDatabase _db;
    private readonly string _member;

    public PostgresCertificateRows(PostgresDatabase db, string member)
    {
        _db = db;
        _member = member;
        db.EnsureSchema("certificates", Steps);
    }

    private NpgsqlCommand Command(string sql, params object[] values)
    {
        var cmd = _db.Source.CreateCommand(sql);
        foreach (var v in values) cmd.Parameters.Add(new NpgsqlParameter { Value = v });
        return cmd;
    }

    private byte[] _check = [];
    private string _keyPath = "";

    public void KnowSealingKey(byte[] check, string keyPath) => (_check, _keyPath) = (check, keyPath);

    /// <summary>Cluster-wide rows are sealed with the cluster's key: the first one stored sets it, a member with another key is refused.</summary>
    private void RequireClusterKey(NpgsqlConnection c, NpgsqlTransaction tx)
    {
        using (var set = new NpgsqlCommand("UPDATE certificate_store SET key_check=$1 WHERE id=1 AND key_check IS NULL", c, tx))
        {
            set.Parameters.Add(new NpgsqlParameter { Value = _check });
            set.ExecuteNonQuery();
        }
        using var get = new NpgsqlCommand("SELECT key_check FROM certificate_store WHERE id=1", c, tx);
        if (get.ExecuteScalar() is byte[] stored && !stored.AsSpan().SequenceEqual(_check))
            throw new CertificateException($"this member's certificate store key {_keyPath} is not the cluster's, so it cannot store cluster-wide certificates: " +
                "copy that file from a member that has stored one (0600), then restart this member");
    }

    /// <summary>The cluster's rows and this member's, this member's first for a name both have.</summary>
    private List<CertificateRow> Read(string? lowerName)
    {
        using var cmd = Command("""
            SELECT DISTINCT ON (lower_name) name, scope, certificate, chain, key_type, key_sealed FROM certificates
            WHERE member IN ('', $1) AND ($2::text IS NULL OR lower_name = $2)
            ORDER BY lower_name, member DESC
            """, _member, (object?)lowerName ?? DBNull.Value);
        using var r = cmd.ExecuteReader();
        var rows = new List<CertificateRow>();
        while (r.Read()) rows.Add(new CertificateRow(r.GetString(0), (CertificateScope)r.GetInt32(1), (byte[])r[2], r.GetString(3), r.GetString(4), (byte[])r[5]));
        return rows;
    }

    public IEnumerable<CertificateRow> All() => Read(null);

    public CertificateRow? Get(string name) => Read(name.ToLowerInvariant()).FirstOrDefault();

    private string MemberFor(CertificateScope scope) => scope == CertificateScope.Cluster ? "" : _member;

    public void Save(CertificateRow row, bool replace)
    {
        using var c = _db.Source.OpenConnection();
        using var tx = c.BeginTransaction();
        var lower = row.Name.ToLowerInvariant();
        if (row.Scope == CertificateScope.Cluster) RequireClusterKey(c, tx);
        if (!replace)
        {
            using var exists = new NpgsqlCommand("SELECT COUNT(*) FROM certificates WHERE member IN ('', $1) AND lower_name=$2", c, tx);
            exists.Parameters.Add(new NpgsqlParameter { Value = _member });
            exists.Parameters.Add(new NpgsqlParameter { Value = lower });
            if ((long)exists.ExecuteScalar()! > 0) throw new CertificateException($"a certificate named '{row.Name}' exists already");
        }
        // A certificate that changes scope leaves its other row behind: one name, one place.
        using (var other = new NpgsqlCommand("DELETE FROM certificates WHERE lower_name=$1 AND member IN ('', $2)", c, tx))
        {
            other.Parameters.Add(new NpgsqlParameter { Value = lower });
            other.Parameters.Add(new NpgsqlParameter { Value = _member });
            other.ExecuteNonQuery();
        }
        using (var insert = new NpgsqlCommand("""
            INSERT INTO certificates(member, name, lower_name, scope, certificate, chain, key_type, key_sealed, created)
            VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """, c, tx))
        {
            foreach (var v in new object[] { MemberFor(row.Scope), row.Name, lower, (int)row.Scope, row.Certificate, row.Chain, row.KeyType, row.SealedKey, DateTimeOffset.UtcNow.ToUnixTimeSeconds() })
                insert.Parameters.Add(new NpgsqlParameter { Value = v });
            insert.ExecuteNonQuery();
        }
        tx.Commit();
    }

    public bool Delete(string name)
    {
        // This member's machine certificate of that name if it has one, else the cluster's.
        using var cmd = Command("""
            DELETE FROM certificates WHERE ctid IN (
              SELECT ctid FROM certificates WHERE member IN ('', $1) AND lower_name=$2 ORDER BY member DESC LIMIT 1)
            """, _member, name.ToLowerInvariant());
        return cmd.ExecuteNonQuery() > 0;
    }

    public long Version
    {
        get
        {
            using var cmd = Command("SELECT version FROM certificate_store WHERE id=1");
            return (long)cmd.ExecuteScalar()!;
        }
    }

    public void Bump()
    {
        using var cmd = Command("UPDATE certificate_store SET version = version + 1 WHERE id=1");
        cmd.ExecuteNonQuery();
    }

    public void Dispose() { }   // the data source is the process's
}
