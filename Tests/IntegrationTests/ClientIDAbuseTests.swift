import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// What an unauthenticated party can send as a client id must not reach libpq altered, fill the
/// audit trail, or pick a rate-limit key (issue 10, points 1 and 2).
final class ClientIDAbuseTests: XCTestCase {
    func testANULInTheClientIDGetsNoTokenAndNoAuditRow() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let before = try await Self.deniedEvents(agent.id)
            let posted = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)%00junk&client_secret=\(formEncode(agent.secret))")
            XCTAssertEqual(posted.status, .unauthorized, posted.text)
            XCTAssertEqual(posted.errorCode, "invalid_client")
            XCTAssertNil(posted.object["access_token"])
            let basic = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID + "\u{0}junk", agent.secret))
            XCTAssertEqual(basic.status, .unauthorized, basic.text)
            XCTAssertNil(basic.object["access_token"])
            let wrongSecret = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)%00x&client_secret=wrong")
            XCTAssertEqual(wrongSecret.status, .unauthorized)
            let after = try await Self.deniedEvents(agent.id)
            XCTAssertEqual(after.attempts, before.attempts, "attempts under a malformed id write no token.denied row for the victim")
            // The real id still works.
            _ = try await client.accessToken(for: agent)
        }
    }

    func testMalformedClientIDsAreUnknownAndShareTheAddressBudget() async throws {
        let signet = try await TestSignet.make(["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "10", "REDIS_RATE_LIMIT_ENABLED": "false"])
        try await signet.test { client in
            let ids = [
                "sgc_short", "sgc_" + String(repeating: "A", count: 23), "sgc_AAAAAAAAAAAAAAAAAAAAA=", "SGC_AAAAAAAAAAAAAAAAAAAAAA",
                "sgc_" + String(repeating: "A", count: 4000),
            ]
            for id in ids {
                let posted = try await client.tokenRequest(
                    "grant_type=client_credentials&client_id=\(formEncode(id))&client_secret=whatever")
                XCTAssertEqual(posted.status, .unauthorized, "form \(id.prefix(40)): \(posted.text)")
                XCTAssertEqual(posted.errorCode, "invalid_client")
                XCTAssertNil(posted.object["access_token"])
                let basic = try await client.tokenRequest("grant_type=client_credentials", basic: (id, "whatever"))
                XCTAssertEqual(basic.status, .unauthorized, "Basic \(id.prefix(40)): \(basic.text)")
                XCTAssertEqual(basic.errorCode, "invalid_client")
                XCTAssertNil(basic.object["access_token"])
            }
            // Ten malformed ids, by form and by Basic, spent the address's budget of ten: they
            // were one subject, not a fresh key each.
            let eleventh = try await client.tokenRequest("grant_type=client_credentials&client_id=sgc_other&client_secret=x")
            XCTAssertEqual(eleventh.status, .tooManyRequests, "malformed ids count against the address, not a fresh key each")
        }
    }

    func testANULInAnyStoredValueIsA400NotA500() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let response = try await client.execute(
                uri: "/v1/agents", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"name":"nul-meta","owner":"o","metadata":{"k":"a\u0000b"}}"#))
            XCTAssertEqual(response.status, .badRequest, response.text)
            XCTAssertEqual(response.errorCode, "invalid_request")
        }
    }

    /// The agent's `token.denied` rows, and the refused requests they count.
    static func deniedEvents(_ agentID: String) async throws -> (rows: Int, attempts: Int) {
        let row = try await TestDatabase.query(
            """
            SELECT count(*) AS rows, coalesce(sum(count), 0) AS attempts FROM audit_events
            WHERE agent_id = $1::uuid AND action = 'token.denied'
            """, [agentID]
        ).first
        return (Int(row?["rows"] ?? "") ?? -1, Int(row?["attempts"] ?? "") ?? -1)
    }
}
