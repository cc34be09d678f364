import Foundation
import Spec

/// Revoked tokens (`revoked_tokens`) and what a token's claims depend on as it stands now: the
/// statements of introspection, bearer checks and revocation, and the housekeeping sweep.
public enum RevocationStore {
    /// The state a token's claims depend on: jti $1 revoked, agent $2 with client $3, credential
    /// $4 (NULL: not bound to one) live at $5 (epoch seconds). Prepared per connection.
    public static let tokenState = PreparedStatement(
        name: "signet_token_state",
        sql: """
            SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked,
                   a.status, a.scopes::text AS scopes, a.token_generation, a.resources::text AS resources,
                   ($4::uuid IS NULL OR EXISTS (
                       SELECT 1 FROM agent_credentials c
                       WHERE c.id = $4::uuid AND c.agent_id = a.id AND c.revoked_at IS NULL
                         AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($5::float8)))) AS credential_live
            FROM agents a WHERE a.id = $2::uuid AND a.client_id = $3
            """
    )

    /// Records a revoked token: jti $1 until $2 (epoch seconds). Prepared per connection.
    public static let revokeToken = PreparedStatement(
        name: "signet_revoke_token",
        sql: "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2::bigint)) ON CONFLICT (jti) DO NOTHING"
    )

    /// A token's state as `tokenState` reads it.
    struct TokenState: Equatable {
        let revoked: Bool
        /// Nil: a status this version does not know (never active).
        let status: Agent.Status?
        let scopes: [String]
        let tokenGeneration: Int
        let credentialLive: Bool
        /// The resources the agent may have tokens for now.
        var resources: [String] = []
    }

    /// The state of the token with these claims at `now`; nil when its agent and client no longer
    /// match (the agent is gone, or its client id is not the token's).
    static func state(of claims: AccessTokenClaims, at now: Date, on connection: PostgresConnection) throws -> TokenState? {
        let parameters = [claims.jti, claims.sub, claims.client_id, claims.credential_id, String(now.timeIntervalSince1970)]
        guard let row = try connection.query(tokenState, parameters).records.first else { return nil }
        return TokenState(
            revoked: try row.bool("revoked"),
            status: row["status"].flatMap(Agent.Status.init(rawValue:)),
            scopes: AgentStore.scopes(fromJSON: try row.required("scopes")),
            tokenGeneration: try row.int("token_generation"),
            credentialLive: try row.bool("credential_live"),
            resources: AgentStore.scopes(fromJSON: row["resources"] ?? "[]")
        )
    }

    /// Records token `jti` as revoked until `expires` (epoch seconds); false when it already was.
    static func revoke(jti: String, until expires: Int64, on connection: PostgresConnection) throws -> Bool {
        try connection.query(revokeToken, [jti, String(expires)]).affectedRows == 1
    }

    /// Forgets revocations of tokens expired before `cutoff` (they fail verification anyway); how
    /// many.
    static func forgetExpired(before cutoff: Date, on connection: PostgresConnection) throws -> Int {
        try connection.query(
            "DELETE FROM revoked_tokens WHERE expires_at <= to_timestamp($1::float8)", [String(cutoff.timeIntervalSince1970)]
        ).affectedRows
    }
}
