import Crypto
import Foundation
import Logging

/// The secret material a process starts with: the credential HMAC key and the signing keys, and
/// the store that keeps them.
struct SecretMaterial: Sendable {
    let store: any SecretStore
    let hmacKey: SymmetricKey
    let signingKeys: [SigningKey]

    /// From Vault when `VAULT_ADDR` is set (PostgreSQL then holds only the schema; material found
    /// there is copied once into an empty Vault and not used from PostgreSQL), else from
    /// PostgreSQL (created on first start).
    static func load(
        vault: VaultClient?, pool: ConnectionPool, startup: StartupConnection, now: @escaping @Sendable () -> Date, logger: Logger
    ) async throws -> SecretMaterial {
        guard let vault else {
            let (hmacKey, signingKeys) = try await startup.run { connection in
                try SigningKeyStore.ensureCurrent(on: connection)
                return (
                    try ServerKeyStore.loadOrCreate(ServerKeyStore.credentialHMACKeyName, on: connection),
                    try SigningKeyStore.published(on: connection)
                )
            }
            return SecretMaterial(store: PostgresSecretStore(pool: pool), hmacKey: hmacKey, signingKeys: signingKeys)
        }
        let store = VaultSecretStore(client: vault, pool: pool, now: now) {
            let found = try await startup.run { connection in
                (
                    hmacKey: try ServerKeyStore.existing(ServerKeyStore.credentialHMACKeyName, on: connection),
                    signingKeys: try SigningKeyStore.exportable(on: connection)
                )
            }
            if found.hmacKey != nil || !found.signingKeys.isEmpty {
                logger.warning(LogLine.secretsInPostgres)
            }
            return found
        }
        let hmacKey = try await store.credentialHMACKey()
        let signingKeys = try await store.ensureSigningKeys()
        logger.info("secret material in Vault", metadata: ["vault": "\(vault.address)", "mount": "\(vault.mount)"])
        return SecretMaterial(store: store, hmacKey: hmacKey, signingKeys: signingKeys)
    }
}
