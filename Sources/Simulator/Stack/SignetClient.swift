import Foundation

/// One Signet as the Simulator talks to it (scenarios, `chaos`): typed calls for what they do over
/// and over, so a request's shape is written once. Bodies are built with `JSONSerialization`, never
/// by pasting strings.
public struct SignetClient: Sendable {
    public let base: String
    public let adminToken: String

    public init(base: String, adminToken: String) {
        self.base = base
        self.adminToken = adminToken
    }

    /// An agent as its registration answered it.
    public struct Agent: Sendable {
        public let id: String
        public let name: String
        public let clientID: String
        public let secret: String
        /// Its first credential.
        public let credentialID: String

        /// `client_id:client_secret` for HTTP Basic.
        public var basic: String { Data("\(clientID):\(secret)".utf8).base64EncodedString() }

        init?(_ json: [String: Any]) {
            guard let id = json["id"] as? String, let name = json["name"] as? String, let clientID = json["client_id"] as? String,
                let secret = json["client_secret"] as? String,
                let credentialID = (json["credential"] as? [String: Any])?["id"] as? String
            else { return nil }
            (self.id, self.name, self.clientID, self.secret, self.credentialID) = (id, name, clientID, secret, credentialID)
        }
    }

    /// `POST /v1/agents` as the admin: the answer, and the agent when it is a 201 with one.
    public func registration(name: String, owner: String = "sim", scopes: [String]? = nil, timeout: Duration = .seconds(30)) async throws
        -> (HTTP.Response, Agent?)
    {
        var body: [String: Any] = ["name": name, "owner": owner]
        if let scopes { body["scopes"] = scopes }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self)
        let response = try await HTTP.admin(.POST, "\(base)/v1/agents", token: adminToken, body: text, timeout: timeout)
        return (response, response.status == 201 ? Agent(response.json) : nil)
    }

    /// Registers an agent named `prefix-<8 hex>`; throws `setupFailed` with the answer otherwise.
    public func register(prefix: String, owner: String = "sim", scopes: [String]? = nil) async throws -> Agent {
        let (response, agent) = try await registration(
            name: "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())", owner: owner, scopes: scopes)
        guard let agent else { throw SimulatorError.setupFailed("registering an agent: \(response.status) \(response.body)") }
        return agent
    }

    /// `POST /oauth/token` with the agent's client credentials (HTTP Basic).
    public func token(_ agent: Agent, scope: String? = nil, secret: String? = nil) async throws -> HTTP.Response {
        let basic = secret.map { Data("\(agent.clientID):\($0)".utf8).base64EncodedString() } ?? agent.basic
        var form = "grant_type=client_credentials"
        if let scope { form += "&scope=\(scope.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? scope)" }
        return try await HTTP.request(
            .POST, "\(base)/oauth/token",
            headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/x-www-form-urlencoded")], body: form)
    }
}
