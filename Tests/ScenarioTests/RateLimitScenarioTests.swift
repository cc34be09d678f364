import Simulator
import XCTest

/// Spec requirement "Redis-backed distributed rate limiting replaces in-memory limiter",
/// through the Simulator: real `signet` processes, a real Redis, the fault proxy between them.
final class RateLimitScenarioTests: XCTestCase {
    func testRateLimitIsSharedAcrossTwoInstances() async throws {
        try await runScenario(RateLimitScenarios.sharedAcrossInstances)
    }

    func testRedisUnavailableFallsBackToMemoryAndRecovers() async throws {
        try await runScenario(RateLimitScenarios.redisUnavailable)
    }

    func testRateLimitExceededAnswers429WithRetryAfter() async throws {
        try await runScenario(RateLimitScenarios.limitExceeded)
    }

    func testScriptFlushDuringTrafficFailsNoRequest() async throws {
        try await runScenario(RateLimitScenarios.scriptFlush)
    }

    func testDisabledRedisLimiterEnforcesLimitsInMemoryWithoutConnecting() async throws {
        try await runScenario(RateLimitScenarios.memoryOnly)
    }
}
