import Foundation
import SignetJOSE
import Spec

/// An agent's credentials as the admin API shows them: never a secret.
struct CredentialView: Encodable {
    enum State: String, Encodable {
        case active, expiring, expired, revoked
    }

    let id: String
    let state: State
    let createdAt: String
    let expiresAt: String?
    let revokedAt: String?
    let lastUsedAt: String?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(state, forKey: .state)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
    }

    enum CodingKeys: String, CodingKey { case id, state, createdAt, expiresAt, revokedAt, lastUsedAt }
}

/// The answer to a rotation: the new secret, shown this once (none when the new credential is a
/// public key set), and what happened to the old one.
struct RotatedCredential: Encodable {
    let id: String
    let clientID: String
    let clientSecret: String?
    let createdAt: String
    /// The credential that was current: it stays valid until its `expiresAt`.
    let previous: CredentialView?
    /// Credentials that ended at once because an agent holds at most two valid ones.
    let endedNow: [String]

    enum CodingKeys: String, CodingKey {
        case id, createdAt, previous, endedNow
        case clientID = "client_id"
        case clientSecret = "client_secret"
    }
}

/// Rotation and revocation of client secrets. Every change to one agent's credentials runs in a
/// transaction that first locks the agent's row, so concurrent rotations are serialised and an
/// agent never holds zero or three valid credentials.
public struct CredentialStore: Sendable {
    let pool: ConnectionPool
    let hasher: CredentialHasher
    /// Told the client id of each client this store changed, once the change has committed: the
    /// instance's credential cache drops it before the answer goes out (other instances hear of it
    /// through the change listener). Routes never invalidate the cache themselves.
    var changed: @Sendable (_ clientID: String) -> Void = { _ in }
    /// The one clock of credential expiry and grace periods (`Dependencies.now`).
    var now: @Sendable () -> Date = { Date() }

    /// One client by `client_id` ($1) with its credentials live at $2 (epoch seconds): one row per
    /// credential, or one row with NULL credential columns when it has none. The token path's
    /// lookup (`ClientDirectory`), prepared per connection.
    public static let clientLookup = PreparedStatement(
        name: "signet_client_lookup",
        sql: """
            SELECT a.id::text AS agent_id, a.owner, a.status, a.scopes::text AS scopes,
                   a.token_generation, a.resources::text AS resources, a.dpop_bound, a.auth_method,
                   c.id::text AS credential_id, encode(c.secret_hash, 'hex') AS digest, c.jwks::text AS jwks,
                   extract(epoch FROM c.expires_at)::float8 AS expires_at
            FROM agents a LEFT JOIN agent_credentials c
              ON c.agent_id = a.id AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($2::float8))
            WHERE a.client_id = $1
            ORDER BY c.created_at
            """
    )

    /// The client `clientID` names with its credentials live at `now`; nil when there is none.
    static func client(_ clientID: String, at now: Date, on connection: PostgresConnection) throws -> ClientRecord? {
        let records = try connection.query(clientLookup, [clientID, String(now.timeIntervalSince1970)]).records
        guard let first = records.first, let status = first["status"].flatMap(Agent.Status.init(rawValue:)) else { return nil }
        let credentials: [ClientRecord.Credential] = records.compactMap { record in
            guard let id = record["credential_id"] else { return nil }
            let digest = record["digest"].flatMap(Data.init(hex:))
            // Stored keys were validated when registered; one that no longer reads is skipped.
            let keys = record["jwks"].flatMap { try? PublicJWKSet(json: $0) }
            guard digest != nil || keys != nil else { return nil }
            return ClientRecord.Credential(
                id: id,
                digest: digest,
                keys: keys,
                expiresAt: record["expires_at"].flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
            )
        }
        let agentID = try first.required("agent_id")
        var client = ClientRecord(
            agentID: agentID,
            clientID: clientID,
            owner: try first.required("owner"),
            status: status,
            scopes: AgentStore.scopes(fromJSON: first["scopes"] ?? "[]"),
            credentials: credentials,
            tokenGeneration: try first.int("token_generation"),
            rateLimitSubject: RateLimitSubject(.agent, agentID)
        )
        client.resources = AgentStore.scopes(fromJSON: first["resources"] ?? "[]")
        client.dpopBound = first["dpop_bound"] == "t"
        client.authMethod = first["auth_method"].flatMap(Agent.AuthMethod.init(rawValue:)) ?? .clientSecret
        return client
    }

