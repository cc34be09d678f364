import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SignetJOSE
import SignetResourceServer
import Simulator
import Synchronization
import XCTest

/// Issue 29: agents without a secret (`private_key_jwt`, RFC 7523), tokens for named resources
/// (RFC 8707) and tokens bound to a key (DPoP, RFC 9449), against a real PostgreSQL and Redis;
/// each rule also tried as an attacker would.
final class SecretlessTests: XCTestCase {
    static let assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    struct KeyAgent {
        let id: String
        let clientID: String
        let key: TestKey
    }

    /// Registers an agent with `key`'s public key set (and `extra` JSON members).
    static func keyAgent(
        _ client: any TestClientProtocol, key: TestKey = .p256(), extra: String = "", scopes: String = #"["read","write"]"#
    )
        async throws -> KeyAgent
    {
        let body =
            #"{"name":"k-\#(UUID().uuidString.prefix(8))","owner":"secretless","scopes":\#(scopes),"jwks":\#(key.jwksJSON)\#(extra)}"#
        let response = try await client.admin(.post, "/v1/agents", json: body)
        XCTAssertEqual(response.status, .created, response.text)
        XCTAssertNil(response.object["client_secret"], "an agent with keys never gets a secret")
        XCTAssertEqual(response.object["token_endpoint_auth_method"] as? String, "private_key_jwt")
        return KeyAgent(
            id: try XCTUnwrap(response.object["id"] as? String), clientID: try XCTUnwrap(response.object["client_id"] as? String), key: key)
    }

    static func assertionForm(_ assertion: String, extra: String = "") -> String {
        "grant_type=client_credentials&client_assertion_type=\(formEncode(Self.assertionType))&client_assertion=\(formEncode(assertion))"
            + extra
    }

    static func assertRefused(
        _ response: TestResponse, _ status: HTTPResponse.Status, _ error: String, _ message: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(response.status, status, "\(message): \(response.text)", file: file, line: line)
        XCTAssertEqual(response.object["error"] as? String, error, "\(message): \(response.text)", file: file, line: line)
    }

    func testAnAgentWithKeysAuthenticatesByAssertionAndEveryForgeryIsRefused() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await Self.keyAgent(client)
            // Authlib's default audience (the token endpoint) and the issuer both work.
            for audience in ["https://signet.test/oauth/token", "https://signet.test"] {
                let response = try await client.tokenRequest(
                    Self.assertionForm(agent.key.assertion(clientID: agent.clientID, audience: audience)))
                XCTAssertEqual(response.status, .ok, response.text)
                let token = try XCTUnwrap(response.object["access_token"] as? String)
                XCTAssertEqual(jwtClaims(token)["sub"] as? String, agent.id)
                try await assertEqual(await client.isActive(token), true)
            }

            let used = agent.key.assertion(clientID: agent.clientID)
            _ = try await client.tokenRequest(Self.assertionForm(used))
            Self.assertRefused(
                try await client.tokenRequest(Self.assertionForm(used)), .unauthorized, "invalid_client", "a replayed assertion")

