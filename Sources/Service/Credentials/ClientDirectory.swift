import Foundation
import Spec
import Synchronization

/// What the token path needs to know about a client: its agent and its live credentials.
public struct ClientRecord: Sendable {
    public struct Credential: Sendable {
        public let id: String
        let digest: Data
        /// Nil: no expiry. Checked on every use.
        public let expiresAt: Date?
    }

    public let agentID: String
    public let clientID: String
    public let owner: String
    public let status: Agent.Status
    public let scopes: [String]
    /// Not revoked; possibly expired (checked at use).
    public let credentials: [Credential]
}

/// Finds clients by `client_id` and verifies their secrets, with a short per-instance cache so
/// the token path does not query PostgreSQL on every request.
///
/// A change made through this instance (rotation, revocation, deactivation) invalidates the
/// entry at once; one made on another instance is seen within `ttl`
/// (`Spec.Defaults.credentialCacheMilliseconds`).
public final class ClientDirectory: Sendable {
    private struct Entry {
        let record: ClientRecord
        let fetched: ContinuousClock.Instant
    }

    private let pool: ConnectionPool
    private let hasher: CredentialHasher
    private let ttl: Duration
    private let cache = Mutex<[String: Entry]>([:])

    public init(pool: ConnectionPool, hasher: CredentialHasher, ttl: Duration = .milliseconds(Defaults.credentialCacheMilliseconds)) {
        self.pool = pool
        self.hasher = hasher
        self.ttl = ttl
    }

    /// The client, from the cache when fresh.
    public func client(_ clientID: String) async throws -> ClientRecord? {
        // Not the shape Signet issues (`sgc_` + 22 base64url characters): unknown, without a query.
        guard CredentialHasher.isWellFormedClientID(clientID) else { return nil }
        let now = ContinuousClock.now
        if let entry = cache.withLock({ $0[clientID] }), now - entry.fetched < ttl { return entry.record }
        guard let record = try await fetch(clientID) else {
            _ = cache.withLock { $0.removeValue(forKey: clientID) }
            return nil
        }
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll() }
            cache[clientID] = Entry(record: record, fetched: now)
        }
        return record
    }

    /// The live credential of `client` that `secret` matches, if any. Every live credential is
    /// compared (in constant time each), so timing does not tell which matched.
    public func credential(of client: ClientRecord, matching secret: String, at now: Date = Date()) -> ClientRecord.Credential? {
        var match: ClientRecord.Credential?
        for credential in client.credentials where credential.expiresAt.map({ $0 > now }) ?? true {
            if hasher.verify(secret, against: credential.digest) { match = credential }
        }
        return match
    }

    /// Forgets a client, after a change made through this instance.
    public func invalidate(clientID: String) {
        _ = cache.withLock { $0.removeValue(forKey: clientID) }
    }

    private func fetch(_ clientID: String) async throws -> ClientRecord? {
        let records = try await pool.withConnection { connection in
            try connection.query(
                """
                SELECT a.id::text AS agent_id, a.owner, a.status, a.scopes::text AS scopes,
                       c.id::text AS credential_id, encode(c.secret_hash, 'hex') AS digest,
                       extract(epoch FROM c.expires_at)::float8 AS expires_at
                FROM agents a LEFT JOIN agent_credentials c
                  ON c.agent_id = a.id AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())
                WHERE a.client_id = $1
                ORDER BY c.created_at
                """,
                [clientID]
            ).records
        }
        guard let first = records.first, let status = first["status"].flatMap(Agent.Status.init(rawValue:)) else { return nil }
        let scopes: [String]
        if case .array(let values) = JSONValue.parse(Data((first["scopes"] ?? "[]").utf8)) {
            scopes = values.compactMap { if case .string(let scope) = $0 { scope } else { nil } }
        } else {
            scopes = []
        }
        let credentials: [ClientRecord.Credential] = records.compactMap { record in
            guard let id = record["credential_id"], let digest = record["digest"].flatMap(Data.init(hex:)) else { return nil }
            return ClientRecord.Credential(
                id: id,
                digest: digest,
                expiresAt: record["expires_at"].flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
            )
        }
        return ClientRecord(
            agentID: try first.required("agent_id"),
            clientID: clientID,
            owner: try first.required("owner"),
            status: status,
            scopes: scopes,
            credentials: credentials
        )
    }
}
