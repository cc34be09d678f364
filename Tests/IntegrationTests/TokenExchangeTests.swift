import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// Issue 30: token exchange (RFC 8693) with actor chains, against a real PostgreSQL and Redis;
/// every rule also tried as an attacker would.
final class TokenExchangeTests: XCTestCase {
    static let grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    static let accessTokenType = "urn:ietf:params:oauth:token-type:access_token"

    /// The form of an exchange by `agent` (client_secret_post).
    static func form(
        _ agent: TestAgent, subject: String, actor: String? = nil, scope: String? = nil, resource: String? = nil, extra: String = ""
    ) -> String {
        var form =
            "grant_type=\(formEncode(grant))&client_id=\(agent.clientID)&client_secret=\(formEncode(agent.secret))"
            + "&subject_token=\(subject)&subject_token_type=\(formEncode(accessTokenType))"
        if let actor { form += "&actor_token=\(actor)&actor_token_type=\(formEncode(accessTokenType))" }
        if let scope { form += "&scope=\(formEncode(scope))" }
        if let resource { form += "&resource=\(formEncode(resource))" }
        return form + extra
    }

    /// Lets `actors` act for `agent` (`PATCH may_act`).
    static func letAct(_ client: any TestClientProtocol, _ agent: TestAgent, _ actors: [TestAgent]) async throws {
        let list = actors.map { "\"\($0.id)\"" }.joined(separator: ",")
        let response = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"may_act":[\#(list)]}"#)
        XCTAssertEqual(response.status, .ok, response.text)
        XCTAssertEqual(response.object["may_act"] as? [String], actors.map(\.id))
    }

    /// A successful exchange's token, its answer checked against RFC 8693 §2.2.1.
    static func exchanged(_ client: any TestClientProtocol, _ form: String, file: StaticString = #filePath, line: UInt = #line)
        async throws -> String
    {
        let response = try await client.tokenRequest(form)
        XCTAssertEqual(response.status, .ok, response.text, file: file, line: line)
        XCTAssertEqual(response.object["issued_token_type"] as? String, accessTokenType, file: file, line: line)
        XCTAssertEqual(response.object["token_type"] as? String, "Bearer", file: file, line: line)
        return try XCTUnwrap(response.object["access_token"] as? String, response.text, file: file, line: line)
    }

    static func assertRefused(
        _ response: TestResponse, _ error: String, _ message: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(response.status, .badRequest, "\(message): \(response.text)", file: file, line: line)
        XCTAssertEqual(response.object["error"] as? String, error, "\(message): \(response.text)", file: file, line: line)
    }

    func testAChainOfTwoDelegationsCarriesTheNestedActorsAndOnlyTheCommonScopes() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let a = try await client.agent(scopes: ["read", "write", "admin:x"])
            let b = try await client.agent(scopes: ["read", "write"])
            let c = try await client.agent(scopes: ["read", "deploy"])
            try await Self.letAct(client, a, [b])
            try await Self.letAct(client, b, [c])
            let tokenA = try await client.accessToken(for: a, scope: "read write admin:x")
            let tokenB = try await client.accessToken(for: b)
            let tokenC = try await client.accessToken(for: c)

            let ab = try await Self.exchanged(client, Self.form(b, subject: tokenA, actor: tokenB))
            let abClaims = jwtClaims(ab)
            XCTAssertEqual(abClaims["sub"] as? String, a.id)
            XCTAssertEqual(abClaims["client_id"] as? String, b.clientID)
            XCTAssertEqual(abClaims["act"] as? NSDictionary, ["sub": b.id])
            XCTAssertEqual(abClaims["scope"] as? String, "read write", "A's scopes B also holds")
            XCTAssertLessThanOrEqual(try XCTUnwrap(abClaims["exp"] as? Int), try XCTUnwrap(jwtClaims(tokenA)["exp"] as? Int))

            let abc = try await Self.exchanged(client, Self.form(c, subject: ab, actor: tokenC))
            let abcClaims = jwtClaims(abc)
            XCTAssertEqual(abcClaims["sub"] as? String, a.id)
            XCTAssertEqual(abcClaims["client_id"] as? String, c.clientID)
            XCTAssertEqual(abcClaims["act"] as? NSDictionary, ["sub": c.id, "act": ["sub": b.id]])
            XCTAssertEqual(abcClaims["scope"] as? String, "read", "the scopes A, B and C have in common")
            XCTAssertEqual((abcClaims["parents"] as? [Any])?.count, 4, "A's, B's and C's tokens and the delegated one")

            let introspected = try await client.introspect(abc)
            XCTAssertEqual(introspected["active"] as? Bool, true)
            XCTAssertEqual(introspected["act"] as? NSDictionary, ["sub": c.id, "act": ["sub": b.id]])

            // Each exchange is an audit row naming the chain.
            let rows = try await TestDatabase.query(
                "SELECT details::text AS details FROM audit_events WHERE action = 'token.exchange' AND agent_id = $1::uuid ORDER BY id",
                [a.id])
            XCTAssertEqual(rows.count, 2)
            XCTAssertTrue(rows.last?["details"]?.contains(#""actorChain": ["\#(c.id)", "\#(b.id)"]"#) == true, "\(rows)")

            // A's own token revoked: both derived tokens die at once; B's and C's own do not.
            let revoke = try await client.execute(
                uri: "/oauth/revoke", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(tokenA)"))
            XCTAssertEqual(revoke.status, .ok)
            try await assertEqual(await client.isActive(ab), false)
            try await assertEqual(await client.isActive(abc), false)
            try await assertEqual(await client.isActive(tokenB), true)
            try await assertEqual(await client.isActive(tokenC), true)
        }
    }

    func testRevokingACredentialOrSuspendingAnyAgentOfTheChainEndsTheDerivedTokens() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            // Each case builds a fresh chain A → B → C and breaks one link.
            func chain() async throws -> (a: TestAgent, b: TestAgent, c: TestAgent, abc: String, aCredential: String) {
                let a = try await client.agent()
                let b = try await client.agent()
                let c = try await client.agent()
                try await Self.letAct(client, a, [b])
                try await Self.letAct(client, b, [c])
                let tokenA = try await client.accessToken(for: a)
                let ab = try await Self.exchanged(client, Self.form(b, subject: tokenA, actor: try await client.accessToken(for: b)))
                let abc = try await Self.exchanged(client, Self.form(c, subject: ab, actor: try await client.accessToken(for: c)))
                try await assertEqual(await client.isActive(abc), true)
                return (a, b, c, abc, try XCTUnwrap(jwtClaims(tokenA)["credential_id"] as? String))
            }
            var links = try await chain()
            let revoke = try await client.admin(.delete, "/v1/agents/\(links.a.id)/credentials/\(links.aCredential)")
            XCTAssertTrue([.ok, .noContent].contains(revoke.status), revoke.text)
            try await assertEqual(await client.isActive(links.abc), false, "A's credential revoked")

            // A consent withdrawn: B no longer lets C act for it.
            links = try await chain()
            let withdrawn = try await client.admin(.patch, "/v1/agents/\(links.b.id)", json: #"{"may_act":[]}"#)
            XCTAssertEqual(withdrawn.status, .ok, withdrawn.text)
            try await assertEqual(await client.isActive(links.abc), false, "B's may_act no longer names C")

            for suspended in [\(a: TestAgent, b: TestAgent, c: TestAgent, abc: String, aCredential: String).a, \.b, \.c] {
                links = try await chain()
                let agent = links[keyPath: suspended]
                let response = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"suspended"}"#)
                XCTAssertEqual(response.status, .ok, response.text)
                try await assertEqual(await client.isActive(links.abc), false, "\(agent.id) suspended")
            }
        }
    }

    func testEveryWideningAndEveryUnauthorisedExchangeIsRefused() async throws {
        let signet = try await TestSignet.make(["TOKEN_EXCHANGE_MAX_DEPTH": "2"])
        try await signet.test { client in
            let a = try await client.agent(scopes: ["read", "write"])
            let b = try await client.agent(scopes: ["read", "write"])
            let c = try await client.agent(scopes: ["read", "write"])
            let d = try await client.agent(scopes: ["read", "write"])
            let mallory = try await client.agent(scopes: ["read", "write"])
            try await Self.letAct(client, a, [b])
            try await Self.letAct(client, b, [c])
            try await Self.letAct(client, c, [d])
            let tokenA = try await client.accessToken(for: a, scope: "read")
            let tokenB = try await client.accessToken(for: b)

            Self.assertRefused(
                try await client.tokenRequest(Self.form(a, subject: tokenA, scope: "read write")), "invalid_scope",
                "a scope the subject token does not carry")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(a, subject: tokenA, resource: "https://elsewhere.test/")), "invalid_target",
                "an audience the subject token does not name")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(mallory, subject: tokenA)), "invalid_request",
                "another client exchanging a token it does not own")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(mallory, subject: tokenA, actor: try await client.accessToken(for: mallory))),
                "invalid_request", "an actor A does not name in may_act")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(mallory, subject: tokenA, actor: tokenB)), "invalid_request",
                "an actor token that is not the caller's")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(b, subject: "not.a.token", actor: tokenB)), "invalid_request",
                "a subject token that is not a token")
            Self.assertRefused(
                try await client.tokenRequest(
                    Self.form(a, subject: tokenA, extra: "&requested_token_type=\(formEncode("urn:ietf:params:oauth:token-type:id_token"))")
                ),
                "invalid_request", "another requested token type")
            Self.assertRefused(
                try await client.tokenRequest(
                    "grant_type=\(formEncode(Self.grant))&client_id=\(a.clientID)&client_secret=\(a.secret)&subject_token=\(tokenA)"),
                "invalid_request", "no subject_token_type")

            // Expiry: the exchanged token never outlives its subject token.
            let narrowed = try await Self.exchanged(client, Self.form(a, subject: tokenA))
            XCTAssertEqual(jwtClaims(narrowed)["exp"] as? Int, jwtClaims(tokenA)["exp"] as? Int)

            // Depth 2 allowed, 3 refused.
            let ab = try await Self.exchanged(client, Self.form(b, subject: tokenA, actor: tokenB))
            let abc = try await Self.exchanged(client, Self.form(c, subject: ab, actor: try await client.accessToken(for: c)))
            Self.assertRefused(
                try await client.tokenRequest(Self.form(d, subject: abc, actor: try await client.accessToken(for: d))), "invalid_request",
                "a chain past TOKEN_EXCHANGE_MAX_DEPTH")

            // A delegated token is not an actor token, and never acts on Signet: it cannot rotate A's secret.
            Self.assertRefused(
                try await client.tokenRequest(Self.form(c, subject: tokenB, actor: abc)), "invalid_request",
                "a delegated token as actor token")
            let rotation = try await client.execute(
                uri: "/v1/agents/\(a.id)/credentials/rotate", method: .post,
                headers: [.authorization: "Bearer \(abc)", .contentType: "application/json"], body: ByteBuffer(string: "{}"))
            XCTAssertEqual(rotation.status, .unauthorized, rotation.text)

            // An unauthenticated exchange is a 401, and costs no verification of the tokens.
            let anonymous = try await client.tokenRequest(
                "grant_type=\(formEncode(Self.grant))&subject_token=\(tokenA)&subject_token_type=\(formEncode(Self.accessTokenType))")
            XCTAssertEqual(anonymous.status, .unauthorized, anonymous.text)
        }
    }

    func testAnExchangeNeverCarriesAScopeThatActsOnSignetAndMetadataListsTheGrant() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let a = try await client.agent(scopes: ["read", "credentials:rotate"])
            let token = try await client.accessToken(for: a, scope: "read credentials:rotate")
            let narrowed = try await Self.exchanged(client, Self.form(a, subject: token))
            XCTAssertEqual(jwtClaims(narrowed)["scope"] as? String, "read")
            Self.assertRefused(
                try await client.tokenRequest(Self.form(a, subject: token, scope: "credentials:rotate")), "invalid_scope",
                "only a scope acting on Signet asked for")

            let metadata = try await client.execute(uri: "/.well-known/oauth-authorization-server", method: .get)
            let grants = try XCTUnwrap(metadata.object["grant_types_supported"] as? [String])
            XCTAssertTrue(grants.contains(Self.grant), "\(grants)")
        }
    }
}
