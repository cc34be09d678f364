import Simulator
import XCTest

/// Issue 28's failovers, through the Simulator against real PostgreSQL (a primary and its
/// synchronous standby), Redis and haproxy.
final class FailoverScenarioTests: XCTestCase {
    func testAPostgresFailoverLosesNothingAcknowledgedAndAnswersOnly503sMeanwhile() async throws {
        try await runScenario(FailoverScenarios.postgresFailover)
    }
}
