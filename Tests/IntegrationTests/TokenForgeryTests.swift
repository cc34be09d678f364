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
    func testForgedAndOutOfDateTokensAreRefusedEverywhere() async throws {
        let database = try await TestDatabase.create()
        let signet = try await TestSignet.make(database: database)
        let url = try TestDatabase.url(applicationName: "test", database: database)
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let real = try await client.accessToken(for: agent, scope: "read credentials:rotate")
            let (header, claims) = try Forger.parts(of: real)
            let kid = try XCTUnwrap(header["kid"] as? String)
            let key = try await Forger.privateKey(kid: kid, url: url)
            let now = Int64(Date().timeIntervalSince1970)

            // The control: the forger's own signature over the real header and claims is good.
            let control = try Forger.sign(header: header, claims: claims, with: key)
            try await assertEqual(await client.isActive(control), true, "the forger signs like Signet")

            var cases: [(String, String)] = []
            cases.append(("alg none", try Forger.unsigned(header: header.merging(["alg": "none"]) { $1 }, claims: claims)))
            cases.append(("unknown kid", try Forger.sign(header: header.merging(["kid": "no-such-key"]) { $1 }, claims: claims, with: key)))
            let publicPEM = key.publicKey.pemRepresentation
            cases.append(
                (
                    "HS256 with the public key as its secret",
                    try Forger.hmac(header: header.merging(["alg": "HS256"]) { $1 }, claims: claims, secret: Data(publicPEM.utf8))
                ))
            cases.append(
                (
                    "HS256 with the public key's raw bytes",
                    try Forger.hmac(
                        header: header.merging(["alg": "HS256"]) { $1 }, claims: claims, secret: key.publicKey.rawRepresentation)
                ))
            cases.append(("typ JWT", try Forger.sign(header: header.merging(["typ": "JWT"]) { $1 }, claims: claims, with: key)))
            cases.append(("no typ", try Forger.sign(header: header.filter { $0.key != "typ" }, claims: claims, with: key)))
            cases.append(
                (
                    "expired",
                    try Forger.sign(header: header, claims: claims.merging(["iat": now - 1000, "exp": now - 100]) { $1 }, with: key)
                ))
            cases.append(
                ("not yet valid (nbf)", try Forger.sign(header: header, claims: claims.merging(["nbf": now + 600]) { $1 }, with: key)))
            cases.append(
                ("issued in the future", try Forger.sign(header: header, claims: claims.merging(["iat": now + 600]) { $1 }, with: key)))
            cases.append(
                ("wrong iss", try Forger.sign(header: header, claims: claims.merging(["iss": "https://evil.test"]) { $1 }, with: key)))
            cases.append(
                ("wrong aud", try Forger.sign(header: header, claims: claims.merging(["aud": "https://evil.test"]) { $1 }, with: key)))
            cases.append(("another key's signature", try Forger.sign(header: header, claims: claims, with: P256.Signing.PrivateKey())))

            // A key retired and past its publish window: its tokens are dead even with a good signature.
            let rotated = try await client.admin(.post, "/v1/keys/rotate")
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let oldToken = try Forger.sign(header: header, claims: claims, with: key)
            try await assertEqual(await client.isActive(oldToken), true, "still published: still good")
            _ = try await TestDatabase.query(
                "UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE kid = $1", [kid], url: url)
            try await eventually("the retired key leaves the JWKS", timeout: .seconds(10)) {
                let keys = try await client.execute(uri: "/.well-known/jwks.json", method: .get).object["keys"] as? [[String: Any]]
                return keys?.contains { $0["kid"] as? String == kid } == false
            }
            cases.append(("signed by a key past its publish window", oldToken))
            // The control again, with the current key: acceptance still works after all of it.
            let newKid = try XCTUnwrap(rotated.object["kid"] as? String)
            let current = try Forger.sign(
                header: header.merging(["kid": newKid]) { $1 }, claims: claims, with: try await Forger.privateKey(kid: newKid, url: url))
            try await assertEqual(await client.isActive(current), true, "the current key's signature over the same claims")

            for (name, token) in cases {
                try await assertEqual(await client.isActive(token), false, "introspection: \(name)")
                let own = try await client.execute(
                    uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                    headers: [.authorization: "Bearer \(token)", .contentType: "application/json"], body: ByteBuffer(string: "{}"))
                XCTAssertEqual(own.status, .unauthorized, "own route: \(name)")
            }
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
