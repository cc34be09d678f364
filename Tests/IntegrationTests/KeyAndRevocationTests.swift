import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// Signing-key rotation, revocation and introspection, across instances that share only the
/// database.
final class KeyAndRevocationTests: XCTestCase {
    func testKeyRotationKeepsOldTokensVerifiableUntilTheirKeyIsUnpublished() async throws {
        let database = try await TestDatabase.create()
        let signet = try await TestSignet.make(database: database)
        try await signet.test { client in
            let agent = try await client.agent()
            let before = try await client.accessToken(for: agent)
            let rotated = try await client.admin(.post, "/v1/keys/rotate")
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let newKid = try XCTUnwrap(rotated.object["kid"] as? String)
            let oldKid = try XCTUnwrap(rotated.object["retiredKid"] as? String)
            XCTAssertEqual(rotated.object["retiredPublishedForSeconds"] as? Int, 900 + 60)

            let jwks = try await client.execute(uri: "/.well-known/jwks.json", method: .get).object
            let kids = Set((jwks["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String })
            XCTAssertEqual(kids, [newKid, oldKid], "current and previous key both published")
            let (oldHeader, _) = try IndependentVerifier.verify(before, jwks: jwks)
            XCTAssertEqual(oldHeader["kid"] as? String, oldKid)
            try await assertEqual(await client.isActive(before), true)

            let after = try await client.accessToken(for: agent)
            let (newHeader, _) = try IndependentVerifier.verify(after, jwks: jwks)
            XCTAssertEqual(newHeader["kid"] as? String, newKid)

            // Once every token of the old key has expired, the key leaves the JWKS.
            _ = try await TestDatabase.query(
                "UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE kid = $1",
                [oldKid],
                url: try TestDatabase.url(applicationName: "test", database: database)
            )
            try await eventually("the retired key leaves the JWKS", timeout: .seconds(10)) {
                let keys = try await client.execute(uri: "/.well-known/jwks.json", method: .get).object["keys"] as? [[String: Any]]
                return keys?.compactMap { $0["kid"] as? String } == [newKid]
            }
            try await assertEqual(await client.isActive(before), false)
        }
    }

    func testInstancesShareKeysRevocationsAndDeactivations() async throws {
        let database = try await TestDatabase.create()
        let first = try await TestSignet.make(["SIGNET_INSTANCE_ID": "first"], database: database)
        let second = try await TestSignet.make(["SIGNET_INSTANCE_ID": "second"], database: database)
        try await first.test { one in
            try await second.test { two in
                let agent = try await one.agent()
                let token = try await one.accessToken(for: agent)
                try await assertEqual(await two.isActive(token), true, "a token from one instance is valid on the other")

                // Revoked on the first, inactive on the second.
                let revoke = try await one.execute(
                    uri: "/oauth/revoke",
                    method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(
                        string: "token=\(token)&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
                    )
                )
                XCTAssertEqual(revoke.status, .ok)
                try await assertEqual(await two.isActive(token), false)

                // A key rotated on the first signs tokens the second accepts at once.
                try await assertEqual(await one.admin(.post, "/v1/keys/rotate").status, .created)
                let fresh = try await one.accessToken(for: agent)
                try await assertEqual(await two.isActive(fresh), true)
                try await eventually("the second instance signs with the new key", timeout: .seconds(10)) {
                    let token = try await two.accessToken(for: agent)
                    let jwks = try await one.execute(uri: "/.well-known/jwks.json", method: .get).object
                    let current = (jwks["keys"] as? [[String: Any]])?.first?["kid"] as? String
                    return (try? IndependentVerifier.verify(token, jwks: jwks).header["kid"] as? String) == current
                }

                // Deactivated through the first: the second refuses new tokens within the cache time.
                try await assertEqual(await one.admin(.delete, "/v1/agents/\(agent.id)").status, .noContent)
                try await assertEqual(await two.isActive(fresh), false)
                try await eventually("the second instance refuses the deactivated agent", timeout: .seconds(5)) {
                    try await two.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret)).status
                        == .unauthorized
                }
            }
        }
    }

    func testIntrospectionAndRevocationRequireAuthentication() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let other = try await client.agent()
            let token = try await client.accessToken(for: agent)
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            for path in ["/oauth/introspect", "/oauth/revoke"] {
                let anonymous = try await client.execute(
                    uri: path, method: .post, headers: form, body: ByteBuffer(string: "token=\(token)"))
                XCTAssertEqual(anonymous.status, .unauthorized, path)
                XCTAssertEqual(anonymous.errorCode, "invalid_client", path)
                var wrong = form
                wrong[.authorization] = "Bearer \(token)"
                let withAccessToken = try await client.execute(
                    uri: path, method: .post, headers: wrong, body: ByteBuffer(string: "token=\(token)"))
                XCTAssertEqual(withAccessToken.status, .unauthorized, "an access token is not a credential here")
            }
            // A client introspects its own tokens with its credentials.
            let introspected = try await client.execute(
                uri: "/oauth/introspect",
                method: .post,
                headers: form,
                body: ByteBuffer(string: "token=\(token)&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))")
            )
            XCTAssertEqual(introspected.object["active"] as? Bool, true)
            XCTAssertEqual(introspected.object["sub"] as? String, agent.id)
            // Another client cannot revoke it (RFC 7009: answered 200, nothing revoked).
            let foreign = try await client.execute(
                uri: "/oauth/revoke",
                method: .post,
                headers: form,
                body: ByteBuffer(string: "token=\(token)&client_id=\(formEncode(other.clientID))&client_secret=\(formEncode(other.secret))")
            )
            XCTAssertEqual(foreign.status, .ok)
            try await assertEqual(await client.isActive(token), true)
            // Garbage, expired-looking and unknown tokens are inactive, never errors.
            for junk in ["junk", "a.b.c", token + "x"] {
                try await assertEqual(await client.isActive(junk), false, junk)
            }
        }
    }

    func testAuditTrailRecordsEveryChangeAndIsAppendOnly() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            _ = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"scopes":["read"]}"#)
            let rotated = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":60}"#)
            let newID = try XCTUnwrap(rotated.object["id"] as? String)
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(agent.id)/credentials/\(newID)").status, .noContent)
            _ = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, "sgs_wrong"))
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(agent.id)").status, .noContent)

            let page = try await client.admin(.get, "/v1/audit?agentId=\(agent.id)&limit=3")
            let first = try XCTUnwrap(page.object["items"] as? [[String: Any]])
            let cursor = try XCTUnwrap(page.object["nextCursor"] as? String)
            let next = try await client.admin(.get, "/v1/audit?agentId=\(agent.id)&after=\(cursor)")
            let rest = try XCTUnwrap(next.object["items"] as? [[String: Any]])
            let events = first + rest
            XCTAssertEqual(
                events.map { $0["action"] as? String },
                ["agent.register", "agent.update", "credential.rotate", "credential.revoke", "token.denied", "agent.deactivate"]
            )
            XCTAssertEqual(events.first?["actor"] as? String, "admin")
            XCTAssertTrue(events.allSatisfy { ($0["requestId"] as? String)?.isEmpty == false })
            XCTAssertFalse(page.text.contains("sgs_"), "no secret in the audit trail")

            do {
                _ = try await TestDatabase.query("UPDATE audit_events SET actor = 'someone' WHERE agent_id = $1::uuid", [agent.id])
                XCTFail("audit events must not be editable")
            } catch {}
            for bad in ["agentId=nope", "after=-1", "limit=0"] {
                try await assertEqual(await client.admin(.get, "/v1/audit?\(bad)").status, .badRequest, bad)
            }
        }
    }
}
