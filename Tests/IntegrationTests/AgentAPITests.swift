import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// The admin registry API against a real PostgreSQL: every status the API promises.
final class AgentAPITests: XCTestCase {
    func testRegistrationReturnsTheSecretOnceAndNeverAgain() async throws {
        let signet = try await TestSignet.make()
        let owner = unique("owner")
        try await signet.test { client in
            let response = try await client.admin(
                .post,
                "/v1/agents",
                json: #"{"name":"crawler","owner":"\#(owner)","scopes":["read","write:reports"],"metadata":{"team":"search"}}"#
            )
            XCTAssertEqual(response.status, .created)
            let body = response.object
            let id = try XCTUnwrap(body["id"] as? String)
            let secret = try XCTUnwrap(body["client_secret"] as? String)
            XCTAssertTrue(secret.hasPrefix("sgs_"))
            XCTAssertEqual(secret.count, 4 + 43, "256 bits in base64url")
            XCTAssertTrue((body["client_id"] as? String)?.hasPrefix("sgc_") == true)
            XCTAssertEqual(body["scopes"] as? [String], ["read", "write:reports"])
            XCTAssertEqual(body["status"] as? String, "active")
            XCTAssertEqual((body["metadata"] as? [String: String])?["team"], "search")
            XCTAssertNotNil((body["credential"] as? [String: Any])?["id"])
            XCTAssertEqual(response.headers[.location], "/v1/agents/\(id)")
            XCTAssertEqual(response.headers[.cacheControl], "no-store")

            // Every later read, single or listed, has no secret.
            let shown = try await client.admin(.get, "/v1/agents/\(id)")
            XCTAssertEqual(shown.status, .ok)
            XCTAssertNil(shown.object["client_secret"])
            XCTAssertFalse(shown.text.contains(secret))
            let listed = try await client.admin(.get, "/v1/agents?owner=\(owner)")
            XCTAssertFalse(listed.text.contains(secret))
            let patched = try await client.admin(.patch, "/v1/agents/\(id)", json: #"{"scopes":["read"]}"#)
            XCTAssertFalse(patched.text.contains(secret))

            // The database holds only an HMAC of it.
            let rows = try await TestDatabase.query(
                "SELECT encode(secret_hash, 'hex') AS hash FROM agent_credentials WHERE agent_id = $1::uuid",
                [id]
            )
            XCTAssertEqual(rows.count, 1)
            XCTAssertEqual(rows.first?["hash"]?.count, 64)
            XCTAssertFalse(rows.first?["hash"]?.contains(secret) ?? true)
        }
        XCTAssertFalse(signet.logText.isEmpty)
        XCTAssertFalse(signet.logText.contains("sgs_"), "no client secret in any log line")
        XCTAssertFalse(signet.logText.contains(TestSignet.adminToken), "no admin token in any log line")
    }

    func testAdminTokenIsRequired() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let missing = try await client.execute(uri: "/v1/agents", method: .get)
            XCTAssertEqual(missing.status, .unauthorized)
            XCTAssertEqual(missing.errorCode, "unauthorized")
            XCTAssertEqual(missing.headers[.wwwAuthenticate], #"Bearer realm="signet-admin""#)
            let wrong = try await client.execute(
                uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer \(TestSignet.adminToken)x"])
            XCTAssertEqual(wrong.status, .unauthorized)
            let prefix = try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer test-admin"])
            XCTAssertEqual(prefix.status, .unauthorized)
            let basic = try await client.execute(
                uri: "/v1/agents", method: .get, headers: [.authorization: "Basic \(TestSignet.adminToken)"])
            XCTAssertEqual(basic.status, .unauthorized)
            let write = try await client.execute(
                uri: "/v1/agents",
                method: .post,
                headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"name":"x","owner":"y"}"#)
            )
            XCTAssertEqual(write.status, .unauthorized)
        }
    }

