import Hummingbird
import Logging
import Spec

/// The admin registry API under `/v1/agents`. The group it is added to must already require the
/// admin token.
struct AgentRoutes {
    let store: AgentStore

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get("{id}", use: show)
        group.patch("{id}", use: update)
        group.delete("{id}", use: delete)
    }

    @Sendable func create(_ request: Request, context: SignetRequestContext) async throws -> Response {
        var request = request
        let input = try NewAgent(try await request.jsonObject(context: context))
        let registered = try await store.register(input, audit: context.audit)
        context.logger.info(
            "agent registered", metadata: ["agent.id": "\(registered.agent.id)", "agent.owner": "\(registered.agent.owner)"])
        return try jsonResponse(
            registered,
            status: .created,
            headers: [.location: "/v1/agents/\(registered.agent.id)", .cacheControl: "no-store"]
        )
    }

    @Sendable func list(_ request: Request, context: SignetRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let limit = try Page<Agent>.limit(request)
        var status: Agent.Status?
        if let text = query["status"] {
            guard let value = Agent.Status(rawValue: String(text)) else {
                throw SignetError.badRequest("status must be one of: active, suspended, deactivated")
            }
            status = value
        }
        let page = try await store.list(
            limit: limit,
            cursor: query["cursor"].map(String.init),
            // Validated like the owner of a registration: nothing stored can match anything else.
            owner: try query["owner"].map { owner throws(SignetError) in try AgentValidation.label("owner", .string(String(owner))) },
            status: status
        )
        return try jsonResponse(page)
    }

    @Sendable func show(_ request: Request, context: SignetRequestContext) async throws -> Response {
        guard let agent = try await store.agent(id: try context.parameters.require("id")) else { throw AgentError.notFound }
        return try jsonResponse(agent)
    }

    @Sendable func update(_ request: Request, context: SignetRequestContext) async throws -> Response {
        var request = request
        let id = try context.parameters.require("id")
        let patch = try AgentPatch(try await request.jsonObject(context: context))
        let agent = try await store.update(id: id, patch, audit: context.audit)
        context.logger.info("agent updated", metadata: ["agent.id": "\(agent.id)", "agent.status": "\(agent.status.rawValue)"])
        return try jsonResponse(agent)
    }

    @Sendable func delete(_ request: Request, context: SignetRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard try await store.deactivate(id: id, audit: context.audit) != nil else { throw AgentError.notFound }
        context.logger.info("agent deactivated", metadata: ["agent.id": "\(id)"])
        return Response(status: .noContent)
    }
}
