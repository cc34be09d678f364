import Simulator
import XCTest

/// Issue 28's failovers, through the Simulator against real PostgreSQL (a primary and its
/// synchronous standby), Redis (a master, its replica and
/// three sentinels) and haproxy.
final class FailoverScenarioTests: XCTestCase {
    func testAPostgresFailoverLosesNothingAcknowledgedAndAnswersOnly503sMeanwhile() async throws {
        try await runScenario(FailoverScenarios.postgresFailover)
    }

    func testARedisSentinelFailoverFailsNoTokenRequestAndTheLimiterFollowsTheNewMaster() async throws {
        try await runScenario(FailoverScenarios.redisSentinelFailover)
    }

    func testThroughPgBouncerInSessionModeEverythingWorksAndTransactionModeIsRefused() async throws {
        try await runScenario(FailoverScenarios.pgbouncerSession)
    }
}
