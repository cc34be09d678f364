import Hummingbird

/// What can go wrong with an agent request, beyond input validation.
public enum AgentError: Error, Equatable, SignetErrorConvertible {
    case notFound
    case duplicateName(owner: String, name: String)
    case deactivated
    case invalidCursor
    /// An agent rotating with a credential older than its newest valid one (an operator rotated
    /// since): the newer credential wins, and only it may rotate.
    case newerCredentialExists
    /// A rotation without a key set for an agent that authenticates with keys: it never gets a
    /// secret.
    case keysRequired
    /// Another agent already has this federated identity.
    case duplicateFederatedSubject

    public var signetError: SignetError {
        switch self {
        case .notFound: .notFound("no agent with that id")
        case .duplicateName(let owner, let name): .conflict("owner \"\(owner)\" already has an agent named \"\(name)\"")
        case .deactivated: .conflict("the agent is deactivated and cannot be changed")
        case .invalidCursor: .badRequest("cursor is not a cursor this API returned")
        case .keysRequired:
            .badRequest("this agent authenticates with private_key_jwt: a rotation gives its new public key set (jwks)")
        case .duplicateFederatedSubject: .conflict("another agent already has this federated_subject (issuer and subject)")
        case .newerCredentialExists:
            .conflict("a newer credential of this agent exists: only it may rotate (an operator's rotation is not undone by an agent)")
        }
    }
}