    /// Marks credentials `ids` used now (`LastUsedRecorder`'s batched write).
    static func recordUse(of ids: some Collection<String>, on connection: PostgresConnection) throws {
        let list = "{" + ids.sorted().joined(separator: ",") + "}"
        try connection.query("UPDATE agent_credentials SET last_used_at = now() WHERE id = ANY($1::uuid[])", [list])
    }

    /// The columns of a credential view; `nowParameter` is the statement's parameter holding the
    /// clock's time in epoch seconds.
    static func columns(nowParameter: Int) -> String {
        """
        id::text AS id, \(iso8601("created_at")) AS created_at, \(iso8601("expires_at")) AS expires_at,
        \(iso8601("revoked_at")) AS revoked_at, \(iso8601("last_used_at")) AS last_used_at,
        CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
             WHEN expires_at IS NOT NULL AND expires_at <= to_timestamp($\(nowParameter)::float8) THEN 'expired'
             WHEN expires_at IS NOT NULL THEN 'expiring'
             ELSE 'active' END AS state
        """
    }

    /// Makes a new secret; the current one stays valid for `grace` (zero: revoked now); any
    /// older still-valid one ends now. `authenticatedWith`: the credential an agent rotating its
    /// own proved; it must be the newest valid one, so an agent (or whoever holds an older
    /// secret still in its grace period) never ends or shortens a credential made after it.
    ///
    /// `jwks`: the new credential is that public key set (canonical JSON), and the agent
    /// authenticates with `private_key_jwt` from now on; without it the new credential is a
    /// secret, which an agent holding keys never gets (`AgentError.keysRequired`).
    func rotate(agentID: String, grace: Duration, jwks: String? = nil, authenticatedWith: String? = nil, audit: AuditContext)
        async throws -> RotatedCredential
    {
        guard let agentID = AgentStore.normalisedID(agentID) else { throw AgentError.notFound }
        let secret = jwks == nil ? CredentialHasher.newSecret() : nil
        let digest = secret.map { hasher.digest(of: $0).hexString }
        let credentialID = UUID().uuidString.lowercased()
        let graceSeconds = String(grace.components.seconds)
        let nowSeconds = String(now().timeIntervalSince1970)
        let rotated = try await pool.transaction { connection in
            guard
                let agent = try connection.query(
                    "SELECT status, client_id, auth_method FROM agents WHERE id = $1::uuid FOR UPDATE", [agentID]
                ).records.first
            else { throw AgentError.notFound }
            guard agent["status"] != Agent.Status.deactivated.rawValue else { throw AgentError.deactivated }
            if jwks == nil, agent["auth_method"] == Agent.AuthMethod.privateKeyJWT.rawValue { throw AgentError.keysRequired }
            if jwks != nil, agent["auth_method"] != Agent.AuthMethod.privateKeyJWT.rawValue {
                try connection.query(
                    "UPDATE agents SET auth_method = 'private_key_jwt', updated_at = now() WHERE id = $1::uuid", [agentID])
            }
            let valid = try connection.query(
                """
                SELECT id::text AS id FROM agent_credentials
                WHERE agent_id = $1::uuid AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > to_timestamp($2::float8))
                ORDER BY created_at, id
                """,
                [agentID, nowSeconds]
            ).records.compactMap { $0["id"] }
            // The newest valid credential is "current"; anything older ends now.
            let current = valid.last
            if let authenticatedWith, authenticatedWith != current { throw AgentError.newerCredentialExists }
            let older = Array(valid.dropLast())
            for id in older {
                try connection.query("UPDATE agent_credentials SET revoked_at = now() WHERE id = $1::uuid", [id])
            }
            var previous: CredentialView?
            if let current {
                let sql =
                    grace == .zero
                    ? "UPDATE agent_credentials SET revoked_at = now() WHERE id = $1::uuid RETURNING \(Self.columns(nowParameter: 2))"
                    : """
                    UPDATE agent_credentials
                    SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), to_timestamp($2::float8) + make_interval(secs => $3::int))
                    WHERE id = $1::uuid RETURNING \(Self.columns(nowParameter: 2))
                    """
                let parameters: [String?] = grace == .zero ? [current, nowSeconds] : [current, nowSeconds, graceSeconds]
                previous = try connection.query(sql, parameters).records.first.map(Self.view(from:))
            }
            // `created_at` is the insert's own time, taken under the agent's lock, not the
            // transaction's start: a rotation that began first but waited for the lock is still
            // the older one, and "newest" is the order the rotations were made in.
            let created = try connection.query(
                """
                INSERT INTO agent_credentials (id, agent_id, secret_hash, jwks, created_at)
                VALUES ($1::uuid, $2::uuid, decode($3, 'hex'), $4::jsonb, clock_timestamp())
                RETURNING \(iso8601("created_at")) AS created_at
                """,
                [credentialID, agentID, digest, jwks]
            ).records.first
            try AuditLog.append(
                .credentialRotate,
                agentID: agentID,
                context: audit,
                details: [
                    "credentialId": .string(credentialID),
                    "previousId": current.map(JSONValue.string) ?? .null,
                    "graceSeconds": .number(Double(grace.components.seconds)),
                    "endedNow": .array(older.map(JSONValue.string)),
                    "kind": .string(jwks == nil ? "client_secret" : "jwks"),
                ],
                on: connection
            )
            return RotatedCredential(
                id: credentialID,
                clientID: try agent.required("client_id"),
                clientSecret: secret,
                createdAt: try created?.required("created_at") ?? "",
                previous: previous,
                endedNow: older
            )
        }
        changed(rotated.clientID)
        return rotated
    }

