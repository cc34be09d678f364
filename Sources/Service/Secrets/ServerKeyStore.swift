import Crypto
import Foundation

/// Keys the server itself holds, shared by every instance through PostgreSQL until Vault is
/// configured (DESIGN.md: "from Vault when configured").
enum ServerKeyStore {
    /// The key under which client secrets are HMACed.
    static let credentialHMACKeyName = "credential-hmac-v1"

    /// The named key if an instance created it, else nil (nothing is created).
    static func existing(_ name: String, on connection: PostgresConnection) throws -> Data? {
        let rows = try connection.query("SELECT encode(material, 'hex') AS material FROM server_keys WHERE name = $1", [name]).records
        return rows.first?["material"].flatMap { Data(hex: $0) }
    }

    /// Reads the named 256-bit key, creating it first if no instance has yet. Concurrent
    /// starters agree: the first insert wins and everyone reads the winner.
    static func loadOrCreate(_ name: String, on connection: PostgresConnection) throws -> SymmetricKey {
        let candidate = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        try connection.query(
            "INSERT INTO server_keys (name, material) VALUES ($1, decode($2, 'hex')) ON CONFLICT (name) DO NOTHING",
            [name, candidate.hexString]
        )
        let rows = try connection.query("SELECT encode(material, 'hex') AS material FROM server_keys WHERE name = $1", [name]).records
        guard let hex = rows.first?["material"], let material = Data(hex: hex), material.count == 32 else {
            throw DatabaseError.unexpectedResult("server key \(name) is missing or malformed")
        }
        return SymmetricKey(data: material)
    }
}
