import Foundation

/// Agents and their credentials in PostgreSQL. Every method is one pooled round of statements;
/// writes that touch two tables run in one transaction, so no request leaves a partial write.
public struct AgentStore: Sendable {
    let pool: ConnectionPool
    let hasher: CredentialHasher
    /// Told the client id of each client this store changed, once the change has committed: the
    /// instance's credential cache drops it before the answer goes out (other instances hear of it
    /// through the change listener). Routes never invalidate the cache themselves.
    var changed: @Sendable (_ clientID: String) -> Void = { _ in }

    public init(pool: ConnectionPool, hasher: CredentialHasher) {
        self.pool = pool
        self.hasher = hasher
    }

    /// The scopes of an agent row's `scopes::text` (a JSON array of strings).
    /// Read on every liveness check (scopes, resources, may_act), so by `JSONSerialization`:
    /// `JSONDecoder` through `JSONValue` cost a twentieth of a token exchange's CPU (perf, issue 30).
    static func scopes(fromJSON text: String) -> [String] {
        guard let values = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [Any] else { return [] }
        return values.compactMap { $0 as? String }
    }

    static let agentColumns = """
        a.id::text AS id, a.name, a.owner, a.scopes::text AS scopes, a.metadata::text AS metadata, a.status, a.client_id,
        \(iso8601("a.created_at")) AS created_at, \(iso8601("a.updated_at")) AS updated_at,
        a.resources::text AS resources, a.dpop_bound, a.auth_method, a.may_act::text AS may_act, a.federated_issuer,
        a.federated_subject
        """

    /// One agent by id ($1), whatever its status: the admin API's read, prepared per connection.
    public static let byID = PreparedStatement(
        name: "signet_agent_by_id",
        sql: "SELECT \(agentColumns) FROM agents a WHERE a.id = $1::uuid"
    )

    /// Registers an agent and its first credential: a new secret, returned here only, or the
    /// public key set given (then no secret, ever).
    func register(_ input: NewAgent, audit: AuditContext) async throws -> RegisteredAgent {
        let agentID = UUID().uuidString.lowercased()
        let credentialID = UUID().uuidString.lowercased()
        let secret = input.jwks == nil ? CredentialHasher.newSecret() : nil
        let digest = secret.map { hasher.digest(of: $0).hexString }
        let clientID = CredentialHasher.newClientID()
        let method: Agent.AuthMethod = input.jwks == nil ? .clientSecret : .privateKeyJWT
        do {
            return try await pool.transaction { connection in
                let agentRows = try connection.query(
                    """
                    INSERT INTO agents AS a (id, name, owner, scopes, metadata, status, client_id, resources, dpop_bound, auth_method,
                        may_act, federated_issuer, federated_subject)
                    VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, 'active', $6, $7::jsonb, $8::boolean, $9, $10::jsonb, $11, $12)
                    RETURNING \(Self.agentColumns)
                    """,
                    [
                        agentID, input.name, input.owner, JSONValue.array(input.scopes.map(JSONValue.string)).jsonText,
                        JSONValue.object(input.metadata).jsonText, clientID,
                        JSONValue.array(input.resources.map(JSONValue.string)).jsonText, input.dpopBound ? "true" : "false",
                        method.rawValue, JSONValue.array(input.mayAct.map(JSONValue.string)).jsonText, input.federatedSubject?.issuer,
                        input.federatedSubject?.subject,
                    ]
                )
                let credentialRows = try connection.query(
                    """
                    INSERT INTO agent_credentials (id, agent_id, secret_hash, jwks) VALUES ($1, $2, decode($3, 'hex'), $4::jsonb)
                    RETURNING id::text AS id, \(iso8601("created_at")) AS created_at
                    """,
                    [credentialID, agentID, digest, input.jwks]
                )
                guard let agentRow = agentRows.records.first, let credentialRow = credentialRows.records.first else {
                    throw DatabaseError.unexpectedResult("INSERT ... RETURNING returned no row")
                }
                let credential = CredentialSummary(
                    id: try credentialRow.required("id"), createdAt: try credentialRow.required("created_at"), expiresAt: nil)
                let agent = try Self.agent(from: agentRow)
                try AuditLog.append(
                    .agentRegister,
                    agentID: agent.id,
                    context: audit,
                    details: ["name": .string(agent.name), "owner": .string(agent.owner), "credentialId": .string(credential.id)],
                    on: connection
                )
                return RegisteredAgent(agent: agent, clientSecret: secret, credential: credential)
            }
        } catch let error as DatabaseError where error.isUniqueViolation {
            if error.constraint == "agents_federated_subject" { throw AgentError.duplicateFederatedSubject }
            throw AgentError.duplicateName(owner: input.owner, name: input.name)
        }
    }

