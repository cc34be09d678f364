import Hummingbird

/// What can go wrong with an agent request, beyond input validation.
public enum AgentError: Error, Equatable, SignetErrorConvertible {
    case notFound
    case duplicateName(owner: String, name: String)
    case deactivated
    case invalidCursor

    public var signetError: SignetError {
        switch self {
        case .notFound: .notFound("no agent with that id")
        case .duplicateName(let owner, let name): .conflict("owner \"\(owner)\" already has an agent named \"\(name)\"")
        case .deactivated: .conflict("the agent is deactivated and cannot be changed")
        case .invalidCursor: .badRequest("cursor is not a cursor this API returned")
        }
    }
}