            let now = Date()
            let attempts: [(String, String)] = [
                (agent.key.assertion(clientID: agent.clientID, audience: "https://elsewhere.test/oauth/token"), "another audience"),
                (agent.key.assertion(clientID: agent.clientID, ["exp": Int(now.timeIntervalSince1970) - 1]), "an expired assertion"),
                (agent.key.assertion(clientID: agent.clientID, ["exp": Int(now.timeIntervalSince1970) + 3600]), "exp an hour ahead"),
                (agent.key.assertion(clientID: agent.clientID, ["exp": nil]), "no exp"),
                (agent.key.assertion(clientID: agent.clientID, ["jti": nil]), "no jti"),
                (agent.key.assertion(clientID: agent.clientID, ["iat": Int(now.timeIntervalSince1970) + 600]), "iat in the future"),
                (agent.key.assertion(clientID: agent.clientID, ["iss": "sgc_AAAAAAAAAAAAAAAAAAAAAA"]), "iss is not sub"),
                (TestKey.p256(kid: agent.key.kid).assertion(clientID: agent.clientID), "a key never registered, under its kid"),
                (TestKey.p256().assertion(clientID: agent.clientID), "a key never registered"),
                (
                    Forgery.none(
                        claims: [
                            "iss": agent.clientID, "sub": agent.clientID, "aud": "https://signet.test",
                            "exp": Int(now.timeIntervalSince1970) + 60,
                            "jti": UUID().uuidString,
                        ], header: ["kid": agent.key.kid]), "alg none"
                ),
                (
                    Forgery.hs256(
                        claims: [
                            "iss": agent.clientID, "sub": agent.clientID, "aud": "https://signet.test",
                            "exp": Int(now.timeIntervalSince1970) + 60,
                            "jti": UUID().uuidString,
                        ], header: ["kid": agent.key.kid], key: agent.key.jwksJSON), "HS256 keyed with the public key"
                ),
            ]
            for (assertion, what) in attempts {
                Self.assertRefused(try await client.tokenRequest(Self.assertionForm(assertion)), .unauthorized, "invalid_client", what)
            }
            // Mixed methods and malformed requests are the client's mistake, not a failed login.
            let fresh = agent.key.assertion(clientID: agent.clientID)
            Self.assertRefused(
                try await client.tokenRequest(Self.assertionForm(fresh, extra: "&client_secret=sgs_x&client_id=\(agent.clientID)")),
                .badRequest, "invalid_request", "an assertion beside a secret")
            Self.assertRefused(
                try await client.tokenRequest(Self.assertionForm(fresh), basic: (agent.clientID, "sgs_x")), .badRequest, "invalid_request",
                "an assertion beside HTTP Basic")
            Self.assertRefused(
                try await client.tokenRequest("grant_type=client_credentials&client_assertion_type=jwt&client_assertion=\(fresh)"),
                .badRequest,
                "invalid_request", "another assertion type")
            // The refusals of a known client are in its audit trail, as wrong secrets are.
            let rows = try await TestDatabase.query(
                "SELECT sum(count)::text AS n FROM audit_events WHERE agent_id = $1::uuid AND action = 'token.denied'", [agent.id])
            XCTAssertGreaterThanOrEqual(Int(rows.first?["n"] ?? "0") ?? 0, 5)
        }
    }

    func testKeySetsAreValidatedAtRegistration() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let key = TestKey.p256()
            var withPrivate = key.publicJWK
            withPrivate["d"] = "AAAA"
            let longModulus = Base64URL.encodeForTest([0xC0] + [UInt8](repeating: 1, count: 127))
            let cases: [(String, String)] = [
                (TestKey.json(["keys": [withPrivate]]), "private part"),
                (#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#, "symmetric key"),
                (#"{"keys":[{"kty":"RSA","n":"\#(longModulus)","e":"AQAB","kid":"r"}]}"#, "at least 2048 bits"),
                (TestKey.json(["keys": [key.publicMembers]]), "kid"),
                (#"{"keys":[]}"#, "1 to"),
                (#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA","kid":"e"}]}"#, "P-256 or P-384"),
                (TestKey.json(["keys": [key.publicJWK, key.publicJWK]]), "share the kid"),
            ]
            for (jwks, expected) in cases {
                let response = try await client.admin(.post, "/v1/agents", json: #"{"name":"bad","owner":"secretless","jwks":\#(jwks)}"#)
                XCTAssertEqual(response.status, .badRequest, "\(expected): \(response.text)")
                XCTAssertTrue(response.text.contains(expected), "\(expected): \(response.text)")
                XCTAssertFalse(response.text.contains("AAAA"), "no key value is echoed")
            }
        }
    }

    func testAKeyAgentRotatesToANewKeySetWithGraceAndNeverGetsASecret() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await Self.keyAgent(client, scopes: #"["read","credentials:rotate"]"#)
            let next = TestKey.ed25519()
            // The agent rotates its own keys, authenticated by an assertion of its current key.
            func rotation(audience: String) async throws -> TestResponse {
                let form =
                    "client_assertion_type=\(formEncode(Self.assertionType))&client_assertion=\(formEncode(agent.key.assertion(clientID: agent.clientID, audience: audience)))"
                    + "&graceSeconds=60&jwks=\(formEncode(next.jwksJSON))"
                return try await client.execute(
                    uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: form))
            }
            // An assertion made for the token endpoint, or for the issuer, captured unused, rotates nothing.
            for audience in ["https://signet.test", "https://signet.test/oauth/token"] {
                let refused = try await rotation(audience: audience)
                XCTAssertEqual(refused.status, .unauthorized, "\(audience): \(refused.text)")
            }
            let rotated = try await rotation(audience: "https://signet.test/v1/agents/\(agent.id)/credentials/rotate")
            XCTAssertEqual(rotated.status, .created, rotated.text)
            XCTAssertNil(rotated.object["client_secret"])
            for key in [agent.key, next] {
                let response = try await client.tokenRequest(Self.assertionForm(key.assertion(clientID: agent.clientID)))
                XCTAssertEqual(response.status, .ok, "both key sets work during the grace period: \(response.text)")
            }
            // A form naming another assertion type is refused, the admin's too (schemathesis found it accepted).
            let foreignType = try await client.execute(
                uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "client_assertion_type=x&graceSeconds=0"))
            XCTAssertEqual(foreignType.status, .badRequest, foreignType.text)
            let secret = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":0}"#)
            Self.assertRefused(secret, .badRequest, "invalid_request", "a rotation to a secret")
            XCTAssertTrue(secret.text.contains("private_key_jwt"), secret.text)
            // The admin rotates to a third key set with no grace: only it works afterwards.
            let third = TestKey.p256()
            let admin = try await client.admin(
                .post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":0,"jwks":\#(third.jwksJSON)}"#)
            XCTAssertEqual(admin.status, .created, admin.text)
            try await eventually("the old keys end") {
                try await client.tokenRequest(Self.assertionForm(next.assertion(clientID: agent.clientID))).status == .unauthorized
            }
            let response = try await client.tokenRequest(Self.assertionForm(third.assertion(clientID: agent.clientID)))
            XCTAssertEqual(response.status, .ok, response.text)
        }
    }

    func testResourcesBecomeTheAudienceAndOnlyRegisteredOnesAreGranted() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let patched = try await client.admin(
                .patch, "/v1/agents/\(agent.id)", json: #"{"resources":["https://mcp.example/tools","urn:example:ledger"]}"#)
            XCTAssertEqual(patched.status, .ok, patched.text)
            XCTAssertEqual(patched.object["resources"] as? [String], ["https://mcp.example/tools", "urn:example:ledger"])
            let base = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"

            let one = try await client.tokenRequest(base + "&resource=\(formEncode("https://mcp.example/tools"))")
            XCTAssertEqual(one.status, .ok, one.text)
            let token = try XCTUnwrap(one.object["access_token"] as? String)
            XCTAssertEqual(jwtClaims(token)["aud"] as? String, "https://mcp.example/tools")
            let introspected = try await client.introspect(token)
            XCTAssertEqual(introspected["aud"] as? String, "https://mcp.example/tools")

            let two = try await client.tokenRequest(
                base + "&resource=\(formEncode("https://mcp.example/tools"))&resource=\(formEncode("urn:example:ledger"))")
            XCTAssertEqual(two.status, .ok, two.text)
            XCTAssertEqual(
                jwtClaims(try XCTUnwrap(two.object["access_token"] as? String))["aud"] as? [String],
                ["https://mcp.example/tools", "urn:example:ledger"])

            let plain = try await client.accessToken(for: agent)
            XCTAssertEqual(jwtClaims(plain)["aud"] as? String, "https://signet.test", "no resource: the default audience")

            for (resource, what) in [
                ("https://evil.example/", "a resource not registered"), ("relative/path", "not an absolute URI"),
                ("https://mcp.example/tools#frag", "a fragment"),
            ] {
                Self.assertRefused(
                    try await client.tokenRequest(base + "&resource=\(formEncode(resource))"), .badRequest, "invalid_target", what)
            }
            let bad = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"resources":["no-scheme"]}"#)
            XCTAssertEqual(bad.status, .badRequest, bad.text)
            // Dropping a resource ends the tokens issued for it.
            _ = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"resources":["urn:example:ledger"]}"#)
            try await assertEqual(await client.isActive(token), false)
        }
    }

    func testADPoPProofBindsTheTokenAndEveryBadProofIsRefused() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let key = TestKey.p256()
            let form = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
            func request(_ proof: String?) async throws -> TestResponse {
                var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                if let proof { headers[HTTPField.Name("DPoP")!] = proof }
                return try await client.execute(uri: "/oauth/token", method: .post, headers: headers, body: ByteBuffer(string: form))
            }
            let proof = key.proof()
            let bound = try await request(proof)
            XCTAssertEqual(bound.status, .ok, bound.text)
            XCTAssertEqual(bound.object["token_type"] as? String, "DPoP")
            let token = try XCTUnwrap(bound.object["access_token"] as? String)
            XCTAssertEqual((jwtClaims(token)["cnf"] as? [String: Any])?["jkt"] as? String, key.thumbprint)
            let introspected = try await client.introspect(token)
            XCTAssertEqual((introspected["cnf"] as? [String: Any])?["jkt"] as? String, key.thumbprint)
            XCTAssertEqual(introspected["token_type"] as? String, "DPoP")

            let ed = TestKey.ed25519()
            let edResponse = try await request(ed.proof())
            XCTAssertEqual(edResponse.status, .ok, edResponse.text)

            let now = Date()
            var privateJWK: [String: Any] = key.publicMembers
            privateJWK["d"] = "AAAA"
            let attempts: [(String, String)] = [
                (proof, "a replayed proof"),
                (key.proof(method: "GET"), "another htm"),
                (key.proof(url: "https://signet.test/oauth/introspect"), "another htu"),
                (key.proof(url: "https://elsewhere.test/oauth/token"), "another host"),
                (key.proof(["iat": Int(now.timeIntervalSince1970) - 600]), "an old iat"),
                (key.proof(["iat": Int(now.timeIntervalSince1970) + 600]), "a future iat"),
                (key.proof(["jti": nil]), "no jti"),
                (key.proof(header: ["typ": "JWT"]), "another typ"),
                (key.proof(header: ["jwk": privateJWK]), "a jwk with its private part"),
                (key.proof(header: ["jwk": TestKey.p256().publicMembers]), "signed by another key than its jwk"),
                (
                    Forgery.none(
                        claims: [
                            "htm": "POST", "htu": "https://signet.test/oauth/token", "iat": Int(now.timeIntervalSince1970), "jti": "n1",
                        ],
                        header: ["typ": "dpop+jwt", "jwk": key.publicMembers]), "alg none"
                ),
                (
                    Forgery.hs256(
                        claims: [
                            "htm": "POST", "htu": "https://signet.test/oauth/token", "iat": Int(now.timeIntervalSince1970), "jti": "h1",
                        ],
                        header: ["typ": "dpop+jwt", "jwk": key.publicMembers], key: "k"), "HS256"
                ),
                ("not.a.jwt", "garbage"),
            ]
            for (proof, what) in attempts {
                Self.assertRefused(try await request(proof), .badRequest, "invalid_dpop_proof", what)
            }

            // An agent registered to need DPoP gets no token without a proof.
            let patched = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"dpop_bound_access_tokens":true}"#)
            XCTAssertEqual(patched.object["dpop_bound_access_tokens"] as? Bool, true)
            Self.assertRefused(try await request(nil), .badRequest, "invalid_dpop_proof", "a DPoP-bound agent without a proof")
            let afterwards = try await request(key.proof())
            XCTAssertEqual(afterwards.status, .ok, afterwards.text)
        }
    }

    func testServerNoncesAreDemandedAndAcceptedOnEveryInstance() async throws {
        let database = try await TestDatabase.create()
        let first = try await TestSignet.make(["DPOP_NONCE_REQUIRED": "true"], database: database)
        let second = try await TestSignet.make(["DPOP_NONCE_REQUIRED": "true"], database: database)
        try await first.test { one in
            try await second.test { two in
                let agent = try await one.agent()
                let key = TestKey.p256()
                let form = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
                func request(_ client: any TestClientProtocol, _ proof: String) async throws -> TestResponse {
                    try await client.execute(
                        uri: "/oauth/token", method: .post,
                        headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("DPoP")!: proof],
                        body: ByteBuffer(string: form))
                }
                let first = try await request(one, key.proof())
                Self.assertRefused(first, .badRequest, "use_dpop_nonce", "a proof without a nonce")
                let nonce = try XCTUnwrap(first.headers[HTTPField.Name("DPoP-Nonce")!])
                let granted = try await request(two, key.proof(["nonce": nonce]))
                XCTAssertEqual(granted.status, .ok, "another instance accepts the nonce: \(granted.text)")
                XCTAssertNotNil(granted.headers[HTTPField.Name("DPoP-Nonce")!], "the next nonce comes with the token")
                Self.assertRefused(
                    try await request(two, key.proof(["nonce": "forged"])), .badRequest, "use_dpop_nonce", "a nonce Signet never issued")
            }
        }
    }

    func testAReplayIsCaughtAcrossInstancesAndInMemoryWhileRedisIsDown() async throws {
        let database = try await TestDatabase.create()
        let prefix = "test-\(UUID().uuidString.prefix(8)):"
        let first = try await TestSignet.make(["REDIS_KEY_PREFIX": prefix], database: database)
        let second = try await TestSignet.make(["REDIS_KEY_PREFIX": prefix], database: database)
        try await first.test { one in
            try await second.test { two in
                let agent = try await Self.keyAgent(one)
                let assertion = agent.key.assertion(clientID: agent.clientID)
                let granted = try await one.tokenRequest(Self.assertionForm(assertion))
                XCTAssertEqual(granted.status, .ok, granted.text)
                Self.assertRefused(
                    try await two.tokenRequest(Self.assertionForm(assertion)), .unauthorized, "invalid_client",
                    "replayed on another instance")
            }
        }
        // Redis refused: the instance remembers what it saw itself.
        let alone = try await TestSignet.make(["REDIS_URL": "redis://127.0.0.1:1"], database: database)
        try await alone.test { client in
            let agent = try await Self.keyAgent(client)
            let assertion = agent.key.assertion(clientID: agent.clientID)
            let granted = try await client.tokenRequest(Self.assertionForm(assertion))
            XCTAssertEqual(granted.status, .ok, granted.text)
            Self.assertRefused(
                try await client.tokenRequest(Self.assertionForm(assertion)), .unauthorized, "invalid_client", "replayed in memory")
        }
    }

    /// An assertion first seen while Redis was down (the instance remembered it in memory) stays
    /// refused on that instance once a Redis answers again that never saw it (restarted empty).
    func testAnAssertionSeenDuringARedisOutageStaysRefusedAfterIt() async throws {
        let first = try await RedisServer.start()
        let restarted = Mutex<RedisServer?>(nil)
        defer { first.crash() }
        let signet = try await TestSignet.make(["REDIS_URL": first.url])
        do {
            try await signet.test { client in
                let agent = try await Self.keyAgent(client)
                let warm = try await client.tokenRequest(Self.assertionForm(agent.key.assertion(clientID: agent.clientID)))
                XCTAssertEqual(warm.status, .ok, warm.text)
                first.crash()
                let assertion = agent.key.assertion(clientID: agent.clientID)
                let during = try await client.tokenRequest(Self.assertionForm(assertion))
                XCTAssertEqual(during.status, .ok, "decided in memory while Redis is down: \(during.text)")
                let second = try await RedisServer.start(port: first.port)
                restarted.withLock { $0 = second }
                try await eventually("the limiter decides in Redis again") { signet.logText.contains("Redis answers again") }
                let replayed = try await client.tokenRequest(Self.assertionForm(assertion))
                Self.assertRefused(replayed, .unauthorized, "invalid_client", "an outage-era assertion replayed after the outage")
                let fresh = try await client.tokenRequest(Self.assertionForm(agent.key.assertion(clientID: agent.clientID)))
                XCTAssertEqual(fresh.status, .ok, "Redis decides: \(fresh.text)")
                let keys = try await second.command(["DBSIZE"])
                XCTAssertNotEqual("\(keys)", "integer(0)", "the fresh one is in the new Redis")
            }
        } catch {
            if let second = restarted.withLock({ $0 }) { await second.stop() }
            throw error
        }
        if let second = restarted.withLock({ $0 }) { await second.stop() }
    }

    func testMetadataListsTheNewMethodsAndAlgorithms() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let metadata = try await client.execute(uri: "/.well-known/oauth-authorization-server", method: .get).object
            XCTAssertTrue((metadata["token_endpoint_auth_methods_supported"] as? [String])?.contains("private_key_jwt") == true)
            XCTAssertEqual(metadata["dpop_signing_alg_values_supported"] as? [String], ["ES256", "EdDSA"])
            XCTAssertFalse(
                (metadata["token_endpoint_auth_signing_alg_values_supported"] as? [String] ?? ["none"]).contains {
                    $0 == "none" || $0.hasPrefix("HS")
                })
        }
    }
}