    func testInvalidInputGetsAClear400AndWritesNothing() async throws {
        let signet = try await TestSignet.make()
        let owner = unique("owner")
        try await signet.test { client in
            let cases: [(String, String)] = [
                (#"{"name":"a","owner":"\#(owner)""#, "the body is not valid JSON"),
                (#"["name"]"#, "the body must be a JSON object"),
                (#"{"name":"","owner":"\#(owner)"}"#, "name must not be empty"),
                (
                    #"{"name":"\#(String(repeating: "n", count: 200))","owner":"\#(owner)"}"#,
                    "name must be at most 128 characters (got 200)"
                ),
                (#"{"name":"a","owner":"\#(owner)","scopes":["bad scope"]}"#, "is not a valid scope token"),
                (#"{"name":"a","owner":"\#(owner)","role":"admin"}"#, "unknown field \"role\""),
                (#"{"owner":"\#(owner)"}"#, "name is required"),
            ]
            for (json, message) in cases {
                let response = try await client.admin(.post, "/v1/agents", json: json)
                XCTAssertEqual(response.status, .badRequest, json)
                XCTAssertEqual(response.errorCode, "invalid_request", json)
                XCTAssertTrue((response.object["error_description"] as? String)?.contains(message) == true, "\(json) → \(response.text)")
            }
            let empty = try await client.admin(.post, "/v1/agents", json: "")
            XCTAssertEqual(empty.status, .badRequest)

            let tooLarge = try await client.admin(
                .post,
                "/v1/agents",
                json: #"{"name":"a","owner":"\#(owner)","metadata":{"k":"\#(String(repeating: "x", count: 70_000))"}}"#
            )
            XCTAssertEqual(tooLarge.status, .contentTooLarge)
            XCTAssertEqual(tooLarge.errorCode, "request_too_large")

            let form = try await client.execute(
                uri: "/v1/agents",
                method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "name=a&owner=b")
            )
            XCTAssertEqual(form.status, .unsupportedMediaType)

            let listed = try await client.admin(.get, "/v1/agents?owner=\(owner)")
            XCTAssertEqual((listed.object["items"] as? [Any])?.count, 0, "no partial write")
        }
    }

    func testUnknownAgentsAndRoutesAre404WithJSON() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            for path in ["/v1/agents/\(UUID().uuidString)", "/v1/agents/not-a-uuid", "/v1/agents/'; DROP TABLE agents;--"] {
                let escaped = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
                let response = try await client.admin(.get, escaped)
                XCTAssertEqual(response.status, .notFound, path)
                XCTAssertEqual(response.errorCode, "not_found", path)
            }
            let patch = try await client.admin(.patch, "/v1/agents/\(UUID().uuidString)", json: #"{"status":"suspended"}"#)
            XCTAssertEqual(patch.status, .notFound)
            let delete = try await client.admin(.delete, "/v1/agents/\(UUID().uuidString)")
            XCTAssertEqual(delete.status, .notFound)
            let route = try await client.execute(uri: "/no/such/route", method: .get)
            XCTAssertEqual(route.status, .notFound)
            XCTAssertEqual(route.errorCode, "not_found")
        }
    }

    func testDuplicateNamePerOwnerIsAConflict() async throws {
        let signet = try await TestSignet.make()
        let owner = unique("owner")
        try await signet.test { client in
            let first = try await client.register(name: "Indexer", owner: owner)
            let duplicate = try await client.admin(.post, "/v1/agents", json: #"{"name":"indexer","owner":"\#(owner)"}"#)
            XCTAssertEqual(duplicate.status, .conflict, "names are unique per owner, ignoring case")
            XCTAssertEqual(duplicate.errorCode, "conflict")
            // Another owner may use the name.
            _ = try await client.register(name: "Indexer", owner: unique("other"))
            // Once deactivated, the name is free again.
            let id = try XCTUnwrap(first["id"] as? String)
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(id)").status, .noContent)
            _ = try await client.register(name: "Indexer", owner: owner)
        }
    }

    func testListIsPaginatedByCursor() async throws {
        let signet = try await TestSignet.make()
        let owner = unique("owner")
        try await signet.test { client in
            var registered: [String] = []
            for index in 0..<5 {
                registered.append(try await client.registerID(name: "a\(index)", owner: owner))
            }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = "/v1/agents?owner=\(owner)&limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let response = try await client.admin(.get, query)
                XCTAssertEqual(response.status, .ok)
                let items = try XCTUnwrap(response.object["items"] as? [[String: Any]])
                XCTAssertLessThanOrEqual(items.count, 2)
                seen += items.compactMap { $0["id"] as? String }
                cursor = response.object["nextCursor"] as? String
                pages += 1
            } while cursor != nil && pages < 10
            XCTAssertEqual(pages, 3)
            XCTAssertEqual(seen, registered, "every agent once, in registration order")

            for bad in ["limit=0", "limit=101", "limit=ten", "status=gone", "cursor=forged"] {
                let response = try await client.admin(.get, "/v1/agents?\(bad)")
                XCTAssertEqual(response.status, .badRequest, bad)
                XCTAssertEqual(response.errorCode, "invalid_request", bad)
            }
        }
    }

    func testPatchChangesScopesMetadataAndStatus() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let id = try await client.registerID(owner: unique("owner"))
            let response = try await client.admin(
                .patch,
                "/v1/agents/\(id)",
                json: #"{"scopes":["read","agents:write"],"metadata":{"tier":2},"status":"suspended"}"#
            )
            XCTAssertEqual(response.status, .ok, response.text)
            XCTAssertEqual(response.object["scopes"] as? [String], ["read", "agents:write"])
            XCTAssertEqual((response.object["metadata"] as? [String: Int])?["tier"], 2)
            XCTAssertEqual(response.object["status"] as? String, "suspended")
            let reread = try await client.admin(.get, "/v1/agents/\(id)")
            XCTAssertEqual(reread.object["status"] as? String, "suspended")

            let unknown = try await client.admin(.patch, "/v1/agents/\(id)", json: #"{"owner":"someone-else"}"#)
            XCTAssertEqual(unknown.status, .badRequest)
            let badStatus = try await client.admin(.patch, "/v1/agents/\(id)", json: #"{"status":"deactivated"}"#)
            XCTAssertEqual(badStatus.status, .badRequest)
        }
    }

    func testDeleteDeactivatesTheAgentAndRevokesItsCredentials() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let id = try await client.registerID(owner: unique("owner"))
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(id)").status, .noContent)
            let shown = try await client.admin(.get, "/v1/agents/\(id)")
            XCTAssertEqual(shown.status, .ok)
            XCTAssertEqual(shown.object["status"] as? String, "deactivated")
            let live = try await TestDatabase.query(
                "SELECT count(*) AS n FROM agent_credentials WHERE agent_id = $1::uuid AND revoked_at IS NULL",
                [id]
            )
            XCTAssertEqual(live.first?["n"], "0", "no credential of a deactivated agent stays valid")
            let patch = try await client.admin(.patch, "/v1/agents/\(id)", json: #"{"status":"active"}"#)
            XCTAssertEqual(patch.status, .conflict, "a deactivated agent cannot be revived by PATCH")
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(id)").status, .noContent, "deleting twice is harmless")
        }
    }

    func testResponsesCarryARequestIdAndInstance() async throws {
        let signet = try await TestSignet.make(["SIGNET_INSTANCE_ID": "instance-a"])
        let requestID = HTTPField.Name("X-Request-Id")!
        try await signet.test { client in
            let given = try await client.execute(uri: "/health/live", method: .get, headers: [requestID: "abc-123"])
            XCTAssertEqual(given.headers[requestID], "abc-123")
            XCTAssertEqual(given.headers[.init("Signet-Instance")!], "instance-a")
            let hostile = try await client.execute(uri: "/health/live", method: .get, headers: [requestID: "bad id\u{7f}"])
            let replaced = try XCTUnwrap(hostile.headers[requestID])
            XCTAssertNotEqual(replaced, "bad id\u{7f}", "an unsafe id is replaced")
            XCTAssertGreaterThanOrEqual(replaced.count, 16)
            XCTAssertTrue(replaced.allSatisfy(\.isHexDigit), "by the server's own id: \(replaced)")
            let none = try await client.execute(uri: "/health/live", method: .get)
            XCTAssertNotEqual(none.headers[requestID], replaced, "every request gets its own id")

            // The id the client gave is echoed and logged apart; the server's own id is the request's.
            let registered = try await client.admin(
                .post,
                "/v1/agents",
                json: #"{"name":"traced","owner":"\#(unique("owner"))"}"#,
                headers: [requestID: "trace-42"]
            )
            XCTAssertEqual(registered.headers[requestID], "trace-42")
            let serverID = try XCTUnwrap(registered.headers[.init("Signet-Request-Id")!])
            XCTAssertNotEqual(serverID, "trace-42", "a client cannot choose the server's request id")
            let agentID = try XCTUnwrap(registered.object["id"] as? String)
            let events = try await client.admin(.get, "/v1/audit?agentId=\(agentID)")
            let event = try XCTUnwrap((events.object["items"] as? [[String: Any]])?.first { $0["requestId"] as? String == serverID })
            XCTAssertEqual(event["clientRequestId"] as? String, "trace-42")
            let line = try XCTUnwrap(signet.logs.entries.first { "\($0.message)" == "agent registered" })
            XCTAssertEqual(line.metadata["hb.request.id"]?.description, serverID)
            XCTAssertEqual(line.metadata["client.request.id"]?.description, "trace-42")
        }
    }
}