    /// Every credential of the agent, newest first, with its state; nil when there is no agent.
    func list(agentID: String) async throws -> [CredentialView]? {
        guard let agentID = AgentStore.normalisedID(agentID) else { return nil }
        return try await pool.withConnection { connection in
            guard try connection.query("SELECT 1 FROM agents WHERE id = $1::uuid", [agentID]).rows.count == 1 else { return nil }
            return try connection.query(
                "SELECT \(Self.columns(nowParameter: 2)) FROM agent_credentials WHERE agent_id = $1::uuid ORDER BY created_at DESC, id",
                [agentID, String(now().timeIntervalSince1970)]
            ).records.map(Self.view(from:))
        }
    }

    /// Revokes one credential now. Returns the agent's client id, or nil when the agent has no
    /// such credential. Revoking twice is not an error.
    func revoke(agentID: String, credentialID: String, audit: AuditContext) async throws -> String? {
        guard let agentID = AgentStore.normalisedID(agentID), let credentialID = AgentStore.normalisedID(credentialID) else { return nil }
        let clientID: String? = try await pool.transaction { connection in
            guard let agent = try connection.query("SELECT client_id FROM agents WHERE id = $1::uuid FOR UPDATE", [agentID]).records.first
            else { return nil }
            let rows = try connection.query(
                "SELECT revoked_at IS NULL AS live FROM agent_credentials WHERE id = $1::uuid AND agent_id = $2::uuid",
                [credentialID, agentID]
            ).records
            guard let row = rows.first else { return nil }
            if try row.bool("live") {
                try connection.query("UPDATE agent_credentials SET revoked_at = now() WHERE id = $1::uuid", [credentialID])
                try AuditLog.append(
                    .credentialRevoke, agentID: agentID, context: audit, details: ["credentialId": .string(credentialID)], on: connection)
            }
            return try agent.required("client_id")
        }
        if let clientID { changed(clientID) }
        return clientID
    }

    static func view(from record: Record) throws -> CredentialView {
        CredentialView(
            id: try record.required("id"),
            state: CredentialView.State(rawValue: try record.required("state")) ?? .revoked,
            createdAt: try record.required("created_at"),
            expiresAt: record["expires_at"],
            revokedAt: record["revoked_at"],
            lastUsedAt: record["last_used_at"]
        )
    }
}
