import Foundation
import XCTest

/// Documentation that is true: the variable tables of docs/configuration.md and
/// docs/operations.md each have a row for every environment variable `SignetConfiguration` reads
/// (every `env.<reader>("NAME"` in Sources/Service/Configuration/SignetConfiguration.swift).
final class ConfigurationDocsTests: XCTestCase {
    func testEveryVariableIsDocumentedInBothPlaces() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try String(
            contentsOf: root.appendingPathComponent("Sources/Service/Configuration/SignetConfiguration.swift"), encoding: .utf8)
        let read = try Regex(#"env\.[a-zA-Z]+\(\s*"([A-Z][A-Z0-9_]+)""#)
        let variables = Set(source.matches(of: read).compactMap { $0.output[1].substring.map(String.init) })
        XCTAssertGreaterThan(variables.count, 30, "the pattern still finds the variables")
        for file in ["docs/configuration.md", "docs/operations.md"] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            for variable in variables.sorted() {
                XCTAssertTrue(
                    ["| `", "/ `", ", `"].contains { text.contains($0 + variable + "`") }, "\(file) has no row for \(variable)")
            }
        }
    }
}
