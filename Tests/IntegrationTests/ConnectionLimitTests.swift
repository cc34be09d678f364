import Foundation
import Simulator
import XCTest

/// Connections cannot be held open for free (issue 10, point 4): an idle one is closed, a body
/// sent a byte at a time is cut off, and past the maximum new connections wait unanswered until
/// load drops.
final class ConnectionLimitTests: XCTestCase {
    func testAnIdleConnectionIsClosedWithinTheIdleTimeout() async throws {
        let signet = try await TestSignet.make(["HTTP_IDLE_TIMEOUT_MS": "1000", "PORT": String(try freePort())])
        try await signet.serving { port in
            let (closed, elapsed) = try await blocking {
                let connection = try LoopbackConnection(port: port)
                let started = ContinuousClock.now
                let (_, closed) = connection.readUntilClosed(timeout: .seconds(5))
                return (closed, ContinuousClock.now - started)
            }
            XCTAssertTrue(closed, "a connection that sends nothing is closed")
            XCTAssertLessThan(elapsed, .seconds(2), "within HTTP_IDLE_TIMEOUT_MS + 1 s")
            XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(900), "not before the idle timeout")
        }
    }

    func testABodySentAByteASecondIsCutOff() async throws {
        let signet = try await TestSignet.make([
            "HTTP_IDLE_TIMEOUT_MS": "10000", "HTTP_BODY_TIMEOUT_MS": "1500", "PORT": String(try freePort()),
        ])
        try await signet.serving { port in
            let (closed, elapsed) = try await blocking {
                let connection = try LoopbackConnection(port: port)
                try connection.send(
                    "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
                )
                let started = ContinuousClock.now
                // A byte every 400 ms keeps the connection active, so only the body deadline can end it.
                while ContinuousClock.now - started < .seconds(6) {
                    if (try? connection.send("a")) == nil { return (true, ContinuousClock.now - started) }
                    let (_, closed) = connection.readUntilClosed(timeout: .milliseconds(400))
                    if closed { return (true, ContinuousClock.now - started) }
                }
                return (false, ContinuousClock.now - started)
            }
            XCTAssertTrue(closed, "the slow body was cut off")
            XCTAssertLessThan(elapsed, .milliseconds(2500), "within HTTP_BODY_TIMEOUT_MS + 1 s")
        }
    }

    func testConnectionsPastTheMaximumWaitUntilLoadDrops() async throws {
        let signet = try await TestSignet.make([
            "HTTP_MAX_CONNECTIONS": "4", "HTTP_IDLE_TIMEOUT_MS": "30000", "PORT": String(try freePort()),
        ])
        try await signet.serving { port in
            try await blocking {
                var held: [LoopbackConnection] = []
                for _ in 0..<4 {
                    let connection = try LoopbackConnection(port: port)
                    // Answered, and kept open: the server holds it.
                    XCTAssertEqual(try connection.exchangeKeepingAlive("GET", "/health/live").status, 200)
                    held.append(connection)
                }
                let waiting = try LoopbackConnection(port: port)
                try waiting.send("GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let (early, _) = waiting.readUntilClosed(timeout: .seconds(1))
                XCTAssertTrue(early.isEmpty, "past the maximum a connection is not served")
                held.removeAll()  // load drops
                let (late, _) = waiting.readUntilClosed(timeout: .seconds(5))
                XCTAssertEqual(HTTP.Response.parse(late)?.status, 200, "served once a slot frees")
                XCTAssertEqual(try LoopbackConnection(port: port).exchange("GET", "/health/live").status, 200, "and fresh connections too")
            }
        }
    }
}
