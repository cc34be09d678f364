/// A registered agent as the admin API shows it. Never holds a secret.
public struct Agent: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        case active, suspended, deactivated
    }

    public var id: String
    public var name: String
    public var owner: String
    public var scopes: [String]
    public var metadata: [String: JSONValue]
    public var status: Status
    /// The OAuth client id the agent authenticates with; stays the same across rotations.
    public var clientID: String
    public var createdAt: String
    public var updatedAt: String
    /// The RFC 8707 resources its tokens may be for (`aud`); empty: the default audience only.
    public var resources: [String]
    /// Its token requests must carry a DPoP proof (RFC 9449 §5.2's name).
    public var dpopBoundAccessTokens: Bool
    /// How it authenticates: `client_secret` (HTTP Basic or form) or `private_key_jwt`.
    public var authMethod: AuthMethod
    /// The agents that may exchange a token it holds for one acting on its behalf (RFC 8693 §4.4).
    public var mayAct: [String]
    /// The identity a trusted issuer's assertion names for it (the JWT-bearer grant), if any.
    public var federatedSubject: FederatedSubject?

    /// `{"issuer", "subject"}`: a SPIFFE ID from a SPIRE server, a Kubernetes service account
    /// (`system:serviceaccount:NAMESPACE:NAME`) from its cluster's issuer, a cloud workload's id.
    public struct FederatedSubject: Codable, Equatable, Sendable {
        public var issuer: String
        public var subject: String
    }

    public enum AuthMethod: String, Codable, Sendable {
        case clientSecret = "client_secret"
        case privateKeyJWT = "private_key_jwt"
    }

    enum CodingKeys: String, CodingKey {
        case id, name, owner, scopes, metadata, status, resources
        case clientID = "client_id"
        case createdAt, updatedAt
        case dpopBoundAccessTokens = "dpop_bound_access_tokens"
        case authMethod = "token_endpoint_auth_method"
        case mayAct = "may_act"
        case federatedSubject = "federated_subject"
    }
}

/// One client secret of an agent, without the secret.
public struct CredentialSummary: Codable, Equatable, Sendable {
    public var id: String
    public var createdAt: String
    public var expiresAt: String?
}

/// The answer to a registration: the agent, and its first secret, shown this once (none for an
/// agent registered with a public key set).
struct RegisteredAgent: Encodable {
    let agent: Agent
    let clientSecret: String?
    let credential: CredentialSummary

    enum CodingKeys: String, CodingKey {
        case clientSecret = "client_secret"
        case credential
    }

    func encode(to encoder: any Encoder) throws {
        try agent.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(clientSecret, forKey: .clientSecret)
        try container.encode(credential, forKey: .credential)
    }
}
