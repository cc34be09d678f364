import Crypto
import Foundation

/// Where the server's secret material lives: the HMAC key of client secrets and the ES256
/// signing keys. PostgreSQL when Vault is not configured; Vault KV, and nowhere else, when it is
/// (DESIGN.md §Tokens and secrets).
///
/// Every method may be called by several instances at once: they end with one HMAC key and one
/// current signing key.
public protocol SecretStore: Sendable {
    /// The HMAC key, created first when no instance has yet.
    func credentialHMACKey() async throws -> SymmetricKey
    /// The published signing keys, after creating the first one when there is none.
    func ensureSigningKeys() async throws -> [SigningKey]
    /// The current key and the retired ones still published.
    func publishedSigningKeys() async throws -> [SigningKey]
    /// Makes a new current key; the old one stays published for `publishFor`. Records a
    /// `key.rotate` audit event. Returns the new and the retired kid.
    func rotateSigningKey(publishFor: Duration, audit: AuditContext) async throws -> (current: String, retired: String?)
}

/// The secret material in PostgreSQL (`server_keys`, `signing_keys`), shared by every instance.
struct PostgresSecretStore: SecretStore {
    let pool: ConnectionPool

    func credentialHMACKey() async throws -> SymmetricKey {
        try await pool.withConnection { try ServerKeyStore.loadOrCreate(ServerKeyStore.credentialHMACKeyName, on: $0) }
    }

    func ensureSigningKeys() async throws -> [SigningKey] {
        try await pool.withConnection { connection in
            try SigningKeyStore.ensureCurrent(on: connection)
            return try SigningKeyStore.published(on: connection)
        }
    }

    func publishedSigningKeys() async throws -> [SigningKey] {
        try await pool.withConnection { try SigningKeyStore.published(on: $0) }
    }

    func rotateSigningKey(publishFor: Duration, audit: AuditContext) async throws -> (current: String, retired: String?) {
        // The rotation and its audit event commit together.
        try await pool.transaction { connection in
            let rotated = try SigningKeyStore.rotate(on: connection, publishFor: publishFor)
            try AuditLog.append(
                .keyRotate, agentID: nil, context: audit,
                details: ["kid": .string(rotated.current), "retiredKid": rotated.retired.map(JSONValue.string) ?? .null],
                on: connection)
            return rotated
        }
    }
}
