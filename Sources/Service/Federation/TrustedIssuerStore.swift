import Foundation

/// Trusted issuers in PostgreSQL (`trusted_issuers`), each change with its audit row in one
/// transaction.
struct TrustedIssuerStore: Sendable {
    let pool: ConnectionPool
    /// Told after every committed change: this instance reads the issuers again at once.
    var changed: @Sendable () -> Void = {}

    static let columns = """
        id::text AS id, issuer, jwks_uri, jwks::text AS jwks, audience, \(iso8601("created_at")) AS created_at
        """

    func create(_ input: NewTrustedIssuer, audit: AuditContext) async throws -> TrustedIssuer {
        let id = UUID().uuidString.lowercased()
        do {
            let created = try await pool.transaction { connection -> TrustedIssuer? in
                let rows = try connection.query(
                    """
                    INSERT INTO trusted_issuers (id, issuer, jwks_uri, jwks, audience)
                    SELECT $1::uuid, $2, $3, $4::jsonb, $5 WHERE (SELECT count(*) FROM trusted_issuers) < $6::int
                    RETURNING \(Self.columns)
                    """,
                    [id, input.issuer, input.jwksURI, input.jwks, input.audience, String(NewTrustedIssuer.maxIssuers)]
                ).records
                guard let row = rows.first else { return nil }
                let issuer = try Self.issuer(from: row)
                try AuditLog.append(
                    .trustedIssuerAdd, agentID: nil, context: audit,
                    details: ["id": .string(issuer.id), "issuer": .string(issuer.issuer), "audience": .string(issuer.audience)],
                    on: connection)
                return issuer
            }
            guard let created else {
                throw SignetError.conflict("Signet trusts at most \(NewTrustedIssuer.maxIssuers) issuers; remove one first")
            }
            changed()
            return created
        } catch let error as DatabaseError where error.isUniqueViolation {
            throw SignetError.conflict("issuer \(input.issuer.prefix(128)) is already trusted")
        }
    }

    /// Every trusted issuer, oldest first (at most `NewTrustedIssuer.maxIssuers`).
    func all() async throws -> [TrustedIssuer] {
        try await pool.withConnection { connection in
            try connection.query("SELECT \(Self.columns) FROM trusted_issuers ORDER BY created_at, id").records.map(Self.issuer(from:))
        }
    }

    /// Removes one, and ends the tokens of the agents it vouched for (their generation moves on);
    /// false when there is none with that id.
    func delete(id: String, audit: AuditContext) async throws -> Bool {
        guard let id = AgentStore.normalisedID(id) else { return false }
        let removed = try await pool.transaction { connection in
            let rows = try connection.query("DELETE FROM trusted_issuers WHERE id = $1::uuid RETURNING issuer", [id]).records
            guard let issuer = rows.first?["issuer"] else { return false }
            // Its agents' tokens end with it.
            try connection.query(
                "UPDATE agents SET token_generation = token_generation + 1, updated_at = now() WHERE federated_issuer = $1", [issuer])
            try AuditLog.append(
                .trustedIssuerRemove, agentID: nil, context: audit, details: ["id": .string(id), "issuer": .string(issuer)],
                on: connection)
            return true
        }
        if removed { changed() }
        return removed
    }

    static func issuer(from record: Record) throws -> TrustedIssuer {
        TrustedIssuer(
            id: try record.required("id"), issuer: try record.required("issuer"), jwksURI: record["jwks_uri"], jwks: record["jwks"],
            audience: try record.required("audience"), createdAt: try record.required("created_at"))
    }
}
