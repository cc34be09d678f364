import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// Headers every response carries (issue 13, item 7): `X-Content-Type-Options: nosniff`
/// everywhere, `Cache-Control: no-store` wherever a credential or token is in the body, and a
/// JSON error body with a JSON `Content-Type` on every error, the router's own 404 and 405 too.
final class ResponseHeaderTests: XCTestCase {
    func testEveryResponseHasNosniffAndEveryErrorIsJSON() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read"])
            let token = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=\(agent.secret)")
            let responses: [(String, TestResponse)] = [
                ("token", token),
                (
                    "registration",
                    try await client.admin(.post, "/v1/agents", json: #"{"name":"\#(unique("h"))","owner":"o","scopes":["read"]}"#)
                ),
                ("rotation", try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: "{}")),
                (
                    "introspection",
                    try await client.execute(
                        uri: "/oauth/introspect", method: .post,
                        headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                        body: ByteBuffer(string: "token=x"))
                ),
                ("agent read", try await client.admin(.get, "/v1/agents/\(agent.id)")),
                ("jwks", try await client.execute(uri: "/.well-known/jwks.json", method: .get)),
                ("live", try await client.execute(uri: "/health/live", method: .get)),
                ("metrics", try await client.operations("/metrics")),
                ("unknown path", try await client.execute(uri: "/no/such/thing", method: .get)),
                ("wrong method", try await client.execute(uri: "/oauth/token", method: .get)),
                ("wrong method on an admin route", try await client.admin(.put, "/v1/agents")),
                ("unauthorized", try await client.execute(uri: "/v1/agents", method: .get)),
                ("bad id", try await client.admin(.get, "/v1/agents/not-a-uuid")),
                ("bad json", try await client.admin(.post, "/v1/agents", json: "{")),
                ("bad token request", try await client.tokenRequest("grant_type=password")),
            ]
            for (name, response) in responses {
                XCTAssertEqual(response.headers[.init("X-Content-Type-Options")!], "nosniff", name)
                if response.status.code >= 400 {
                    XCTAssertTrue(
                        response.headers[.contentType]?.hasPrefix("application/json") == true,
                        "\(name): \(response.status) \(response.headers[.contentType] ?? "no Content-Type")")
                    XCTAssertNotNil(response.errorCode, "\(name): a JSON error body, got \(response.text)")
                }
            }
            for name in ["token", "registration", "rotation", "introspection"] {
                let response = try XCTUnwrap(responses.first { $0.0 == name }?.1)
                XCTAssertEqual(response.headers[.cacheControl], "no-store", name)
            }
            XCTAssertEqual(responses.first { $0.0 == "unknown path" }?.1.status, .notFound)
            // A path served under other methods: 405 with the methods it has, not 404.
            let wrongMethod = try XCTUnwrap(responses.first { $0.0 == "wrong method" }?.1)
            XCTAssertEqual(wrongMethod.status, .methodNotAllowed)
            XCTAssertEqual(wrongMethod.headers[.allow], "POST")
            XCTAssertEqual(wrongMethod.errorCode, "method_not_allowed")
            let wrongAdminMethod = try XCTUnwrap(responses.first { $0.0 == "wrong method on an admin route" }?.1)
            XCTAssertEqual(wrongAdminMethod.status, .methodNotAllowed)
            XCTAssertEqual(wrongAdminMethod.headers[.allow], "GET, POST")
            let templated = try await client.admin(.put, "/v1/agents/\(agent.id)")
            XCTAssertEqual(templated.status, .methodNotAllowed)
            XCTAssertEqual(templated.headers[.allow], "DELETE, GET, PATCH")
        }
    }

    /// Liveness and readiness are never limited, whatever the method: a wrong one is answered 405
    /// without spending the address's budget. Only the probe's own path is: another spelling of it
    /// with a wrong method is counted like any other request the router matched to no route.
    func testAProbeRoutesWrongMethodIsNotLimited() async throws {
        let signet = try await TestSignet.make(["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "3"])
        try await signet.test { client in
            for method: HTTPRequest.Method in [.head, .post, .head, .post] {
                let response = try await client.execute(uri: "/health/live", method: method)
                XCTAssertEqual(response.status, .methodNotAllowed)
                XCTAssertNil(response.headers[HTTPField.Name("RateLimit")!], "\(method) /health/live is not limited")
            }
            let jwks = try await client.execute(uri: "/.well-known/jwks.json", method: .post)
            XCTAssertEqual(jwks.status, .methodNotAllowed)
            XCTAssertEqual(jwks.headers[HTTPField.Name("RateLimit-Policy")!], "1000000;w=60", "a wrong method on discovery: its budget")
            let respelled = try await client.execute(uri: "/health/live/", method: .head)
            XCTAssertEqual(respelled.headers[HTTPField.Name("RateLimit")!]?.hasPrefix("limit=3, remaining=2"), true, "counted")
            let counted = try await client.execute(uri: "/no/such/thing", method: .get)
            XCTAssertEqual(counted.headers[HTTPField.Name("RateLimit")!]?.hasPrefix("limit=3, remaining=1"), true, "counted")
        }
    }
}
