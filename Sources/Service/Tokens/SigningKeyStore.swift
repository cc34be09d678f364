import Crypto
import Foundation

/// Signing keys in PostgreSQL, shared by every instance (they move to Vault KV when Vault is
/// configured). At most one key is current; retired keys stay published until `publish_until`.
enum SigningKeyStore {
    /// An arbitrary constant: the advisory lock for creating or rotating keys.
    static let lockKey = "7309145513297051042"

    /// The current key and the retired ones still published.
    static func published(on connection: PostgresConnection) throws -> [SigningKey] {
        try connection.query(
            """
            SELECT private_key_pem, retired_at IS NULL AS current FROM signing_keys
            WHERE retired_at IS NULL OR publish_until > now()
            ORDER BY created_at DESC
            """
        ).records.map { record in
            let key = try P256.Signing.PrivateKey(pemRepresentation: try record.required("private_key_pem"))
            return SigningKey(privateKey: key, isCurrent: try record.bool("current"))
        }
    }

    /// The published keys as Vault stores them, oldest first, for a deployment moving to Vault.
    static func exportable(on connection: PostgresConnection) throws -> [VaultSecretStore.Entry] {
        try connection.query(
            """
            SELECT private_key_pem, extract(epoch FROM retired_at)::bigint AS retired_at,
                   extract(epoch FROM publish_until)::bigint AS publish_until
            FROM signing_keys WHERE retired_at IS NULL OR publish_until > now() ORDER BY created_at
            """
        ).records.map { record in
            VaultSecretStore.Entry(
                key: try P256.Signing.PrivateKey(pemRepresentation: try record.required("private_key_pem")),
                retiredAt: record["retired_at"].flatMap { Int64($0) },
                publishUntil: record["publish_until"].flatMap { Int64($0) }
            )
        }
    }

    /// Creates the first key unless some instance already has.
    static func ensureCurrent(on connection: PostgresConnection) throws {
        try connection.query("BEGIN")
        do {
            try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [lockKey])
            let existing = try connection.query("SELECT 1 FROM signing_keys WHERE retired_at IS NULL").rows.count
            if existing == 0 { try insert(P256.Signing.PrivateKey(), on: connection) }
            try connection.query("COMMIT")
        } catch {
            _ = try? connection.query("ROLLBACK")
            throw error
        }
    }

    /// Makes a new current key; the old one stays published for `publishFor` (the longest a
    /// token it signed can live, plus slack). Returns the new and the retired kid.
    static func rotate(on connection: PostgresConnection, publishFor: Duration) throws -> (current: String, retired: String?) {
        let key = P256.Signing.PrivateKey()
        let kid = SigningKey(privateKey: key, isCurrent: true).kid
        let seconds = String(publishFor.components.seconds)
        try connection.query("SELECT pg_advisory_xact_lock($1::bigint)", [lockKey])
        let retired = try connection.query(
            """
            UPDATE signing_keys SET retired_at = now(), publish_until = now() + make_interval(secs => $1::int)
            WHERE retired_at IS NULL RETURNING kid
            """,
            [seconds]
        ).records.first?["kid"]
        try insert(key, on: connection)
        return (kid, retired)
    }

    /// Deletes keys no longer published: every token they signed has expired.
    static func dropExpired(on connection: PostgresConnection) throws -> Int {
        try connection.query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND publish_until <= now()").affectedRows
    }

    private static func insert(_ key: P256.Signing.PrivateKey, on connection: PostgresConnection) throws {
        let kid = SigningKey(privateKey: key, isCurrent: true).kid
        try connection.query(
            "INSERT INTO signing_keys (kid, algorithm, private_key_pem) VALUES ($1, 'ES256', $2)",
            [kid, key.pemRepresentation]
        )
    }
}
