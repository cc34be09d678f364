import Crypto
import Foundation

/// The secret material in Vault KV v2, and nowhere else:
///
/// - `<mount>/signet/credential-hmac`: `{"key": <base64 of at least 32 bytes>}`;
/// - `<mount>/signet/signing-keys`: `{"keys": <JSON list of {kid, pem, retiredAt?, publishUntil?}>}`,
///   times in Unix seconds.
///
/// Creation and rotation are check-and-set writes (`cas`): instances starting or rotating at
/// once read the winner's version and retry, so they end with one set. The audit event of a
/// rotation goes to PostgreSQL after the Vault write.
struct VaultSecretStore: SecretStore {
    static let hmacPath = "signet/credential-hmac"
    static let signingKeysPath = "signet/signing-keys"
    /// Check-and-set retries before giving up (each one means another instance wrote meanwhile).
    static let attempts = 8

    let client: VaultClient
    let pool: ConnectionPool
    let now: @Sendable () -> Date

    /// Reads the material a deployment kept in PostgreSQL before it moved to Vault. Asked only
    /// when Vault has none: what it finds is written instead of new material, so existing client
    /// secrets and tokens keep working.
    let legacy: @Sendable () async throws -> (hmacKey: Data?, signingKeys: [Entry])

    func credentialHMACKey() async throws -> SymmetricKey {
        for _ in 0..<Self.attempts {
            if let secret = try await client.read(Self.hmacPath) {
                guard let text = secret.data["key"], let material = Data(base64Encoded: text), material.count >= 32 else {
                    throw VaultError.malformed("\(client.mount)/\(Self.hmacPath): key must be base64 of at least 32 bytes")
                }
                return SymmetricKey(data: material)
            }
            let candidate = try await legacy().hmacKey ?? SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            do {
                try await client.write(Self.hmacPath, data: ["key": candidate.base64EncodedString()], cas: 0)
            } catch let error as VaultError where error.isVersionConflict {
                continue
            }
        }
        throw VaultError.unavailable("\(client.mount)/\(Self.hmacPath): too many concurrent writers")
    }

    func ensureSigningKeys() async throws -> [SigningKey] {
        for _ in 0..<Self.attempts {
            let (entries, version) = try await readEntries()
            let live = entries.filter { $0.isPublished(at: now()) }
            if live.contains(where: \.isCurrent) { return try live.reversed().map { try $0.signingKey() } }
            let importable = try await legacy().signingKeys.filter { $0.isPublished(at: now()) }
            let additions = importable.contains(where: \.isCurrent) ? importable : [Entry(key: P256.Signing.PrivateKey())]
            do {
                try await writeEntries(live + additions, cas: version)
            } catch let error as VaultError where error.isVersionConflict {
                continue
            }
        }
        throw VaultError.unavailable("\(client.mount)/\(Self.signingKeysPath): too many concurrent writers")
    }

    func publishedSigningKeys() async throws -> [SigningKey] {
        let (entries, _) = try await readEntries()
        return try entries.filter { $0.isPublished(at: now()) }.reversed().map { try $0.signingKey() }
    }

    func rotateSigningKey(publishFor: Duration, audit: AuditContext) async throws -> (current: String, retired: String?) {
        for _ in 0..<Self.attempts {
            let (entries, version) = try await readEntries()
            let at = Int64(now().timeIntervalSince1970)
            var retired: String?
            var kept = entries.filter { $0.isPublished(at: now()) }
            for index in kept.indices where kept[index].isCurrent {
                kept[index].retiredAt = at
                kept[index].publishUntil = at + publishFor.components.seconds
                retired = kept[index].kid
            }
            let fresh = Entry(key: P256.Signing.PrivateKey())
            do {
                try await writeEntries(kept + [fresh], cas: version)
            } catch let error as VaultError where error.isVersionConflict {
                continue
            }
            let rotated = (current: fresh.kid, retired: retired)
            // In a transaction: an audit row whose COMMIT is lost with its connection is not written twice.
            try await pool.transaction { connection in
                try AuditLog.append(
                    .keyRotate, agentID: nil, context: audit,
                    details: ["kid": .string(rotated.current), "retiredKid": rotated.retired.map(JSONValue.string) ?? .null],
                    on: connection)
            }
            return rotated
        }
        throw VaultError.unavailable("\(client.mount)/\(Self.signingKeysPath): too many concurrent writers")
    }

    // MARK: Stored form

    /// One signing key as stored in Vault.
    struct Entry: Codable, Sendable {
        var kid: String
        var pem: String
        var retiredAt: Int64?
        var publishUntil: Int64?

        init(key: P256.Signing.PrivateKey, retiredAt: Int64? = nil, publishUntil: Int64? = nil) {
            kid = SigningKey(privateKey: key, isCurrent: true).kid
            pem = key.pemRepresentation
            self.retiredAt = retiredAt
            self.publishUntil = publishUntil
        }

        var isCurrent: Bool { retiredAt == nil }

        func isPublished(at date: Date) -> Bool {
            isCurrent || (publishUntil ?? 0) > Int64(date.timeIntervalSince1970)
        }

        func signingKey() throws -> SigningKey {
            SigningKey(privateKey: try P256.Signing.PrivateKey(pemRepresentation: pem), isCurrent: isCurrent)
        }
    }

    /// The stored entries, oldest first, and the version read (0: none yet).
    private func readEntries() async throws -> ([Entry], Int) {
        guard let secret = try await client.read(Self.signingKeysPath) else { return ([], 0) }
        guard let text = secret.data["keys"], let entries = try? JSONDecoder().decode([Entry].self, from: Data(text.utf8)) else {
            throw VaultError.malformed("\(client.mount)/\(Self.signingKeysPath): keys must be a JSON list of signing keys")
        }
        return (entries, secret.version)
    }

    /// Stores `entries`, oldest first; the published keys are listed newest first, as PostgreSQL
    /// lists them.
    private func writeEntries(_ entries: [Entry], cas: Int) async throws {
        guard let data = try? JSONEncoder().encode(entries) else {
            throw VaultError.malformed("\(client.mount)/\(Self.signingKeysPath): the keys could not be encoded")
        }
        try await client.write(Self.signingKeysPath, data: ["keys": String(decoding: data, as: UTF8.self)], cas: cas)
    }
}
