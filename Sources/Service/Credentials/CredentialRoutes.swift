import Hummingbird
import Spec

/// `/v1/agents/{id}/credentials`: rotate (admin, or the agent itself with scope
/// `credentials:rotate`), list and revoke (admin).
struct CredentialRoutes {
    let store: CredentialStore
    let directory: ClientDirectory

    /// Routes under `/v1/agents/{id}/credentials` that need the admin token.
    func addAdminRoutes(to group: RouterGroup<SignetRequestContext>) {
        group.get { _, context in
            guard let items = try await store.list(agentID: try context.parameters.require("id")) else { throw AgentError.notFound }
            return try jsonResponse(["items": items])
        }
        group.delete("{cid}") { _, context in
            let agentID = try context.parameters.require("id")
            guard
                let clientID = try await store.revoke(
                    agentID: agentID, credentialID: try context.parameters.require("cid"), audit: context.audit)
            else { throw SignetError.notFound("no such credential for this agent") }
            directory.invalidate(clientID: clientID)
            return Response(status: .noContent)
        }
    }

    /// `POST .../rotate` `{graceSeconds?}`; the group's guard (`RequireAdminOrScope`) admits the
    /// admin or a live token of the agent with `credentials:rotate`.
    func addRotateRoute(to group: RouterGroup<SignetRequestContext>) {
        group.post { request, context in
            let agentID = try context.parameters.require("id")
            if case .agent(let claims) = context.principal, AgentStore.normalisedID(claims.sub) != AgentStore.normalisedID(agentID) {
                throw SignetError(.forbidden, "forbidden", "an agent may rotate only its own credentials")
            }
            var request = request
            let grace = try RotationRequest(await request.optionalJSONObject(context: context)).graceSeconds
            let rotated = try await store.rotate(agentID: agentID, grace: .seconds(grace), audit: context.audit)
            directory.invalidate(clientID: rotated.clientID)
            context.logger.info(
                "credential rotated", metadata: ["agent.id": "\(agentID)", "credential.id": "\(rotated.id)", "graceSeconds": "\(grace)"])
            return try jsonResponse(rotated, status: .created, headers: [.cacheControl: "no-store"])
        }
    }
}

/// A validated `POST .../rotate` body: `{graceSeconds?}`, or none.
package struct RotationRequest: Equatable {
    /// The longest grace period a rotation may ask for: 30 days.
    package static let maxGraceSeconds = 30 * 86_400

    package var graceSeconds = Defaults.credentialRotationGraceSeconds

    package init(_ body: [String: JSONValue]?) throws(SignetError) {
        guard let body else { return }
        try AgentValidation.rejectUnknown(body, allowed: ["graceSeconds"])
        if let value = body["graceSeconds"] {
            guard case .number(let number) = value, number.rounded() == number, (0...Double(Self.maxGraceSeconds)).contains(number) else {
                throw SignetError.badRequest("graceSeconds must be a whole number from 0 to \(Self.maxGraceSeconds)")
            }
            graceSeconds = Int(number)
        }
    }
}
