import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Service
import Synchronization
import XCTest

/// The wall clock of a test Signet: token times, credential expiry and grace periods all read it,
/// so a test moves time instead of sleeping.
final class TestWallClock: Sendable {
    private let current = Mutex(Date())

    var now: @Sendable () -> Date { { self.current.withLock { $0 } } }

    func advance(seconds: Double) {
        current.withLock { $0 += seconds }
    }
}

/// Tokens are bound to what minted them (issue 10, point 3): the credential, the agent's status
/// and its scopes, read at once by introspection and by the routes that act on a token.
final class TokenBindingTests: XCTestCase {
    /// Rotation without downtime across instances: the second instance has the client cached
    /// (for a minute here, and not listening for changes, so only a new read can know the new
    /// secret) when the first one
    /// rotates; the new secret works on the second at once, and wrong secrets never cost more
    /// than one read each.
    func testASecretRotatedOnAnotherInstanceWorksAtOnce() async throws {
        let database = try await TestDatabase.create()
        let lookups = Atomic<Int>(0)
        let first = try await TestSignet.make(["SIGNET_INSTANCE_ID": "first"], database: database)
        // Not listening, so no notification drops the entry: only the read again can help.
        let second = try await TestSignet.make(
            ["SIGNET_INSTANCE_ID": "second"], database: database, onClientLookup: { lookups.add(1, ordering: .relaxed) },
            credentialCacheFallbackTTL: .seconds(60), listensForChanges: false)
        try await first.test { one in
            try await second.test { two in
                let agent = try await one.agent()
                _ = try await two.accessToken(for: agent)  // cached on the second instance now
                let rotated = try await one.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":60}"#)
                let newSecret = try XCTUnwrap(rotated.object["client_secret"] as? String)
                // A cached entry is read again for an unknown secret once it is this old (the bound
                // on reads a wrong-secret flood can cause); a real client's next request comes later.
                try await Task.sleep(for: ClientDirectory.refetchIntervalWithoutListener)
                let before = lookups.load(ordering: .relaxed)
                _ = try await two.accessToken(for: agent, secret: newSecret)
                _ = try await two.accessToken(for: agent)  // the old secret, in its grace period
                XCTAssertEqual(lookups.load(ordering: .relaxed) - before, 1, "one read for the unknown secret, none after")

                let flood = lookups.load(ordering: .relaxed)
                for _ in 0..<30 {
                    let wrong = try await two.tokenRequest(
                        "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=sgs_wrong")
                    XCTAssertEqual(wrong.status, .unauthorized, wrong.text)
                }
                XCTAssertLessThanOrEqual(lookups.load(ordering: .relaxed) - flood, 30, "never two reads for one wrong secret")
            }
        }
    }

