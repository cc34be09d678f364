import Foundation
import Simulator
import XCTest

/// The real `signet` binary: a bad configuration stops start-up with exit code 2 and one line
/// naming the variable; nothing is started half-configured.
final class StartupTests: XCTestCase {
    static let valid = [
        "DATABASE_URL": "postgresql://signet@127.0.0.1:1/signet",
        "SIGNET_ADMIN_TOKEN": "startup-test-token-0123456789abcdefgh",
        "PATH": "/usr/bin:/bin",
    ]

    func run(_ overrides: [String: String?]) throws -> (status: Int32, stderr: String) {
        var environment = Self.valid
        for (key, value) in overrides { environment[key] = value }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try SignetBinary.locate())
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testEachBadValueExitsTwoWithOneLineNamingTheVariable() throws {
        let cases: [(String, [String: String?])] = [
            ("DATABASE_URL", ["DATABASE_URL": nil]),
            ("DATABASE_URL", ["DATABASE_URL": "postgresql://u:hunter2@[::1"]),
            ("DB_POOL_MAX", ["DB_POOL_MAX": "twenty"]),
            ("DB_POOL_MIN", ["DB_POOL_MIN": "30", "DB_POOL_MAX": "20"]),
            ("DB_POOL_IDLE_TIMEOUT_MS", ["DB_POOL_IDLE_TIMEOUT_MS": "-1"]),
            ("DB_POOL_CONNECTION_TIMEOUT_MS", ["DB_POOL_CONNECTION_TIMEOUT_MS": "-5000"]),
            ("PORT", ["PORT": "http"]),
            ("SIGNET_ADMIN_TOKEN", ["SIGNET_ADMIN_TOKEN": nil]),
            ("SIGNET_ADMIN_TOKEN", ["SIGNET_ADMIN_TOKEN": "hunter2"]),
            ("SHUTDOWN_DRAIN_MS", ["SHUTDOWN_DRAIN_MS": "soon"]),
        ]
        for (variable, overrides) in cases {
            let (status, stderr) = try run(overrides)
            XCTAssertEqual(status, 2, "\(overrides): \(stderr)")
            let lines = stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "exactly one line: \(stderr)")
            XCTAssertTrue(stderr.hasPrefix("signet: configuration error: \(variable) "), stderr)
            XCTAssertFalse(stderr.contains("hunter2"), "no secret echoed: \(stderr)")
        }
    }

    func testUnreachableDatabaseExitsOneWithoutServing() throws {
        let (status, stderr) = try run([:])
        XCTAssertEqual(status, 1, stderr)
        XCTAssertTrue(stderr.contains("could not connect to PostgreSQL"), stderr)
        XCTAssertFalse(stderr.contains(Self.valid["SIGNET_ADMIN_TOKEN"]!), stderr)
    }
}
