import Simulator
import XCTest

/// Issue 28's failovers, through the Simulator against real PostgreSQL (a primary and its
/// synchronous standby), Redis (a master, its replica and three sentinels; a cluster of three
/// masters with a replica each), PgBouncer and haproxy.
final class FailoverScenarioTests: XCTestCase {
    func testAPostgresFailoverLosesNothingAcknowledgedAndAnswersOnly503sMeanwhile() async throws {
        try await runScenario(FailoverScenarios.postgresFailover)
    }

    func testARedisSentinelFailoverFailsNoTokenRequestAndTheLimiterFollowsTheNewMaster() async throws {
        try await runScenario(FailoverScenarios.redisSentinelFailover)
    }

    func testRedisClusterLimitsAreExactAcrossInstancesOnEveryMasterAndSurviveAMastersFailover() async throws {
        try await runScenario(FailoverScenarios.redisCluster)
    }

    func testThroughPgBouncerInSessionModeEverythingWorksAndTransactionModeIsRefused() async throws {
        try await runScenario(FailoverScenarios.pgbouncerSession)
    }
}
