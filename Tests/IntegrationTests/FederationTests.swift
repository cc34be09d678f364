import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SignetResourceServer
import SignetTestSupport
import Simulator
import XCTest

/// Issue 30: the JWT-bearer grant from trusted issuers (RFC 7523 §2.1), against a real PostgreSQL
/// and Redis and an issuer publishing its keys over HTTP; every rule also tried as an attacker would.
final class FederationTests: XCTestCase {
    static let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    static let workload = "spiffe://example.org/ns/prod/sa/worker"

    static func form(_ assertion: String, extra: String = "") -> String {
        "grant_type=\(formEncode(grant))&assertion=\(formEncode(assertion))" + extra
    }

    /// Trusts `issuer` (its JWKS URI, or its set as a static `jwks`), expecting `audience`.
    @discardableResult
    static func trust(_ client: any TestClientProtocol, _ issuer: IssuerFake, audience: String = "https://signet.test", fixed: Bool = false)
        async throws -> String
    {
        let keys = fixed ? #""jwks":\#(issuer.jwksJSON)"# : #""jwks_uri":"\#(issuer.jwksURI)""#
        let response = try await client.admin(
            .post, "/v1/trusted-issuers", json: #"{"issuer":"\#(issuer.issuer)",\#(keys),"audience":"\#(audience)"}"#)
        XCTAssertEqual(response.status, .created, response.text)
        return try XCTUnwrap(response.object["id"] as? String)
    }

    /// Registers an agent whose federated identity is (`issuer`, `subject`).
    static func federatedAgent(_ client: any TestClientProtocol, _ issuer: IssuerFake, subject: String = workload) async throws
        -> (id: String, clientID: String)
    {
        let response = try await client.admin(
            .post, "/v1/agents",
            json: #"{"name":"w-\#(UUID().uuidString.prefix(8))","owner":"fed","scopes":["read","write"],"#
                + #""federated_subject":{"issuer":"\#(issuer.issuer)","subject":"\#(subject)"}}"#)
        XCTAssertEqual(response.status, .created, response.text)
        XCTAssertEqual(response.object["federated_subject"] as? NSDictionary, ["issuer": issuer.issuer, "subject": subject])
        return (try XCTUnwrap(response.object["id"] as? String), try XCTUnwrap(response.object["client_id"] as? String))
    }

    static func assertRefused(
        _ response: TestResponse, _ message: String, status: HTTPResponse.Status = .badRequest, error: String = "invalid_grant",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(response.status, status, "\(message): \(response.text)", file: file, line: line)
        XCTAssertEqual(response.object["error"] as? String, error, "\(message): \(response.text)", file: file, line: line)
    }

    func testAWorkloadGetsItsAgentsTokenByItsIssuersAssertionAndEveryForgeryIsRefused() async throws {
        let published = IssuerFake.newKey()
        let unpublished = IssuerFake.newKey()
        let issuer = try await IssuerFake.start(issuer: "https://spire-\(UUID().uuidString.prefix(6)).example.org", keys: [published])
        defer { Task { await issuer.stop() } }
        let stranger = try await IssuerFake.start(issuer: "https://stranger.example.org", keys: [published], serve: false)
        let signet = try await TestSignet.make(["TRUSTED_ISSUER_ALLOW_HTTP": "true"])
        try await signet.test { client in
            try await Self.trust(client, issuer)
            let agent = try await Self.federatedAgent(client, issuer)
            let audience = "https://signet.test"

            let response = try await client.tokenRequest(
                Self.form(issuer.assertion(subject: Self.workload, audience: audience, key: published), extra: "&scope=read"))
            XCTAssertEqual(response.status, .ok, response.text)
            let token = try XCTUnwrap(response.object["access_token"] as? String)
            let claims = jwtClaims(token)
            XCTAssertEqual(claims["sub"] as? String, agent.id)
            XCTAssertEqual(claims["client_id"] as? String, agent.clientID)
            XCTAssertEqual(claims["scope"] as? String, "read")
            XCTAssertNil(claims["credential_id"], "no Signet credential was used")
            try await assertEqual(await client.isActive(token), true)
            XCTAssertEqual(issuer.fetches, 1, "the keys were read once")

            let used = issuer.assertion(subject: Self.workload, audience: audience, key: published)
            let first = try await client.tokenRequest(Self.form(used))
            XCTAssertEqual(first.status, .ok, first.text)
            Self.assertRefused(try await client.tokenRequest(Self.form(used)), "a replayed assertion")

            let now = Int(Date().timeIntervalSince1970)
            let attempts: [(String, String)] = [
                (issuer.assertion(subject: Self.workload, audience: "https://elsewhere.test", key: published), "another audience"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["exp": now - 1]), "an expired assertion"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["iat": now - 900]), "issued 15 min ago"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["iat": nil]), "no iat"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["jti": nil]), "no jti"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["nbf": now + 600]), "nbf ahead"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: published, ["exp": now + 200_000]), "exp days ahead"),
                (
                    issuer.assertion(subject: "spiffe://example.org/ns/prod/sa/other", audience: audience, key: published),
                    "an unmapped subject"
                ),
                (stranger.assertion(subject: Self.workload, audience: audience, key: published), "an issuer nobody trusts"),
                (issuer.assertion(subject: Self.workload, audience: audience, key: unpublished), "a key the issuer never published"),
                (
                    issuer.assertion(
                        subject: Self.workload, audience: audience, key: published, header: ["kid": published.kid, "alg": "HS256"]),
                    "alg switched to HS256"
                ),
            ]
            for (assertion, name) in attempts {
                Self.assertRefused(try await client.tokenRequest(Self.form(assertion)), name)
            }
            // The unknown kid read the keys again once; a second one within 30 s reads nothing.
            XCTAssertEqual(issuer.fetches, 2)
            Self.assertRefused(
                try await client.tokenRequest(Self.form(issuer.assertion(subject: Self.workload, audience: audience, key: unpublished))),
                "a key never published, again")
            XCTAssertEqual(issuer.fetches, 2, "a flood of unknown kids costs one read per 30 s")

            Self.assertRefused(
                try await client.tokenRequest(
                    Self.form(issuer.assertion(subject: Self.workload, audience: audience, key: published)),
                    basic: (agent.clientID, "not-a-secret")), "client credentials beside the assertion", error: "invalid_request")
            Self.assertRefused(
                try await client.tokenRequest("grant_type=\(formEncode(Self.grant))"), "no assertion", error: "invalid_request")

            // One agent per federated identity.
            let duplicate = try await client.admin(
                .post, "/v1/agents",
                json: #"{"name":"dup","owner":"fed","federated_subject":{"issuer":"\#(issuer.issuer)","subject":"\#(Self.workload)"}}"#)
            XCTAssertEqual(duplicate.status, .conflict, duplicate.text)

            // Suspended: invalid_grant; its federated identity removed: its tokens end.
            var patch = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"suspended"}"#)
            XCTAssertEqual(patch.status, .ok)
            Self.assertRefused(
                try await client.tokenRequest(Self.form(issuer.assertion(subject: Self.workload, audience: audience, key: published))),
                "a suspended agent")
            patch = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"active"}"#)
            let again = try await client.tokenRequest(
                Self.form(issuer.assertion(subject: Self.workload, audience: audience, key: published)))
            let second = try XCTUnwrap(again.object["access_token"] as? String, again.text)
            patch = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"federated_subject":null}"#)
            XCTAssertEqual(patch.status, .ok, patch.text)
            try await assertEqual(await client.isActive(second), false, "a token of a federated identity the agent no longer has")
        }
    }

    func testAStaticKeySetTheAdminAPIAndAJWKSBombAndAnUnreachableIssuer() async throws {
        let key = IssuerFake.newKey()
        let fixed = try await IssuerFake.start(issuer: "https://k8s-\(UUID().uuidString.prefix(6)).example.org", keys: [key], serve: false)
        let bomb = try await IssuerFake.start(issuer: "https://bomb-\(UUID().uuidString.prefix(6)).example.org", keys: [key])
        defer { Task { await bomb.stop() } }
        bomb.setOversized(10 * 1024 * 1024)
        let signet = try await TestSignet.make(["TRUSTED_ISSUER_ALLOW_HTTP": "true"])
        try await signet.test { client in
            let fixedID = try await Self.trust(client, fixed, fixed: true)
            let subject = "system:serviceaccount:prod:worker"
            _ = try await Self.federatedAgent(client, fixed, subject: subject)
            let ok = try await client.tokenRequest(Self.form(fixed.assertion(subject: subject, audience: "https://signet.test", key: key)))
            XCTAssertEqual(ok.status, .ok, ok.text)

            let listed = try await client.admin(.get, "/v1/trusted-issuers")
            let items = try XCTUnwrap(listed.object["items"] as? [[String: Any]])
            XCTAssertTrue(items.contains { $0["id"] as? String == fixedID && $0["jwks"] is [String: Any] }, listed.text)
            let duplicate = try await client.admin(
                .post, "/v1/trusted-issuers", json: #"{"issuer":"\#(fixed.issuer)","jwks":\#(fixed.jwksJSON),"audience":"x"}"#)
            XCTAssertEqual(duplicate.status, .conflict, duplicate.text)
            for body in [
                #"{"issuer":"a","audience":"b"}"#, #"{"issuer":"a","audience":"b","jwks_uri":"ftp://x/keys"}"#,
                #"{"issuer":"a","audience":"b","jwks_uri":"http://keys.example.org/jwks"}"#,
                #"{"issuer":"a","audience":"b","jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}}"#,
                #"{"issuer":"a b","audience":"b","jwks_uri":"https://x/k"}"#,
                #"{"issuer":"a","audience":"b","jwks_uri":"https://x/k","x":1}"#,
            ] {
                let refused = try await client.admin(.post, "/v1/trusted-issuers", json: body)
                XCTAssertEqual(refused.status, .badRequest, "\(body): \(refused.text)")
            }

            // A 10 MB key set is refused at the size cap: 503, within the fetch's bound, nothing kept.
            try await Self.trust(client, bomb)
            _ = try await Self.federatedAgent(client, bomb)
            let started = ContinuousClock.now
            let bombed = try await client.tokenRequest(
                Self.form(bomb.assertion(subject: Self.workload, audience: "https://signet.test", key: key)))
            XCTAssertEqual(bombed.status, .serviceUnavailable, bombed.text)
            XCTAssertNotNil(bombed.headers[.retryAfter])
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(3))
            let health = try await client.operations("/health/detailed")
            let issuers = try XCTUnwrap(health.object["trustedIssuers"] as? [String: Any], health.text)
            XCTAssertEqual(issuers["status"] as? String, "degraded", health.text)
            XCTAssertTrue((issuers["message"] as? String)?.contains(bomb.issuer) == true, health.text)

            // Removing an issuer ends its grant at once on this instance, and the tokens it vouched for.
            let fixedToken = try XCTUnwrap(ok.object["access_token"] as? String)
            try await assertEqual(await client.isActive(fixedToken), true)
            let deleted = try await client.admin(.delete, "/v1/trusted-issuers/\(fixedID)")
            XCTAssertEqual(deleted.status, .noContent)
            Self.assertRefused(
                try await client.tokenRequest(Self.form(fixed.assertion(subject: subject, audience: "https://signet.test", key: key))),
                "an issuer removed")
            try await assertEqual(await client.isActive(fixedToken), false, "a token of a removed issuer")
            let again = try await client.admin(.delete, "/v1/trusted-issuers/\(fixedID)")
            XCTAssertEqual(again.status, .notFound)
        }
    }

    /// `RemoteJWKS`'s rules at exact instants of a manual clock, against a real HTTP key server
    /// that counts its reads: one read per unknown kid per 30 s, a known key answered at once and
    /// read again behind it, a failed read not retried for 30 s while keys are held, keys unusable
    /// 24 h after their last read, and with none usable a failure answered again for 5 s.
    func testIssuerKeysAreReadOnTheirScheduleAndNeverOnAnAttackersDemand() async throws {
        let key = IssuerFake.newKey()
        let issuer = try await IssuerFake.start(keys: [key])
        defer { Task { await issuer.stop() } }
        let clock = ManualClock()
        let keys = RemoteJWKS(url: issuer.jwksURI, client: .shared, timeout: .seconds(2), clock: { clock.now })

        try await assertEqual(try await keys.key(kid: key.kid)?.kid, key.kid)
        XCTAssertEqual(issuer.fetches, 1)
        try await assertEqual(try await keys.key(kid: "made-up-1") == nil, true)
        XCTAssertEqual(issuer.fetches, 2, "an unknown kid reads the keys again")
        for index in 0..<20 { _ = try await keys.key(kid: "made-up-\(index + 2)") }
        XCTAssertEqual(issuer.fetches, 2, "and no other within 30 s")
        clock.advance(by: .seconds(31))
        _ = try await keys.key(kid: "made-up-99")
        XCTAssertEqual(issuer.fetches, 3)

        clock.advance(by: .seconds(301))
        try await assertEqual(try await keys.key(kid: key.kid)?.kid, key.kid, "due for a read: answered from the cache")
        try await eventually("the read behind it") { issuer.fetches == 4 }

        issuer.setOversized(100 * 1024)
        clock.advance(by: .seconds(301))
        try await assertEqual(try await keys.key(kid: key.kid)?.kid, key.kid)
        try await eventually("the failed read behind it") { keys.status().failingSince != nil }
        XCTAssertEqual(issuer.fetches, 5)
        XCTAssertEqual(keys.status().lastError?.contains("more than 65536 bytes"), true, keys.status().lastError ?? "")
        try await assertEqual(try await keys.key(kid: key.kid)?.kid, key.kid)
        XCTAssertEqual(issuer.fetches, 5, "no read again within 30 s of a failure")

        clock.advance(by: .seconds(86_400))
        do {
            _ = try await keys.key(kid: key.kid)
            XCTFail("keys a day old are not used while the issuer fails")
        } catch {}
        XCTAssertEqual(issuer.fetches, 6)
        do {
            _ = try await keys.key(kid: key.kid)
            XCTFail("still failing")
        } catch {}
        XCTAssertEqual(issuer.fetches, 6, "with none usable, a failure is answered again for 5 s without a read")

        issuer.setOversized(nil)
        clock.advance(by: .seconds(6))
        try await assertEqual(try await keys.key(kid: key.kid)?.kid, key.kid)
        XCTAssertEqual(issuer.fetches, 7)
        XCTAssertNil(keys.status().failingSince, "recovered")
    }
}
