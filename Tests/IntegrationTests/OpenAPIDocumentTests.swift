import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Service
import XCTest
import Yams

/// The API's contract (issue 13, items 1 and 2): openapi.yaml is an OpenAPI 3.1 document whose
/// every operation has an id and responses, names exactly the routes the router registers, and is
/// what `GET /openapi.yaml` serves. (`ci/test` also validates it against the OpenAPI 3.1 schema
/// with openapi-spec-validator, and schemathesis checks the answers against it.)
final class OpenAPIDocumentTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// The document as YAML, and its operations: "METHOD /path" to the operation's mapping.
    static func document() throws -> (root: [String: Any], operations: [String: [String: Any]]) {
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        let document = try XCTUnwrap(try Yams.load(yaml: text) as? [String: Any], "openapi.yaml is a mapping")
        let paths = try XCTUnwrap(document["paths"] as? [String: Any], "openapi.yaml has paths")
        var operations: [String: [String: Any]] = [:]
        for (path, item) in paths {
            let item = try XCTUnwrap(item as? [String: Any], "\(path) is a path item")
            for (method, operation) in item where methods.contains(method) {
                operations["\(method.uppercased()) \(path)"] = try XCTUnwrap(operation as? [String: Any], "\(method) \(path)")
            }
        }
        return (document, operations)
    }

    func testTheRouterAndTheDocumentNameTheSameRoutes() async throws {
        let documented = Set(try Self.document().operations.keys)
        let registered = RouteList()
        _ = try await TestSignet.make(onRoutes: { routes in registered.set(routes) })
        let routes = Set(registered.value.map { "\($0.method) \(Self.template($0.path))" })
        XCTAssertGreaterThan(routes.count, 15, "the router's routes were listed")
        XCTAssertEqual(routes.subtracting(documented).sorted(), [], "routes missing from openapi.yaml")
        XCTAssertEqual(documented.subtracting(routes).sorted(), [], "operations in openapi.yaml that no route serves")
        // The layers in front of the routes know each one by its class, never by its path.
        XCTAssertEqual(routes.subtracting(publicRouteClasses.routes).sorted(), [], "routes without a class (Routes.swift)")
        XCTAssertEqual(publicRouteClasses.routes.subtracting(routes).sorted(), [], "classes of routes that are not registered")
    }

    func testTheDocumentIsWellFormedAndServed() async throws {
        let (document, operations) = try Self.document()
        XCTAssertEqual(document["openapi"] as? String, "3.1.0")
        XCTAssertGreaterThan(operations.count, 15)
        for (name, operation) in operations {
            XCTAssertNotNil(operation["operationId"] as? String, "\(name) has an operationId")
            XCTAssertFalse((operation["responses"] as? [String: Any] ?? [:]).isEmpty, "\(name) has responses")
        }
        let file = try String(contentsOf: Self.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        XCTAssertEqual(OpenAPIDocument.yaml, file, "the embedded copy is openapi.yaml (Sources/Service/Resources links to it)")

        let signet = try await TestSignet.make()
        try await signet.test { client in
            let served = try await client.execute(uri: "/openapi.yaml", method: .get)
            XCTAssertEqual(served.status, .ok)
            XCTAssertEqual(served.headers[.contentType], "application/yaml; charset=utf-8")
            XCTAssertEqual(served.text, file)
        }
    }

    /// `{id}` as OpenAPI writes it, whatever the router's own spelling of a parameter.
    static func template(_ path: String) -> String {
        let components = path.split(separator: "/").map { component -> String in
            if component.hasPrefix(":") { return "{\(component.dropFirst())}" }
            if component.hasPrefix("${") && component.hasSuffix("}") { return "{\(component.dropFirst(2).dropLast())}" }
            return String(component)
        }
        return "/" + components.joined(separator: "/")
    }
}

final class RouteList: @unchecked Sendable {
    private let lock = NSLock()
    private var routes: [(method: String, path: String)] = []

    func set(_ routes: [(method: String, path: String)]) {
        lock.withLock { self.routes = routes }
    }

    var value: [(method: String, path: String)] { lock.withLock { routes } }
}
