import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Service
import XCTest

/// Tokens an attacker might present (issue 13, item 5): each one is inactive in introspection and
/// refused (401) as the bearer of Signet's own routes. The test signs with the server's real key,
/// read from its database, so every refusal is for the property under test, not for a bad
/// signature: the same signer's unaltered token is accepted.
final class TokenForgeryTests: XCTestCase {
    /// What a forger holds: a real token's parts and the server's real signing key.
    struct Material: @unchecked Sendable {  // immutable; its dictionaries hold JSON values only
        let header: [String: Any]
        let claims: [String: Any]
        let key: P256.Signing.PrivateKey
        let kid: String
        let now: Int64
        let url: String
    }

    /// Builds a Signet, gets a real token, checks the forger's own signature over it is accepted
    /// (the control), then asserts the token `forge` makes is inactive in introspection and a 401
    /// as the bearer of the agent's own credential rotation.
    func assertRefused(
        _ name: String, file: StaticString = #filePath, line: UInt = #line,
        forge: @escaping @Sendable (Material, any TestClientProtocol) async throws -> String
    ) async throws {
        let database = try await TestDatabase.create()
        let signet = try await TestSignet.make(database: database)
        let url = try TestDatabase.url(applicationName: "test", database: database)
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let real = try await client.accessToken(for: agent, scope: "read credentials:rotate")
            let (header, claims) = try Forger.parts(of: real)
            let kid = try XCTUnwrap(header["kid"] as? String)
            let key = try await Forger.privateKey(kid: kid, url: url)
            let material = Material(
                header: header, claims: claims, key: key, kid: kid, now: Int64(Date().timeIntervalSince1970), url: url)
            let control = try Forger.sign(header: header, claims: claims, with: key)
            try await assertEqual(await client.isActive(control), true, "the forger signs like Signet", file: file, line: line)

            let token = try await forge(material, client)
            try await assertEqual(await client.isActive(token), false, "introspection: \(name)", file: file, line: line)
            let own = try await client.execute(
                uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                headers: [.authorization: "Bearer \(token)", .contentType: "application/json"], body: ByteBuffer(string: "{}"))
            XCTAssertEqual(own.status, .unauthorized, "own route: \(name)", file: file, line: line)
        }
    }

    func testAlgNone() async throws {
        try await assertRefused("alg none") { m, _ in
            try Forger.unsigned(header: m.header.merging(["alg": "none"]) { $1 }, claims: m.claims)
        }
    }

    func testUnknownKid() async throws {
        try await assertRefused("unknown kid") { m, _ in
            try Forger.sign(header: m.header.merging(["kid": "no-such-key"]) { $1 }, claims: m.claims, with: m.key)
        }
    }

    /// Two keys published, the token signed by the old one but naming the new one.
    func testWrongKidOfAnotherPublishedKey() async throws {
        try await assertRefused("the kid of another published key") { m, client in
            let rotated = try await client.admin(.post, "/v1/keys/rotate")
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let newKid = try XCTUnwrap(rotated.object["kid"] as? String)
            // The old key still signs good tokens under its own kid.
            try await assertEqual(await client.isActive(try Forger.sign(header: m.header, claims: m.claims, with: m.key)), true)
            return try Forger.sign(header: m.header.merging(["kid": newKid]) { $1 }, claims: m.claims, with: m.key)
        }
    }

    func testHS256WithThePublicKeyPEMAsSecret() async throws {
        try await assertRefused("HS256 with the public key as its secret") { m, _ in
            try Forger.hmac(
                header: m.header.merging(["alg": "HS256"]) { $1 }, claims: m.claims, secret: Data(m.key.publicKey.pemRepresentation.utf8))
        }
    }

    func testHS256WithThePublicKeyRawBytesAsSecret() async throws {
        try await assertRefused("HS256 with the public key's raw bytes") { m, _ in
            try Forger.hmac(header: m.header.merging(["alg": "HS256"]) { $1 }, claims: m.claims, secret: m.key.publicKey.rawRepresentation)
        }
    }

    func testTypJWT() async throws {
        try await assertRefused("typ JWT") { m, _ in
            try Forger.sign(header: m.header.merging(["typ": "JWT"]) { $1 }, claims: m.claims, with: m.key)
        }
    }

    func testNoTyp() async throws {
        try await assertRefused("no typ") { m, _ in
            try Forger.sign(header: m.header.filter { $0.key != "typ" }, claims: m.claims, with: m.key)
        }
    }

    func testExpired() async throws {
        try await assertRefused("expired") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims.merging(["iat": m.now - 1000, "exp": m.now - 100]) { $1 }, with: m.key)
        }
    }

    func testNotYetValid() async throws {
        try await assertRefused("not yet valid (nbf)") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims.merging(["nbf": m.now + 600]) { $1 }, with: m.key)
        }
    }

    func testIssuedInTheFuture() async throws {
        try await assertRefused("issued in the future") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims.merging(["iat": m.now + 600]) { $1 }, with: m.key)
        }
    }

    func testWrongIssuer() async throws {
        try await assertRefused("wrong iss") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims.merging(["iss": "https://evil.test"]) { $1 }, with: m.key)
        }
    }

    func testWrongAudience() async throws {
        try await assertRefused("wrong aud") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims.merging(["aud": "https://evil.test"]) { $1 }, with: m.key)
        }
    }

    func testAnotherKeysSignature() async throws {
        try await assertRefused("another key's signature") { m, _ in
            try Forger.sign(header: m.header, claims: m.claims, with: P256.Signing.PrivateKey())
        }
    }

    /// A key retired and past its publish window: its tokens are dead even with a good signature,
    /// while the current key's signature over the same claims is still accepted.
    func testRetiredKeyPastItsPublishWindow() async throws {
        try await assertRefused("signed by a key past its publish window") { m, client in
            let rotated = try await client.admin(.post, "/v1/keys/rotate")
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let oldToken = try Forger.sign(header: m.header, claims: m.claims, with: m.key)
            try await assertEqual(await client.isActive(oldToken), true, "still published: still good")
            _ = try await TestDatabase.query(
                "UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE kid = $1", [m.kid], url: m.url)
            try await eventually("the retired key leaves the JWKS", timeout: .seconds(10)) {
                let keys = try await client.execute(uri: "/.well-known/jwks.json", method: .get).object["keys"] as? [[String: Any]]
                return keys?.contains { $0["kid"] as? String == m.kid } == false
            }
            let newKid = try XCTUnwrap(rotated.object["kid"] as? String)
            let current = try Forger.sign(
                header: m.header.merging(["kid": newKid]) { $1 }, claims: m.claims,
                with: try await Forger.privateKey(kid: newKid, url: m.url))
            try await assertEqual(await client.isActive(current), true, "the current key's signature over the same claims")
            return oldToken
        }
    }
}

