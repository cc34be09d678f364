import Simulator
import XCTest

/// Issue 10's and issue 26's abuse scenarios, through the Simulator against real PostgreSQL, Redis and haproxy.
final class AbuseScenarioTests: XCTestCase {
    func testLockoutThroughTheBalancer() async throws {
        try await runScenario(AbuseScenarios.lockoutThroughBalancer)
    }

    func testAResponseNobodyReadsDoesNotHoldItsConnection() async throws {
        try await runScenario(ConnectionScenarios.slowReaders)
    }

    func testOneAddressCannotTakeEveryConnectionSlot() async throws {
        try await runScenario(ConnectionScenarios.connectionSlots)
    }
}
