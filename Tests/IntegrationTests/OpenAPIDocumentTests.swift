import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OpenAPIKit
import Service
import XCTest
import Yams

/// The API's contract (issue 13, items 1 and 2): openapi.yaml parses as OpenAPI 3.1, names
/// exactly the routes the router registers, is what `GET /openapi.yaml` serves, and the
/// embedded copy is the file.
final class OpenAPIDocumentTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func document() throws -> OpenAPI.Document {
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        return try YAMLDecoder().decode(OpenAPI.Document.self, from: text)
    }

    func testTheRouterAndTheDocumentNameTheSameRoutes() async throws {
        let document = try Self.document()
        var documented: Set<String> = []
        for (path, item) in document.paths {
            let pathItem = try XCTUnwrap(document.components[item], "\(path.rawValue) is a reference that does not resolve")
            for endpoint in pathItem.endpoints {
                documented.insert("\(endpoint.method.rawValue.uppercased()) \(path.rawValue)")
            }
        }
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
        let document = try Self.document()
        XCTAssertEqual(document.openAPIVersion, .v3_1_0)
        for (path, item) in document.paths {
            for endpoint in try XCTUnwrap(document.components[item]).endpoints {
                let operation = endpoint.operation
                XCTAssertNotNil(operation.operationId, "\(endpoint.method) \(path.rawValue) has an operationId")
                XCTAssertFalse(operation.responses.isEmpty, "\(endpoint.method) \(path.rawValue) has responses")
            }
        }
        let file = try String(contentsOf: Self.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        XCTAssertEqual(OpenAPIDocument.yaml, file, "the served copy is openapi.yaml: run ci/openapi")

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
