import Foundation
import Hummingbird
import Spec

/// The actor and request of an audited change.
public struct AuditContext: Sendable {
    public let actor: String
    public let requestID: String?

    public init(actor: String, requestID: String?) {
        self.actor = actor
        self.requestID = requestID
    }
}

/// The append-only `audit_events` table (a trigger refuses UPDATE and DELETE). Events are
/// written in the same transaction as the change they record, so neither exists without the other.
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
    }

    static func append(
        _ action: Action,
        agentID: String?,
        context: AuditContext,
        details: [String: JSONValue] = [:],
        on connection: PostgresConnection
    ) throws {
        try connection.query(
            "INSERT INTO audit_events (action, actor, agent_id, request_id, details) VALUES ($1, $2, $3::uuid, $4, $5::jsonb)",
            [action.rawValue, context.actor, agentID, context.requestID, JSONValue.object(details).jsonText]
        )
    }

    struct Event: Encodable {
        let id: String
        let occurredAt: String
        let action: String
        let actor: String
        let agentId: String?
        let requestId: String?
        let details: JSONValue
    }

    /// Events in order, after event id `after`, optionally of one agent.
    static func page(agentID: String?, after: Int64, limit: Int, pool: ConnectionPool) async throws -> Page<Event> {
        let records = try await pool.withConnection { connection in
            try connection.query(
                """
                SELECT id, \(iso8601("occurred_at")) AS occurred_at, action, actor, agent_id::text AS agent_id, request_id,
                       details::text AS details
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
    /// The audit context of this request.
    var audit: AuditContext {
        AuditContext(actor: principal?.description ?? "anonymous", requestID: id)
    }
}
