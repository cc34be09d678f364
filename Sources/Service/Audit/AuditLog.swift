import Foundation
import Hummingbird
import Spec

/// Who made an audited change, from where and in which request: the principal, the address the
/// request came from (`TRUSTED_PROXIES` applied), the credential a client authenticated with, the
/// server's request id, and the client's own `X-Request-Id` (kept apart: a client may send any).
public struct AuditContext: Sendable {
    public let actor: String
    public let requestID: String?
    public var sourceAddress: String?
    public var credentialID: String?
    public var clientRequestID: String?
    /// The source address as the limiter counts it (an IPv6 address as its /64): what aggregated
    /// denials are keyed on, so a client cannot make a row per attempt by changing addresses in its
    /// own /64.
    public var countedAddress: String?

    public init(
        actor: String, requestID: String?, sourceAddress: String? = nil, credentialID: String? = nil, clientRequestID: String? = nil
    ) {
        self.actor = actor
        self.requestID = requestID
        self.sourceAddress = sourceAddress
        self.credentialID = credentialID
        self.clientRequestID = clientRequestID
    }
}

/// The append-only `audit_events` table (a trigger refuses UPDATE and DELETE). Events are
/// written in the same transaction as the change they record, so neither exists without the other.
/// Refused token requests are the one exception to "a row per event": they are counted, one row
/// per agent, source address and minute (`count`), so a flood of wrong secrets is a number, not
/// a table growing by the request.
public enum AuditLog {
    public enum Action: String, Sendable {
        case agentRegister = "agent.register"
        case agentUpdate = "agent.update"
        case agentDeactivate = "agent.deactivate"
        case credentialRotate = "credential.rotate"
        case credentialRevoke = "credential.revoke"
        case keyRotate = "key.rotate"
        case tokenDenied = "token.denied"
        case tokenRevoke = "token.revoke"
        case tokenExchange = "token.exchange"
        case trustedIssuerAdd = "trusted_issuer.add"
        case trustedIssuerRemove = "trusted_issuer.remove"
    }

    static func append(
        _ action: Action,
        agentID: String?,
        context: AuditContext,
        details: [String: JSONValue] = [:],
        on connection: PostgresConnection
    ) throws {
        try connection.query(
            """
            INSERT INTO audit_events (action, actor, agent_id, request_id, details, source_address, credential_id, client_request_id)
            VALUES ($1, $2, $3::uuid, $4, $5::jsonb, $6, $7::uuid, $8)
            """,
            [
                action.rawValue, context.actor, agentID, context.requestID, JSONValue.object(details).jsonText, context.sourceAddress,
                context.credentialID, context.clientRequestID,
            ]
        )
    }

    /// Counts a refused request of a known agent: the first of its agent, address (as the limiter
    /// counts it), minute (`bucket`, epoch minutes) and reason is a row, the rest add to its
    /// `count`. The row keeps the first request's ids. A row's count may still grow during its
    /// minute: read a bucket as final once its minute is over.
    static func countDenial(
        agentID: String, reason: String, context: AuditContext, bucket: Int64, on connection: PostgresConnection
    ) throws {
        try connection.query(
            """
            INSERT INTO audit_events (action, actor, agent_id, request_id, details, source_address, client_request_id, bucket)
            VALUES ('token.denied', $1, $2::uuid, $3, $4::jsonb, $5, $6, $7::bigint)
            ON CONFLICT (agent_id, source_address, bucket, (details->>'reason')) WHERE action = 'token.denied' AND bucket IS NOT NULL
            DO UPDATE SET count = audit_events.count + 1
            """,
            [
                context.actor, agentID, context.requestID, JSONValue.object(["reason": .string(reason)]).jsonText,
                context.countedAddress ?? context.sourceAddress ?? "unknown", context.clientRequestID, String(bucket),
            ]
        )
    }

    struct Event: Encodable {
        let id: String
        let occurredAt: String
        let action: String
        let actor: String
        let agentId: String?
        let requestId: String?
        let clientRequestId: String?
        let sourceAddress: String?
        let credentialId: String?
        /// How many events the row stands for: more than 1 only for aggregated `token.denied`.
        let count: Int
        let details: JSONValue
    }

    /// Events in order, after event id `after`, optionally of one agent.
    static func page(agentID: String?, after: Int64, limit: Int, pool: ConnectionPool) async throws -> Page<Event> {
        let records = try await pool.withConnection { connection in
            try connection.query(
                """
                SELECT id, \(iso8601("occurred_at")) AS occurred_at, action, actor, agent_id::text AS agent_id, request_id,
                       client_request_id, source_address, credential_id::text AS credential_id, count, details::text AS details
                FROM audit_events WHERE id > $1 AND ($2::uuid IS NULL OR agent_id = $2::uuid)
                ORDER BY id LIMIT $3
                """,
                [String(after), agentID, String(limit + 1)]
            ).records
        }
        let events = try records.prefix(limit).map { record in
            Event(
                id: try record.required("id"),
                occurredAt: try record.required("occurred_at"),
                action: try record.required("action"),
                actor: try record.required("actor"),
                agentId: record["agent_id"],
                requestId: record["request_id"],
                clientRequestId: record["client_request_id"],
                sourceAddress: record["source_address"],
                credentialId: record["credential_id"],
                count: record["count"].flatMap(Int.init) ?? 1,
                details: JSONValue.parse(Data((record["details"] ?? "{}").utf8)) ?? .object([:])
            )
        }
        return Page(items: events, nextCursor: records.count > limit ? events.last?.id : nil)
    }
}

/// `GET /v1/audit?agentId=&after=&limit=` (admin).
struct AuditRoutes {
    let pool: ConnectionPool

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.get { request, _ in
            let query = request.uri.queryParameters
            var agentID: String?
            if let text = query["agentId"] {
                guard let id = AgentStore.normalisedID(String(text)) else { throw SignetError.badRequest("agentId must be an agent id") }
                agentID = id
            }
            var after: Int64 = 0
            if let text = query["after"] {
                guard let value = Int64(text), value >= 0 else {
                    throw SignetError.badRequest("after must be an event id (a whole number)")
                }
                after = value
            }
            let limit = try Page<AuditLog.Event>.limit(request)
            return try jsonResponse(try await AuditLog.page(agentID: agentID, after: after, limit: limit, pool: pool))
        }
    }
}

extension SignetRequestContext {
    /// The audit context of this request: its principal, the credential it authenticated with,
    /// its source address and both request ids.
    var audit: AuditContext { audit(actor: principal?.description ?? "anonymous") }

    /// The same, for an actor the request claimed but did not prove (a refused client).
    func audit(actor: String) -> AuditContext {
        var context = AuditContext(
            actor: actor, requestID: id, sourceAddress: clientAddress, credentialID: principal?.credentialID,
            clientRequestID: clientRequestID)
        context.countedAddress = limiterAddress
        return context
    }
}