    /// One page in registration order, after `cursor`.
    func list(limit: Int, cursor: String?, owner: String?, status: Agent.Status?) async throws -> Page<Agent> {
        let after = try cursor.map { cursor throws(AgentError) in try Self.decodeCursor(cursor) } ?? 0
        let records = try await pool.withConnection { connection in
            try connection.query(
                """
                SELECT a.seq, \(Self.agentColumns) FROM agents a
                WHERE a.seq > $1 AND ($2::text IS NULL OR a.owner = $2) AND ($3::text IS NULL OR a.status = $3)
                ORDER BY a.seq LIMIT $4
                """,
                [String(after), owner, status?.rawValue, String(limit + 1)]
            ).records
        }
        let page = records.prefix(limit)
        let next = records.count > limit ? page.last?["seq"].flatMap(Int64.init).map(Self.encodeCursor) : nil
        return Page<Agent>(items: try page.map(Self.agent(from:)), nextCursor: next)
    }

    /// The agent, whatever its status; nil when there is none with that id.
    func agent(id: String) async throws -> Agent? {
        guard let id = Self.normalisedID(id) else { return nil }
        let records = try await pool.withConnection { connection in
            try connection.query(Self.byID, [id]).records
        }
        return try records.first.map(Self.agent(from:))
    }

    /// Applies a patch to a live agent.
    func update(id: String, _ patch: AgentPatch, audit: AuditContext) async throws -> Agent {
        guard let id = Self.normalisedID(id) else { throw AgentError.notFound }
        let scopes = patch.scopes.map { JSONValue.array($0.map(JSONValue.string)).jsonText }
        let metadata = patch.metadata.map { JSONValue.object($0).jsonText }
        let resources = patch.resources.map { JSONValue.array($0.map(JSONValue.string)).jsonText }
        let dpopBound = patch.dpopBound.map { $0 ? "true" : "false" }
        let mayAct = patch.mayAct.map { JSONValue.array($0.map(JSONValue.string)).jsonText }
        let federated = patch.federatedSubject.map { $0 }
        let records: [Record]
        do {
            records = try await updateRecords(
                id: id,
                [
                    scopes, metadata, patch.status?.rawValue, resources, dpopBound, mayAct, federated == nil ? nil : "true",
                    federated??.issuer, federated??.subject,
                ], patch: patch, audit: audit)
        } catch let error as DatabaseError where error.isUniqueViolation && error.constraint == "agents_federated_subject" {
            throw AgentError.duplicateFederatedSubject
        }
        guard let record = records.first else { throw AgentError.notFound }
        guard record["id"] != nil else { throw AgentError.deactivated }
        let agent = try Self.agent(from: record)
        changed(agent.clientID)
        return agent
    }

    /// The patch's statement and its audit row, in one transaction: parameters $2–$10 are the
    /// new values (NULL: unchanged; $8 'true': federated_subject set to $9 and $10, NULL for none).
    private func updateRecords(id: String, _ values: [String?], patch: AgentPatch, audit: AuditContext) async throws -> [Record] {
        try await pool.transaction { connection in
            let records = try connection.query(
                """
                WITH target AS (SELECT id, status FROM agents WHERE id = $1::uuid),
                updated AS (
                    UPDATE agents AS a SET
                        scopes = COALESCE($2::jsonb, a.scopes),
                        metadata = COALESCE($3::jsonb, a.metadata),
                        status = COALESCE($4, a.status),
                        resources = COALESCE($5::jsonb, a.resources),
                        dpop_bound = COALESCE($6::boolean, a.dpop_bound),
                        may_act = COALESCE($7::jsonb, a.may_act),
                        federated_issuer = CASE WHEN $8::boolean THEN $9 ELSE a.federated_issuer END,
                        federated_subject = CASE WHEN $8::boolean THEN $10 ELSE a.federated_subject END,
                        -- Leaving active, losing a scope or a resource, coming to need DPoP or a new
                        -- federated identity ends every token issued so far.
                        token_generation = a.token_generation
                            + CASE WHEN ($4 IS NOT NULL AND $4 <> 'active' AND a.status = 'active')
                                     OR ($2::jsonb IS NOT NULL AND NOT $2::jsonb @> a.scopes)
                                     OR ($5::jsonb IS NOT NULL AND NOT $5::jsonb @> a.resources)
                                     OR ($6::boolean AND NOT a.dpop_bound)
                                     OR ($8::boolean AND (a.federated_issuer, a.federated_subject) IS DISTINCT FROM ($9, $10))
                                   THEN 1 ELSE 0 END,
                        updated_at = now()
                    FROM target WHERE a.id = target.id AND target.status <> 'deactivated'
                    RETURNING \(Self.agentColumns)
                )
                SELECT target.status AS previous_status, updated.* FROM target LEFT JOIN updated ON true
                """,
                [id] + values
            ).records
            if records.first?["id"] != nil {
                var changed: [String: JSONValue] = [:]
                if let scopes = patch.scopes { changed["scopes"] = .array(scopes.map(JSONValue.string)) }
                if patch.metadata != nil { changed["metadata"] = .string("replaced") }
                if let status = patch.status { changed["status"] = .string(status.rawValue) }
                if let resources = patch.resources { changed["resources"] = .array(resources.map(JSONValue.string)) }
                if let dpopBound = patch.dpopBound { changed["dpop_bound_access_tokens"] = .bool(dpopBound) }
                if let mayAct = patch.mayAct { changed["may_act"] = .array(mayAct.map(JSONValue.string)) }
                if let federated = patch.federatedSubject {
                    changed["federated_subject"] =
                        federated.map { .object(["issuer": .string($0.issuer), "subject": .string($0.subject)]) } ?? .null
                }
                try AuditLog.append(.agentUpdate, agentID: id, context: audit, details: changed, on: connection)
            }
            return records
        }
    }

