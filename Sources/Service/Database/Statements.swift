/// A statement prepared once per connection under a fixed name (`PQprepare`), then executed by
/// name (`PQexecPrepared`): the server parses and plans it once per session instead of once per
/// call. `PostgresConnection.query(_:_:)` prepares it on first use on each connection, so a new
/// connection after a reconnect prepares it again.
public struct PreparedStatement: Sendable, Hashable {
    /// The server-side name; unique among `Statements.all`.
    public let name: String
    public let sql: String
}

/// Every prepared statement, named in this one place: the statements of the hot paths (the
/// token path's client lookup, the liveness check of introspection and bearer tokens, the admin
/// agent read, token revocation).
public enum Statements {
    /// One client by `client_id` ($1) with its credentials live at $2 (epoch seconds): one row per
    /// credential, or one row with NULL credential columns when it has none.
    public static let clientLookup = PreparedStatement(
        name: "signet_client_lookup",
        sql: """
            SELECT a.id::text AS agent_id, a.owner, a.status, a.scopes::text AS scopes,
                   a.token_generation,
                   c.id::text AS credential_id, encode(c.secret_hash, 'hex') AS digest,
                   extract(epoch FROM c.expires_at)::float8 AS expires_at
            FROM agents a LEFT JOIN agent_credentials c
              ON c.agent_id = a.id AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($2::float8))
            WHERE a.client_id = $1
            ORDER BY c.created_at
            """
    )

    /// The state a token's claims depend on: jti $1 revoked, agent $2 with client $3, credential
    /// $4 (NULL: not bound to one) live at $5 (epoch seconds).
    public static let tokenState = PreparedStatement(
        name: "signet_token_state",
        sql: """
            SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked,
                   a.status, a.scopes::text AS scopes, a.token_generation,
                   ($4::uuid IS NULL OR EXISTS (
                       SELECT 1 FROM agent_credentials c
                       WHERE c.id = $4::uuid AND c.agent_id = a.id AND c.revoked_at IS NULL
                         AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($5::float8)))) AS credential_live
            FROM agents a WHERE a.id = $2::uuid AND a.client_id = $3
            """
    )

    /// One agent by id ($1), whatever its status.
    public static let agentByID = PreparedStatement(
        name: "signet_agent_by_id",
        sql: "SELECT \(AgentStore.agentColumns) FROM agents a WHERE a.id = $1::uuid"
    )

    /// Records a revoked token: jti $1 until $2 (epoch seconds).
    public static let revokeToken = PreparedStatement(
        name: "signet_revoke_token",
        sql: "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2::bigint)) ON CONFLICT (jti) DO NOTHING"
    )

    public static let all: [PreparedStatement] = [clientLookup, tokenState, agentByID, revokeToken]
}
