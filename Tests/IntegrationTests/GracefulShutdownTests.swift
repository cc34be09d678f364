import Foundation
import Service
import Simulator
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// SIGTERM: readiness 503 at once while still serving (the drain), then stop accepting, finish
/// what is in flight, close the pool, exit 0.
final class GracefulShutdownTests: XCTestCase {
    func testSIGTERMFinishesInFlightRequestsThenClosesThePool() async throws {
        let applicationName = unique("shutdown")
        let databaseURL = try TestDatabase.url(applicationName: applicationName)
        let port = try freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try SignetBinary.locate())
        process.environment = [
            "DATABASE_URL": databaseURL,
            "SIGNET_ADMIN_TOKEN": TestSignet.adminToken,
            "PORT": String(port),
            "OPS_PORT": String(try freePort()),
            "DB_POOL_MIN": "2",
            "LOG_LEVEL": "warning",
            "SHUTDOWN_DRAIN_MS": "3000",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let base = URL(string: "http://127.0.0.1:\(port)")!
        try await eventually("signet answers") { (try? await Self.get(base.appendingPathComponent("health/live")))?.0 == 200 }
        try await eventually("the pool holds min connections") {
            try await TestDatabase.connectionCount(applicationName: applicationName) == 2
        }

        // Hold a lock so that a list request is stuck inside PostgreSQL: in flight, for sure.
        let locker = try PostgresConnection.connect(try TestDatabase.url(), settings: [])
        try locker.query("BEGIN")
        try locker.query("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
        let listURL = base.appendingPathComponent("v1/agents")
        let inFlight = Task { try await GracefulShutdownTests.get(listURL, token: TestSignet.adminToken) }
        try await eventually("the request waits on the lock") {
            let rows = try await TestDatabase.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                [applicationName]
            )
            return rows.first?["n"] == "1"
        }

        kill(process.processIdentifier, SIGTERM)
        try await eventually("readiness answers 503 while draining") {
            let answer = try? await Self.get(base.appendingPathComponent("health/ready"))
            return answer?.0 == 503 && answer?.1.contains(#""status":"draining""#) == true
        }
        let (live, _) = try await Self.get(base.appendingPathComponent("health/live"))
        XCTAssertEqual(live, 200, "new requests are still served during the drain")
        let (keys, _) = try await Self.get(base.appendingPathComponent(".well-known/jwks.json"))
        XCTAssertEqual(keys, 200, "API requests too")
        try await eventually("new connections are refused after the drain", timeout: .seconds(15)) {
            (try? await Self.get(base.appendingPathComponent("health/live"))) == nil
        }
        XCTAssertTrue(process.isRunning, "still finishing the request in flight")

        try locker.query("COMMIT")
        let (status, body) = try await inFlight.value
        XCTAssertEqual(status, 200, body)

        try await eventually("the process exits") { !process.isRunning }
        XCTAssertEqual(process.terminationStatus, 0)
        let left = try await TestDatabase.connectionCount(applicationName: applicationName)
        XCTAssertEqual(left, 0, "the pool closed every connection")
    }

    static func get(_ url: URL, token: String? = nil) async throws -> (Int, String) {
        var request = URLRequest(url: url)
        request.timeoutInterval = 10
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}
