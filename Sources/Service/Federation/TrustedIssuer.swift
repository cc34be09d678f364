import Foundation
import SignetJOSE

/// An issuer whose assertions the JWT-bearer grant takes (`/v1/trusted-issuers`): its `iss`, where
/// its keys are (a JWKS URI, or a static set), and the audience its assertions must name.
public struct TrustedIssuer: Codable, Equatable, Sendable {
    public var id: String
    public var issuer: String
    public var jwksURI: String?
    /// The static key set's canonical JSON, when the issuer has no JWKS URI.
    public var jwks: String?
    public var audience: String
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, issuer, audience, jwks, createdAt
        case jwksURI = "jwks_uri"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(issuer, forKey: .issuer)
        try container.encodeIfPresent(jwksURI, forKey: .jwksURI)
        if let jwks { try container.encode(JSONValue.parse(Data(jwks.utf8)) ?? .null, forKey: .jwks) }
        try container.encode(audience, forKey: .audience)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// A validated `POST /v1/trusted-issuers` body; every error names the field.
struct NewTrustedIssuer: Equatable {
    var issuer: String
    var jwksURI: String?
    var jwks: String?
    var audience: String

    static let fields: Set<String> = ["issuer", "jwks_uri", "jwks", "audience"]
    /// The most trusted issuers Signet keeps.
    static let maxIssuers = 100

    /// - Parameter allowHTTP: `TRUSTED_ISSUER_ALLOW_HTTP`: an http `jwks_uri` on loopback is accepted.
    init(_ body: [String: JSONValue], allowHTTP: Bool) throws(SignetError) {
        try AgentValidation.rejectUnknown(body, allowed: Self.fields)
        issuer = try Self.text("issuer", body["issuer"])
        audience = try Self.text("audience", body["audience"])
        switch (body["jwks_uri"], body["jwks"]) {
        case (let uri?, nil):
            guard case .string(let text) = uri, Self.isKeyURL(text, allowHTTP: allowHTTP) else {
                throw .badRequest(
                    allowHTTP
                        ? "jwks_uri must be an https URL (or http on a loopback address), at most 512 bytes"
                        : "jwks_uri must be an https URL, at most 512 bytes")
            }
            jwksURI = text
        case (nil, let keys?):
            jwks = try AgentValidation.jwks(keys)
        default:
            throw .badRequest("give exactly one of jwks_uri (where the issuer publishes its keys) and jwks (a static key set)")
        }
    }

    static func text(_ field: String, _ value: JSONValue?) throws(SignetError) -> String {
        guard let value, value != .null else { throw .badRequest("\(field) is required") }
        guard case .string(let text) = value, (1...AgentValidation.maxFederatedLength).contains(text.utf8.count),
            text.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else {
            throw .badRequest("\(field) must be 1–\(AgentValidation.maxFederatedLength) printable ASCII characters without spaces")
        }
        return text
    }

    /// An https URL with a host; http only on a loopback host when `allowHTTP`.
    static func isKeyURL(_ text: String, allowHTTP: Bool) -> Bool {
        guard text.utf8.count <= 512, let components = URLComponents(string: text), let host = components.host, !host.isEmpty,
            components.fragment == nil, components.user == nil
        else { return false }
        if components.scheme == "https" { return true }
        return allowHTTP && components.scheme == "http" && ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
    }
}
