import XCTest

@testable import Service

/// The route class table: what the layers in front of the routes decide by.
final class RouteClassTests: XCTestCase {
    func testEachRouteHasItsClassAndAnotherMethodTakesItsTemplatesClass() {
        let classes = publicRouteClasses
        XCTAssertEqual(classes.of(method: "GET", template: "/health/live"), .probe)
        XCTAssertEqual(classes.of(method: "GET", template: "/health/detailed"), .operations)
        XCTAssertEqual(classes.of(method: "GET", template: "/metrics"), .metrics)
        XCTAssertEqual(classes.of(method: "GET", template: "/.well-known/jwks.json"), .discovery)
        XCTAssertEqual(classes.of(method: "POST", template: "/oauth/token"), .oauth)
        XCTAssertEqual(classes.of(method: "POST", template: "/v1/agents/{id}/credentials/rotate"), .tokenAuthority)
        XCTAssertEqual(classes.of(method: "PATCH", template: "/v1/agents/{id}"), .admin)
        XCTAssertEqual(classes.of(method: "GET", template: "/openapi.yaml"), .document)
        // A method the route does not serve (answered 405): a probe stays free and discovery keeps
        // its budget; anything else authenticates nothing (no client is looked up for a 405).
        XCTAssertEqual(classes.of(method: "HEAD", template: "/health/live"), .probe)
        XCTAssertEqual(classes.of(method: "POST", template: "/health/ready"), .probe)
        XCTAssertEqual(classes.of(method: "POST", template: "/.well-known/jwks.json"), .discovery)
        XCTAssertEqual(classes.of(method: "GET", template: "/oauth/token"), .unmatched)
        XCTAssertEqual(classes.of(method: "GET", template: "/v1/agents/{id}/credentials/rotate"), .unmatched)
        XCTAssertEqual(classes.of(method: "POST", template: "/metrics"), .unmatched)
        XCTAssertEqual(classes.of(template: "/metrics"), .metrics, "still logged quietly")
        XCTAssertEqual(classes.of(method: "GET", template: nil), .unmatched)
        XCTAssertEqual(classes.of(method: "GET", template: "/no/such/route"), .unmatched)
    }

    func testATemplateWhoseMethodsDifferInClassGivesNoClassToAnotherMethod() {
        let classes = RouteClasses(["GET /mixed": .probe, "POST /mixed": .admin, "GET /free": .probe])
        XCTAssertEqual(classes.of(method: "GET", template: "/mixed"), .probe)
        XCTAssertEqual(classes.of(method: "POST", template: "/mixed"), .admin)
        XCTAssertEqual(classes.of(method: "PUT", template: "/mixed"), .unmatched)
        XCTAssertEqual(classes.of(template: "/mixed"), .unmatched)
        XCTAssertEqual(classes.of(method: "PUT", template: "/free"), .probe)
        XCTAssertEqual(classes.routes, ["GET /mixed", "POST /mixed", "GET /free"])
    }
}
