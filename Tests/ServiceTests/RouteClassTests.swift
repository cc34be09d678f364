import XCTest

@testable import Service

/// The route class table: what the layers in front of the routes decide by.
final class RouteClassTests: XCTestCase {
    func testEachRouteHasItsClassAndOnlyForItsMethods() {
        let classes = publicRouteClasses
        XCTAssertEqual(classes.of(method: "GET", template: "/health/live"), .probe)
        XCTAssertEqual(classes.of(method: "GET", template: "/health/detailed"), .operations)
        XCTAssertEqual(classes.of(method: "GET", template: "/metrics"), .metrics)
        XCTAssertEqual(classes.of(method: "GET", template: "/.well-known/jwks.json"), .discovery)
        XCTAssertEqual(classes.of(method: "POST", template: "/oauth/token"), .oauth)
        XCTAssertEqual(classes.of(method: "POST", template: "/v1/agents/{id}/credentials/rotate"), .tokenAuthority)
        XCTAssertEqual(classes.of(method: "PATCH", template: "/v1/agents/{id}"), .admin)
        XCTAssertEqual(classes.of(method: "GET", template: "/openapi.yaml"), .document)
        // A method the route does not serve: the router gives no template; nothing is authenticated.
        XCTAssertEqual(classes.of(method: "GET", template: nil), .unmatched)
        XCTAssertEqual(classes.of(method: "GET", template: "/oauth/token"), .unmatched)
        XCTAssertEqual(classes.of(method: "HEAD", template: "/health/live"), .unmatched)
        // What the path is, whatever the method: exactly a template, no other spelling.
        XCTAssertEqual(classes.of(template: "/health/live"), .probe)
        XCTAssertEqual(classes.of(template: "/.well-known/oauth-authorization-server"), .discovery)
        XCTAssertEqual(classes.of(template: "/health/live/"), .unmatched)
        XCTAssertEqual(classes.of(template: "//health/live"), .unmatched)
        XCTAssertEqual(classes.of(template: "/no/such/route"), .unmatched)
    }

    func testATemplateWhoseMethodsDifferInClassHasNoClassOfItsOwn() {
        let classes = RouteClasses(["GET /mixed": .probe, "POST /mixed": .admin, "GET /free": .probe])
        XCTAssertEqual(classes.of(method: "GET", template: "/mixed"), .probe)
        XCTAssertEqual(classes.of(method: "POST", template: "/mixed"), .admin)
        XCTAssertEqual(classes.of(template: "/mixed"), .unmatched)
        XCTAssertEqual(classes.of(template: "/free"), .probe)
        XCTAssertEqual(classes.routes, ["GET /mixed", "POST /mixed", "GET /free"])
    }
}