    func testRevokingTheMintingCredentialEndsItsTokensOnEveryInstance() async throws {
        let database = try await TestDatabase.create()
        let first = try await TestSignet.make(["SIGNET_INSTANCE_ID": "first"], database: database)
        let second = try await TestSignet.make(["SIGNET_INSTANCE_ID": "second"], database: database)
        try await first.test { one in
            try await second.test { two in
                let agent = try await one.agent(scopes: ["read", "credentials:rotate"])
                // The "leaked" secret is rotated out with a grace period; its token still works.
                let leakedToken = try await one.accessToken(for: agent)
                let rotated = try await one.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":3600}"#)
                let leakedCredential = try XCTUnwrap((rotated.object["previous"] as? [String: Any])?["id"] as? String)
                let newSecret = try XCTUnwrap(rotated.object["client_secret"] as? String)
                let freshToken = try await one.accessToken(for: agent, secret: newSecret)
                try await assertEqual(await two.isActive(leakedToken), true)

                // The operator deletes the leaked credential on the first instance.
                try await assertEqual(
                    await one.admin(.delete, "/v1/agents/\(agent.id)/credentials/\(leakedCredential)").status, .noContent)
                try await assertEqual(await one.isActive(leakedToken), false)
                try await assertEqual(await two.isActive(leakedToken), false, "introspection on the other instance, at once")
                let rotateWithLeaked = try await two.rotateOwn(agent, json: #"{"graceSeconds":0}"#)
                XCTAssertEqual(
                    rotateWithLeaked.status, .unauthorized, "a revoked credential cannot rotate: \(rotateWithLeaked.text)")
                let rotateWithToken = try await two.execute(
                    uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                    headers: [.authorization: "Bearer \(freshToken)", .contentType: "application/json"],
                    body: ByteBuffer(string: #"{"graceSeconds":0}"#))
                XCTAssertEqual(rotateWithToken.status, .unauthorized, "a token, even a live one, rotates nothing")
                // The token of the live credential is untouched, and the live credential may rotate.
                try await assertEqual(await two.isActive(freshToken), true)
                let rotateWithFresh = try await two.rotateOwn(agent, secret: newSecret, json: #"{"graceSeconds":60}"#)
                XCTAssertEqual(rotateWithFresh.status, .created, rotateWithFresh.text)
            }
        }
    }

    func testSuspendingOrRemovingAScopeEndsTokensForGood() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "write"])
            let before = try await client.accessToken(for: agent)
            try await assertEqual(await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"suspended"}"#).status, .ok)
            try await assertEqual(await client.isActive(before), false)
            try await assertEqual(await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"active"}"#).status, .ok)
            try await assertEqual(await client.isActive(before), false, "re-activation does not revive tokens issued before the suspension")
            let after = try await client.accessToken(for: agent)
            try await assertEqual(await client.isActive(after), true, "a token issued after re-activation is live at once")

            // Removing a scope ends the tokens issued before; re-adding it does not revive them.
            try await assertEqual(await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"scopes":["read"]}"#).status, .ok)
            let removed = try await client.introspect(after)
            XCTAssertEqual(removed["active"] as? Bool, false, "a token carrying a removed scope no longer lists it: it is inactive")
            let narrowed = try await client.accessToken(for: agent)
            try await assertEqual(await client.introspect(narrowed)["scope"] as? String, "read")
            try await assertEqual(
                await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"scopes":["read","write"]}"#).status, .ok)
            try await assertEqual(await client.isActive(after), false, "re-adding the scope does not revive older tokens")
            try await assertEqual(await client.isActive(narrowed), true, "adding a scope ends nothing")
            try await assertEqual(await client.introspect(narrowed)["scope"] as? String, "read")
        }
    }

    func testIntrospectionTellsAClientOnlyAboutItsOwnTokens() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let owner = try await client.agent()
            let other = try await client.agent()
            let token = try await client.accessToken(for: owner)
            func introspect(as agent: TestAgent) async throws -> [String: Any] {
                let response = try await client.execute(
                    uri: "/oauth/introspect", method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(
                        string: "token=\(token)&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"))
                XCTAssertEqual(response.status, .ok, response.text)
                return response.object
            }
            try await assertEqual(await introspect(as: owner)["active"] as? Bool, true)
            let foreign = try await introspect(as: other)
            XCTAssertEqual(foreign["active"] as? Bool, false)
            XCTAssertNil(foreign["sub"], "nothing about another client's token")
            try await assertEqual(await client.isActive(token), true, "the admin sees every token")
        }
    }

    func testGracePeriodsAndTokenExpiryFollowTheInjectedClock() async throws {
        let clock = TestWallClock()
        let signet = try await TestSignet.make(["TOKEN_TTL_SECONDS": "300"], now: clock.now)
        try await signet.test { client in
            let agent = try await client.agent()
            let rotated = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":60}"#)
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let newSecret = try XCTUnwrap(rotated.object["client_secret"] as? String)
            let oldToken = try await client.accessToken(for: agent)
            let newToken = try await client.accessToken(for: agent, secret: newSecret)

            clock.advance(seconds: 59)
            _ = try await client.accessToken(for: agent)
            try await assertEqual(await client.isActive(oldToken), true, "within the grace period")

            clock.advance(seconds: 2)
            let old = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(old.status, .unauthorized, "the old secret stops at the end of its grace period")
            try await assertEqual(await client.isActive(oldToken), false, "and so do the tokens it minted")
            try await assertEqual(await client.isActive(newToken), true)
            let listed = try await client.admin(.get, "/v1/agents/\(agent.id)/credentials")
            let items = try XCTUnwrap(listed.object["items"] as? [[String: Any]])
            XCTAssertEqual(items.map { $0["state"] as? String }, ["active", "expired"])
            XCTAssertFalse(listed.text.contains("sgs_"), "no secret in the list")

            clock.advance(seconds: 300)
            try await assertEqual(await client.isActive(newToken), false, "past exp")
        }
    }
}