/// Builds compact JWS tokens by hand, with swift-crypto only.
enum Forger {
    static func parts(of token: String) throws -> (header: [String: Any], claims: [String: Any]) {
        let pieces = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard pieces.count == 3, let header = Data(base64URL: pieces[0]), let claims = Data(base64URL: pieces[1]),
            let headerObject = try JSONSerialization.jsonObject(with: header) as? [String: Any],
            let claimsObject = try JSONSerialization.jsonObject(with: claims) as? [String: Any]
        else { throw IndependentVerifier.Failure(description: "not a compact JWS") }
        return (headerObject, claimsObject)
    }

    static func privateKey(kid: String, url: String) async throws -> P256.Signing.PrivateKey {
        let rows = try await TestDatabase.query("SELECT private_key_pem FROM signing_keys WHERE kid = $1", [kid], url: url)
        let pem = try XCTUnwrap(rows.first?["private_key_pem"], "the signing key of \(kid)")
        return try P256.Signing.PrivateKey(pemRepresentation: pem)
    }

    static func encode(_ object: [String: Any]) throws -> String {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).base64URLEncodedString()
    }

    static func unsigned(header: [String: Any], claims: [String: Any]) throws -> String {
        "\(try encode(header)).\(try encode(claims))."
    }

    static func sign(header: [String: Any], claims: [String: Any], with key: P256.Signing.PrivateKey) throws -> String {
        let input = "\(try encode(header)).\(try encode(claims))"
        let signature = try key.signature(for: Data(input.utf8)).rawRepresentation
        return "\(input).\(signature.base64URLEncodedString())"
    }

    static func hmac(header: [String: Any], claims: [String: Any], secret: Data) throws -> String {
        let input = "\(try encode(header)).\(try encode(claims))"
        let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: secret))
        return "\(input).\(Data(mac).base64URLEncodedString())"
    }
}

extension Data {
    fileprivate func base64URLEncodedString() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