    /// Deactivates the agent and revokes every credential it holds, in one transaction; its
    /// federated identity is freed for another agent.
    /// Returns the agent's client id, or nil when there is no such agent; deactivating twice is
    /// not an error.
    func deactivate(id: String, audit: AuditContext) async throws -> String? {
        guard let id = Self.normalisedID(id) else { return nil }
        let clientID: String? = try await pool.transaction { connection in
            let previous = try connection.query("SELECT status, client_id FROM agents WHERE id = $1::uuid FOR UPDATE", [id]).records.first
            guard let previous, let clientID = previous["client_id"] else { return nil }
            guard previous["status"] != Agent.Status.deactivated.rawValue else { return clientID }
            try connection.query(
                """
                UPDATE agents SET status = 'deactivated', deactivated_at = now(), updated_at = now(),
                    token_generation = token_generation + 1, federated_issuer = NULL, federated_subject = NULL
                WHERE id = $1::uuid
                """,
                [id]
            )
            let revoked = try connection.query(
                "UPDATE agent_credentials SET revoked_at = now() WHERE agent_id = $1::uuid AND revoked_at IS NULL",
                [id]
            ).affectedRows
            try AuditLog.append(
                .agentDeactivate,
                agentID: id,
                context: audit,
                details: ["credentialsRevoked": .number(Double(revoked))],
                on: connection
            )
            return clientID
        }
        if let clientID { changed(clientID) }
        return clientID
    }

    // MARK: Mapping

    static func agent(from record: Record) throws -> Agent {
        guard
            let scopesText = record["scopes"], case .array(let scopeValues) = JSONValue.parse(Data(scopesText.utf8)),
            let metadataText = record["metadata"], case .object(let metadata) = JSONValue.parse(Data(metadataText.utf8)),
            let status = record["status"].flatMap(Agent.Status.init(rawValue:))
        else {
            throw DatabaseError.unexpectedResult("agent row has malformed scopes, metadata or status")
        }
        return Agent(
            id: try record.required("id"),
            name: try record.required("name"),
            owner: try record.required("owner"),
            scopes: scopeValues.compactMap { if case .string(let scope) = $0 { scope } else { nil } },
            metadata: metadata,
            status: status,
            clientID: try record.required("client_id"),
            createdAt: try record.required("created_at"),
            updatedAt: try record.required("updated_at"),
            resources: scopes(fromJSON: record["resources"] ?? "[]"),
            dpopBoundAccessTokens: record["dpop_bound"] == "t",
            authMethod: record["auth_method"].flatMap(Agent.AuthMethod.init(rawValue:)) ?? .clientSecret,
            mayAct: scopes(fromJSON: record["may_act"] ?? "[]"),
            federatedSubject: record["federated_issuer"].flatMap { issuer in
                record["federated_subject"].map { Agent.FederatedSubject(issuer: issuer, subject: $0) }
            }
        )
    }

    /// A UUID in canonical lower-case form, or nil: malformed ids never reach SQL.
    static func normalisedID(_ id: String) -> String? {
        UUID(uuidString: id).map { $0.uuidString.lowercased() }
    }

    static func encodeCursor(_ sequence: Int64) -> String {
        Encoding.base64URL(Array("v1:\(sequence)".utf8))
    }

    static func decodeCursor(_ cursor: String) throws(AgentError) -> Int64 {
        guard let data = Data(base64URL: cursor), let text = String(data: data, encoding: .utf8), text.hasPrefix("v1:"),
            let value = Int64(text.dropFirst(3)), value >= 0
        else { throw .invalidCursor }
        return value
    }
}

/// An SQL expression rendering a timestamptz column as RFC 3339 UTC with microseconds.
func iso8601(_ column: String) -> String {
    "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
}
