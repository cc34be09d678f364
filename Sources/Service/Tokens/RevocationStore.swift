import Foundation
import Spec

/// Revoked tokens (`revoked_tokens`) and what a token's claims depend on as it stands now: the
/// statements of introspection, bearer checks and revocation, and the housekeeping sweep.
public enum RevocationStore {
    /// The state a token's claims depend on: jti $1 revoked, agent $2 with client $3, credential
    /// $4 (NULL: not bound to one) live at $5 (epoch seconds). Prepared per connection.
    public static let tokenState = PreparedStatement(name: "signet_token_state", sql: stateSQL(derived: false))

    /// `tokenState` for a token made by exchange, and how many of the tokens it came from ($6, a
    /// JSON array of `TokenLink`s) are dead (revoked, their agent gone, not active or at another
    /// generation, or their credential revoked or expired) plus how many of its delegations ($7,
    /// `{grantor, grantee}`) the grantor no longer consents to (`may_act`).
    public static let derivedTokenState = PreparedStatement(name: "signet_derived_token_state", sql: stateSQL(derived: true))

    static func stateSQL(derived: Bool) -> String {
        // $6: the parents' links; $7: each delegation's consent, the grantor's may_act naming the grantee.
        let parents =
            derived
            ? """
            ,
                   (SELECT count(*) FROM jsonb_to_recordset($6::jsonb) AS l(jti text, agent uuid, credential_id uuid, generation int)
                    LEFT JOIN agents p ON p.id = l.agent
                    WHERE p.id IS NULL OR p.status <> 'active' OR p.token_generation <> l.generation
                       OR EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = l.jti)
                       OR (l.credential_id IS NOT NULL AND NOT EXISTS (
                           SELECT 1 FROM agent_credentials c
                           WHERE c.id = l.credential_id AND c.agent_id = p.id AND c.revoked_at IS NULL
                             AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($5::float8)))))
                   + (SELECT count(*) FROM jsonb_to_recordset($7::jsonb) AS d(grantor uuid, grantee text)
                      WHERE NOT EXISTS (SELECT 1 FROM agents g WHERE g.id = d.grantor AND g.may_act @> jsonb_build_array(d.grantee)))
                   AS dead_parents
            """ : ""
        return """
            SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked,
                   a.status, a.scopes::text AS scopes, a.token_generation, a.resources::text AS resources, a.owner,
                   a.may_act::text AS may_act,
                   ($4::uuid IS NULL OR EXISTS (
                       SELECT 1 FROM agent_credentials c
                       WHERE c.id = $4::uuid AND c.agent_id = a.id AND c.revoked_at IS NULL
                         AND (c.expires_at IS NULL OR c.expires_at > to_timestamp($5::float8)))) AS credential_live\(parents)
            FROM agents a WHERE a.id = $2::uuid AND a.client_id = $3
            """
    }

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
        var owner = ""
        /// The agents it lets act for it.
        var mayAct: [String] = []
        /// For a token made by exchange: how many of the tokens it came from are dead.
        var deadParents = 0
    }

    /// The state of the token with these claims at `now`, as its holder's agent (`holder`: the
    /// subject, or a delegated token's current actor) stands; nil when that agent and the token's
    /// client no longer match (the agent is gone, or its client id is not the token's).
    static func state(of claims: AccessTokenClaims, at now: Date, on connection: PostgresConnection) throws -> TokenState? {
        var parameters = [claims.jti, claims.holder, claims.client_id, claims.credential_id, String(now.timeIntervalSince1970)]
        let statement: PreparedStatement
        if let parents = claims.parents {
            statement = derivedTokenState
            parameters.append(Self.json(parents))
            parameters.append(Self.json(claims.consents))
        } else {
            statement = tokenState
        }
        guard let row = try connection.query(statement, parameters).records.first else { return nil }
        return TokenState(
            revoked: try row.bool("revoked"),
            status: row["status"].flatMap(Agent.Status.init(rawValue:)),
            scopes: AgentStore.scopes(fromJSON: try row.required("scopes")),
            tokenGeneration: try row.int("token_generation"),
            credentialLive: try row.bool("credential_live"),
            resources: AgentStore.scopes(fromJSON: row["resources"] ?? "[]"),
            owner: row["owner"] ?? "",
            mayAct: AgentStore.scopes(fromJSON: row["may_act"] ?? "[]"),
            deadParents: row["dead_parents"].flatMap(Int.init) ?? 0
        )
    }

    /// The links as `jsonb_to_recordset` reads them, written directly (no `JSONEncoder` per check).
    static func json(_ links: [TokenLink]) -> String {
        String(
            decoding: JSONObjectWriter.array(
                links.map { link in
                    var object = JSONObjectWriter(capacity: 128)
                    object.field("jti", link.jti)
                    object.field("agent", link.agent)
                    if let credentialID = link.credential_id { object.field("credential_id", credentialID) }
                    object.field("generation", Int64(link.generation))
                    return object.finish()
                }), as: UTF8.self)
    }

    static func json(_ consents: [AccessTokenClaims.Consent]) -> String {
        String(
            decoding: JSONObjectWriter.array(
                consents.map { consent in
                    var object = JSONObjectWriter(capacity: 96)
                    object.field("grantor", consent.grantor)
                    object.field("grantee", consent.grantee)
                    return object.finish()
                }), as: UTF8.self)
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
