import Simulator
import XCTest

/// Issue 12's operations scenarios, through the Simulator against real PostgreSQL, Redis,
/// haproxy and `signet` processes.
final class OperationsScenarioTests: XCTestCase {
    func testARollingRestartBehindTheBalancerFailsNoRequest() async throws {
        try await runScenario(OperationsScenarios.rollingRestart)
    }

    func testARealPrometheusScrapesBothInstancesAndSeesTokensIssued() async throws {
        try await runScenario(OperationsScenarios.prometheusScrape)
    }
}