extension Base64URL {
    static func encodeForTest(_ bytes: [UInt8]) -> String { encode(bytes) }
}

/// Signet's token-authority route takes an agent's DPoP-bound token with a proof (through the
/// resource-server library), and nothing a bearer could replay.
final class TokenAuthorityDPoPTests: XCTestCase {
    /// A DPoP-bound token of `agent` with `scope`, bound to `key`.
    static func boundToken(_ client: any TestClientProtocol, _ agent: TestAgent, key: TestKey, scope: String, resource: String? = nil)
        async throws -> String
    {
        var form = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
        form += "&scope=\(formEncode(scope))"
        if let resource { form += "&resource=\(formEncode(resource))" }
        let response = try await client.execute(
            uri: "/oauth/token", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("DPoP")!: key.proof()],
            body: ByteBuffer(string: form))
        XCTAssertEqual(response.status, .ok, response.text)
        return try XCTUnwrap(response.object["access_token"] as? String)
    }

    static func rotate(
        _ client: any TestClientProtocol, _ agent: TestAgent, authorization: String, proof: String?
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.authorization: authorization, .contentType: "application/json"]
        if let proof { headers[HTTPField.Name("DPoP")!] = proof }
        return try await client.execute(
            uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post, headers: headers,
            body: ByteBuffer(string: #"{"graceSeconds":60}"#))
    }

    func testABoundTokenWithItsProofRotatesAndEveryMisuseIsRefused() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let key = TestKey.p256()
            let url = "https://signet.test/v1/agents/\(agent.id)/credentials/rotate"
            let token = try await Self.boundToken(client, agent, key: key, scope: "credentials:rotate")
            func proof(for token: String, key: TestKey = key, _ edit: [String: Any?] = [:]) -> String {
                key.proof(url: url, ["ath": DPoPProof.accessTokenHash(token)].merging(edit) { $1 })
            }

            let asBearer = try await Self.rotate(client, agent, authorization: "Bearer \(token)", proof: proof(for: token))
            XCTAssertEqual(asBearer.status, .unauthorized, "a bound token sent as Bearer: \(asBearer.text)")
            let noProof = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: nil)
            XCTAssertEqual(noProof.status, .unauthorized, noProof.text)
            XCTAssertEqual(noProof.object["error"] as? String, "invalid_dpop_proof")
            XCTAssertTrue(noProof.headers[values: .wwwAuthenticate].contains { $0.hasPrefix("DPoP ") }, "a DPoP challenge")
            let other = try await Self.boundToken(client, agent, key: key, scope: "credentials:rotate")
            let wrongAth = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: proof(for: other))
            XCTAssertEqual(wrongAth.object["error"] as? String, "invalid_dpop_proof", "an ath for another token: \(wrongAth.text)")
            let thief = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: proof(for: token, key: .p256()))
            XCTAssertEqual(thief.object["error"] as? String, "invalid_dpop_proof", "a proof by another key: \(thief.text)")
            let wrongURL = try await Self.rotate(
                client, agent, authorization: "DPoP \(token)",
                proof: key.proof(url: "https://signet.test/oauth/token", ["ath": DPoPProof.accessTokenHash(token)]))
            XCTAssertEqual(wrongURL.object["error"] as? String, "invalid_dpop_proof", wrongURL.text)

            let plain = try await client.accessToken(for: agent, scope: "credentials:rotate")
            let unbound = try await Self.rotate(client, agent, authorization: "DPoP \(plain)", proof: proof(for: plain))
            XCTAssertEqual(unbound.object["error"] as? String, "invalid_token", "an unbound token as DPoP: \(unbound.text)")
            let narrow = try await Self.boundToken(client, agent, key: key, scope: "read")
            let noScope = try await Self.rotate(client, agent, authorization: "DPoP \(narrow)", proof: proof(for: narrow))
            XCTAssertEqual(noScope.status, .forbidden, noScope.text)
            XCTAssertEqual(noScope.object["error"] as? String, "insufficient_scope")

            let good = proof(for: token)
            let rotated = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: good)
            XCTAssertEqual(rotated.status, .created, rotated.text)
            XCTAssertNotNil(rotated.object["client_secret"], "a secret agent rotated by token gets its new secret")
            let replayed = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: good)
            XCTAssertEqual(replayed.object["error"] as? String, "invalid_dpop_proof", "a replayed proof: \(replayed.text)")
            // The token's credential is now in its grace period: a newer one exists, so it may not rotate.
            let stale = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: proof(for: token))
            XCTAssertEqual(stale.status, .conflict, stale.text)
            // Revoked: refused at once.
            _ = try await client.execute(
                uri: "/oauth/revoke", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(formEncode(token))"))
            let revoked = try await Self.rotate(client, agent, authorization: "DPoP \(token)", proof: proof(for: token))
            XCTAssertEqual(revoked.object["error"] as? String, "invalid_token", revoked.text)
        }
    }

    func testATokenForAnotherResourceOrAnotherAgentActsNowhere() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let victim = try await client.agent(scopes: ["read", "credentials:rotate"])
            _ = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"resources":["https://tool.example/"]}"#)
            let key = TestKey.p256()
            let elsewhere = try await Self.boundToken(
                client, agent, key: key, scope: "credentials:rotate", resource: "https://tool.example/")
            let url = "https://signet.test/v1/agents/\(agent.id)/credentials/rotate"
            let response = try await Self.rotate(
                client, agent, authorization: "DPoP \(elsewhere)", proof: key.proof(url: url, ["ath": DPoPProof.accessTokenHash(elsewhere)])
            )
            XCTAssertEqual(response.object["error"] as? String, "invalid_token", "a token for another audience: \(response.text)")

            let own = try await Self.boundToken(client, agent, key: key, scope: "credentials:rotate")
            let victimURL = "https://signet.test/v1/agents/\(victim.id)/credentials/rotate"
            let across = try await Self.rotate(
                client, victim, authorization: "DPoP \(own)", proof: key.proof(url: victimURL, ["ath": DPoPProof.accessTokenHash(own)]))
            XCTAssertEqual(across.status, .forbidden, "one agent's token on another's registration: \(across.text)")
        }
    }
}
