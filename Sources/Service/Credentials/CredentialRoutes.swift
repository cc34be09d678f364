import Foundation
import Hummingbird
import Spec

/// `/v1/agents/{id}/credentials`: rotate (admin, or the agent itself by its client credentials
/// when registered with `credentials:rotate`), list and revoke (admin).
struct CredentialRoutes {
    let store: CredentialStore

    /// Routes under `/v1/agents/{id}/credentials` that need the admin token.
    func addAdminRoutes(to group: RouterGroup<SignetRequestContext>) {
        group.get { _, context in
            guard let items = try await store.list(agentID: try context.parameters.require("id")) else { throw AgentError.notFound }
            return try jsonResponse(["items": items])
        }
        group.delete("{cid}") { _, context in
            let agentID = try context.parameters.require("id")
            guard
                try await store.revoke(agentID: agentID, credentialID: try context.parameters.require("cid"), audit: context.audit)
                    != nil
            else { throw SignetError.notFound("no such credential for this agent") }
            return Response(status: .noContent)
        }
    }

    /// `POST .../rotate` `{graceSeconds?}` (JSON), or a form with `graceSeconds` beside the
    /// client's `client_id` and `client_secret`; the group's guard (`RequireAdminOrOwnClient`)
    /// admits the admin or the agent's own client credentials. An agent rotates only with its
    /// newest credential (`CredentialStore.rotate`).
    func addRotateRoute(to group: RouterGroup<SignetRequestContext>) {
        group.post { request, context in
            let agentID = try context.parameters.require("id")
            let rotation: RotationRequest
            if let formError = context.formError {
                throw SignetError.badRequest(formError.description)
            } else if let form = context.form {
                rotation = try RotationRequest(form: form)
            } else {
                var request = request
                rotation = try RotationRequest(await request.optionalJSONObject(context: context))
            }
            let grace = rotation.graceSeconds
            let rotated = try await store.rotate(
                agentID: agentID, grace: .seconds(grace), jwks: rotation.jwks, authenticatedWith: context.principal?.credentialID,
                audit: context.audit)
            context.logger.info(
                "credential rotated",
                metadata: [
                    "agent.id": "\(agentID)", "credential.id": "\(rotated.id)", "graceSeconds": "\(grace)",
                    "principal": "\(context.principal?.description ?? "-")",
                ])
            return try jsonResponse(rotated, status: .created, headers: [.cacheControl: "no-store"])
        }
    }
}

/// A validated `POST .../rotate` body: `{graceSeconds?, jwks?}`, or none.
package struct RotationRequest: Equatable {
    /// The longest grace period a rotation may ask for: 30 days.
    package static let maxGraceSeconds = 30 * 86_400

    package var graceSeconds = Defaults.credentialRotationGraceSeconds
    /// The new credential's public key set (canonical JSON); nil: a new secret.
    package var jwks: String?

    /// From a form body: `graceSeconds` and `jwks` (its JSON text) beside the client's
    /// credentials or assertion.
    init(form: OAuthForm) throws(SignetError) {
        try AgentValidation.rejectUnknown(
            form.fields.mapValues { JSONValue.string($0) },
            allowed: ["graceSeconds", "jwks", "client_id", "client_secret", "client_assertion", "client_assertion_type"])
        // The client's authentication is read before this; what it named must still be what the
        // contract says, whoever is authenticated (the admin's form included).
        if let type = form["client_assertion_type"], type != ClientAssertion.type {
            throw SignetError.badRequest("client_assertion_type must be \(ClientAssertion.type)")
        }
        if let text = form["jwks"] {
            guard let value = JSONValue.parse(Data(text.utf8)) else { throw SignetError.badRequest("jwks must be a JSON object") }
            jwks = try AgentValidation.jwks(value)
        }
        guard let text = form["graceSeconds"] else { return }
        guard let value = Int(text), (0...Self.maxGraceSeconds).contains(value) else {
            throw SignetError.badRequest("graceSeconds must be a whole number from 0 to \(Self.maxGraceSeconds)")
        }
        graceSeconds = value
    }

    package init(_ body: [String: JSONValue]?) throws(SignetError) {
        guard let body else { return }
        try AgentValidation.rejectUnknown(body, allowed: ["graceSeconds", "jwks"])
        jwks = try body["jwks"].map { value throws(SignetError) in try AgentValidation.jwks(value) }
        if let value = body["graceSeconds"] {
            guard case .number(let number) = value, number.rounded() == number, (0...Double(Self.maxGraceSeconds)).contains(number) else {
                throw SignetError.badRequest("graceSeconds must be a whole number from 0 to \(Self.maxGraceSeconds)")
            }
            graceSeconds = Int(number)
        }
    }
}
