/// What a policy decides on: the agent asking for a token.
public struct PolicySubject: Sendable, Equatable {
    public let agentID: String
    public let owner: String
    public let status: Agent.Status
    public let scopes: [String]
    /// The address the token request came from, for policies that decide on it (`client_ip`).
    public var clientAddress: String? = nil
    /// The resources (RFC 8707) the token is asked for; empty: the default audience. A policy
    /// may narrow the scopes per resource (`requested_resources` in OPA's input).
    public var resources: [String] = []
    /// A token exchange: whom the token is for (`sub`) and the actors acting for it, the one acting
    /// now first (`token_exchange` in OPA's input); nil for the other grants.
    public var exchange: Exchange? = nil

    public struct Exchange: Sendable, Equatable {
        public var subject: String
        public var actors: [String]
    }
}

/// Decides which scopes an agent receives. The built-in policy is used unless OPA is
/// configured; an OPA policy must make the same decisions as `fixtures/opa/signet.rego`.
public protocol TokenPolicy: Sendable {
    /// The granted scopes: a subset of `requested` (or of the agent's scopes when `requested` is
    /// empty). Throws when no decision can be had (fail closed).
    func grantedScopes(for subject: PolicySubject, requested: [String]) async throws -> [String]
}

/// Requested ∩ registered; all registered when none is requested; nothing for an inactive agent.
public struct BuiltInPolicy: TokenPolicy {
    public init() {}

    public func grantedScopes(for subject: PolicySubject, requested: [String]) async throws -> [String] {
        guard subject.status == .active else { return [] }
        return requested.isEmpty ? subject.scopes : requested.filter(subject.scopes.contains)
    }
}
