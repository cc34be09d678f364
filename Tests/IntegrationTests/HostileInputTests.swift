import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Spec
import XCTest

/// Input that must never hurt (issue 13, item 4): each case is a clear 4xx with a JSON error,
/// never a 500, and the service keeps serving; stored text comes back exactly as sent.
final class HostileInputTests: XCTestCase {
    func testJSONNestingAndKeyCountAreBounded() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let deep = String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000)
            let nested = try await client.admin(.post, "/v1/agents", json: #"{"name":"x","owner":"o","metadata":{"a":\#(deep)}}"#)
            XCTAssertEqual(nested.status, .badRequest)
            XCTAssertTrue(nested.text.contains("nests deeper than \(Limits.maxJSONDepth)"), nested.text)

            let justDeepEnough =
                String(repeating: #"{"k":"#, count: Limits.maxJSONDepth - 2) + "1"
                + String(repeating: "}", count: Limits.maxJSONDepth - 2)
            let allowed = try await client.admin(
                .post, "/v1/agents", json: #"{"name":"\#(unique("deep"))","owner":"o","scopes":["read"],"metadata":\#(justDeepEnough)}"#)
            XCTAssertEqual(allowed.status, .created, "\(Limits.maxJSONDepth) levels are allowed: \(allowed.text)")

            let manyKeys = (0...Limits.maxJSONKeys).map { #""k\#($0)":1"# }.joined(separator: ",")
            let wide = try await client.admin(.post, "/v1/agents", json: #"{"name":"x","owner":"o","metadata":{\#(manyKeys)}}"#)
            XCTAssertEqual(wide.status, .badRequest)
            XCTAssertTrue(wide.text.contains("more than \(Limits.maxJSONKeys) keys"), wide.text)

            // Brackets and colons inside strings, after escaped quotes too, are not structure.
            let quoted = #"\"\\"# + String(repeating: #"[{:\""#, count: 2000)
            let text = try await client.admin(
                .post, "/v1/agents", json: #"{"name":"\#(unique("q"))","owner":"o","scopes":["read"],"metadata":{"note":"\#(quoted)"}}"#)
            XCTAssertEqual(text.status, .created, text.text)
            try await Self.assertServing(client)
        }
    }

    func testFormsAreBoundedInFieldsAndLength() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let many = (0...Limits.maxFormFields).map { "f\($0)=1" }.joined(separator: "&")
            let crowded = try await client.tokenRequest("grant_type=client_credentials&" + many)
            XCTAssertEqual(crowded.status, .badRequest)
            XCTAssertEqual(crowded.errorCode, "invalid_request")
            XCTAssertTrue(crowded.text.contains("more than \(Limits.maxFormFields) fields"), crowded.text)

            let long = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=sgc_x&client_secret=" + String(repeating: "s", count: Limits.maxFormFieldBytes + 1)
            )
            XCTAssertEqual(long.status, .badRequest)
            XCTAssertTrue(long.text.contains("longer than \(Limits.maxFormFieldBytes) bytes"), long.text)

            let introspectLong = try await client.execute(
                uri: "/oauth/introspect", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=" + String(repeating: "a", count: Limits.maxFormFieldBytes + 10)))
            XCTAssertEqual(introspectLong.status, .badRequest)
            try await Self.assertServing(client)
        }
    }

    func testLongURLsAndHugeHeadersAreRefusedWithJSON() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let long = try await client.execute(uri: "/v1/agents?owner=" + String(repeating: "o", count: Limits.maxURLBytes), method: .get)
            XCTAssertEqual(long.status, .uriTooLong)
            XCTAssertEqual(long.errorCode, "invalid_request")
            var headers: HTTPFields = [:]
            for index in 0..<40 { headers[HTTPField.Name("X-Filler-\(index)")!] = String(repeating: "h", count: 1000) }
            let huge = try await client.execute(uri: "/health/live", method: .get, headers: headers)
            XCTAssertEqual(huge.status, .requestHeaderFieldsTooLarge)
            XCTAssertEqual(huge.errorCode, "invalid_request")
            try await Self.assertServing(client)
        }
    }

    func testBodiesThatAreNotUTF8AreRefused() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            var json = ByteBuffer(string: #"{"name":""#)
            json.writeBytes([0xFF, 0xFE, 0xC3])
            json.writeString(#"","owner":"o"}"#)
            let badJSON = try await client.execute(
                uri: "/v1/agents", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/json"], body: json)
            XCTAssertEqual(badJSON.status, .badRequest)
            XCTAssertNotNil(badJSON.errorCode)

            var form = ByteBuffer(string: "grant_type=client_credentials&client_id=")
            form.writeBytes([0xC0, 0xAF])
            let rawForm = try await client.execute(
                uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: form)
            XCTAssertEqual(rawForm.status, .badRequest)
            let encodedForm = try await client.tokenRequest("grant_type=client_credentials&client_id=%C0%AF&client_secret=%FF")
            XCTAssertEqual(encodedForm.status, .badRequest)
            XCTAssertEqual(encodedForm.errorCode, "invalid_request")
            try await Self.assertServing(client)
        }
    }

    func testIdsThatAreNotUUIDsAreNeverA500() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            for id in [
                "not-a-uuid", "1", "%27%20OR%201%3D1--", "00000000-0000-0000-0000-00000000000G", String(repeating: "9", count: 500), "%00",
            ] {
                for path in ["/v1/agents/\(id)", "/v1/agents/\(id)/credentials", "/v1/agents/\(id)/credentials/\(id)"] {
                    let method: HTTPRequest.Method = path.hasSuffix("credentials/\(id)") ? .delete : .get
                    let response = try await client.admin(method, path)
                    XCTAssertTrue([400, 404].contains(response.status.code), "\(method) \(path): \(response.status) \(response.text)")
                    XCTAssertNotNil(response.errorCode, path)
                }
            }
            let controlOwner = try await client.admin(.get, "/v1/agents?owner=a%0Cb")
            XCTAssertEqual(controlOwner.status, .badRequest, "an owner filter is validated like an owner")
            let missing = try await client.admin(.get, "/v1/agents/\(UUID().uuidString.lowercased())")
            XCTAssertEqual(missing.status, .notFound)
            try await Self.assertServing(client)
        }
    }

    func testQuotesAndSQLInNamesAreStoredAndReturnedVerbatim() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let suffix = UUID().uuidString.prefix(6)
            let names = [
                #"Robert'); DROP TABLE agents;-- \#(suffix)"#, #"quote " and \ backslash \#(suffix)"#, #"' OR '1'='1 \#(suffix)"#,
                "$1 $$ dollar \(suffix)", "😀 ünïcödé \(suffix)",
            ]
            for name in names {
                let encoded = String(decoding: try JSONEncoder().encode(name), as: UTF8.self)
                let created = try await client.admin(
                    .post, "/v1/agents", json: #"{"name":\#(encoded),"owner":\#(encoded),"scopes":["read"]}"#)
                XCTAssertEqual(created.status, .created, "\(name): \(created.text)")
                let id = try XCTUnwrap(created.object["id"] as? String)
                let read = try await client.admin(.get, "/v1/agents/\(id)")
                XCTAssertEqual(read.object["name"] as? String, name)
                XCTAssertEqual(read.object["owner"] as? String, name)
                let rows = try await TestDatabase.query("SELECT name FROM agents WHERE id = $1::uuid", [id])
                XCTAssertEqual(rows.first?["name"], name, "stored as sent")
            }
            let listed = try await client.admin(.get, "/v1/agents?owner=\(formEncode(names[0]))")
            XCTAssertEqual((listed.object["items"] as? [[String: Any]])?.first?["name"] as? String, names[0], listed.text)
            try await Self.assertServing(client)
        }
    }

    /// The service still answers an ordinary request.
    static func assertServing(_ client: any TestClientProtocol, file: StaticString = #filePath, line: UInt = #line) async throws {
        let live = try await client.execute(uri: "/health/live", method: .get)
        XCTAssertEqual(live.status, .ok, file: file, line: line)
    }
}
