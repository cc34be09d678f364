import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// An agent registered for a token test.
struct TestAgent {
    let id: String
    let clientID: String
    let secret: String
}

extension TestClientProtocol {
    /// Registers an agent with `scopes` and returns its credentials.
    func agent(scopes: [String] = ["read", "write"], owner: String = unique("owner")) async throws -> TestAgent {
        let body = try await register(owner: owner, scopes: scopes)
        return TestAgent(
            id: try XCTUnwrap(body["id"] as? String),
            clientID: try XCTUnwrap(body["client_id"] as? String),
            secret: try XCTUnwrap(body["client_secret"] as? String)
        )
    }

    /// `POST /oauth/token` with a form body and optional HTTP Basic credentials.
    func tokenRequest(_ form: String, basic: (String, String)? = nil, contentType: String = "application/x-www-form-urlencoded")
        async throws
        -> TestResponse
    {
        var headers: HTTPFields = [.contentType: contentType]
        if let (id, secret) = basic {
            let encoded = Data("\(formEncode(id)):\(formEncode(secret))".utf8).base64EncodedString()
            headers[.authorization] = "Basic \(encoded)"
        }
        return try await execute(uri: "/oauth/token", method: .post, headers: headers, body: ByteBuffer(string: form))
    }

    /// A token for `agent` (client_secret_post), or a failed test.
    func accessToken(for agent: TestAgent, scope: String? = nil, secret: String? = nil) async throws -> String {
        var form =
            "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(secret ?? agent.secret))"
        if let scope { form += "&scope=\(formEncode(scope))" }
        let response = try await tokenRequest(form)
        XCTAssertEqual(response.status, .ok, response.text)
        return try XCTUnwrap(response.object["access_token"] as? String, response.text)
    }

    /// `POST /v1/agents/{id}/credentials/rotate` as the agent itself, by HTTP Basic client
    /// credentials (`secret`, else the agent's registered one), with a JSON body.
    func rotateOwn(_ agent: TestAgent, secret: String? = nil, json: String = "{}", headers extra: HTTPFields = [:]) async throws
        -> TestResponse
    {
        let encoded = Data("\(formEncode(agent.clientID)):\(formEncode(secret ?? agent.secret))".utf8).base64EncodedString()
        var headers: HTTPFields = [.authorization: "Basic \(encoded)", .contentType: "application/json"]
        headers.append(contentsOf: extra)
        return try await execute(
            uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post, headers: headers, body: ByteBuffer(string: json))
    }

    /// `POST /oauth/introspect` as the admin; the whole answer.
    func introspect(_ token: String) async throws -> [String: Any] {
        let response = try await execute(
            uri: "/oauth/introspect",
            method: .post,
            headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: "token=\(formEncode(token))")
        )
        XCTAssertEqual(response.status, .ok, response.text)
        return response.object
    }

    /// `POST /oauth/introspect` as the admin; the `active` member.
    func isActive(_ token: String) async throws -> Bool {
        let answer = try await introspect(token)
        return try XCTUnwrap(answer["active"] as? Bool)
    }
}

func formEncode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

/// Verifies a compact JWS against a JWKS with swift-crypto alone: not the code that signed it.
enum IndependentVerifier {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Returns the header and claims when the ES256 signature checks out with the JWKS key of
    /// the token's `kid`.
    static func verify(_ token: String, jwks: [String: Any]) throws -> (header: [String: Any], claims: [String: Any]) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { throw Failure(description: "not a compact JWS") }
        guard let headerData = base64URL(parts[0]), let claimsData = base64URL(parts[1]), let signature = base64URL(parts[2]),
            let header = try JSONSerialization.jsonObject(with: headerData) as? [String: Any],
            let claims = try JSONSerialization.jsonObject(with: claimsData) as? [String: Any]
        else { throw Failure(description: "undecodable parts") }
        guard header["alg"] as? String == "ES256" else { throw Failure(description: "alg is not ES256") }
        let keys = jwks["keys"] as? [[String: Any]] ?? []
        guard let jwk = keys.first(where: { $0["kid"] as? String == header["kid"] as? String }) else {
            throw Failure(description: "kid \(header["kid"] ?? "-") is not in the JWKS")
        }
        guard jwk["kty"] as? String == "EC", jwk["crv"] as? String == "P-256",
            let x = (jwk["x"] as? String).flatMap(base64URL), let y = (jwk["y"] as? String).flatMap(base64URL), x.count == 32, y.count == 32
        else { throw Failure(description: "the JWK is not a P-256 key") }
        let publicKey = try P256.Signing.PublicKey(x963Representation: Data([0x04]) + x + y)
        let ecdsa = try P256.Signing.ECDSASignature(rawRepresentation: signature)
        guard publicKey.isValidSignature(ecdsa, for: Data("\(parts[0]).\(parts[1])".utf8)) else {
            throw Failure(description: "the signature does not verify")
        }
        return (header, claims)
    }

    static func base64URL(_ text: String) -> Data? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard)
    }
}
