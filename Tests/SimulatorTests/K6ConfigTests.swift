import Foundation
import Simulator
import Spec
import XCTest

/// The k6 thresholds come from `Spec` (DESIGN.md, load tests): the committed `tests/load/config.json`
/// is what `signet-sim k6-config` generates, and the model keeps each principal within its budget.
final class K6ConfigTests: XCTestCase {
    func testTheCommittedConfigIsWhatSpecGenerates() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let committed = try String(contentsOf: root.appendingPathComponent(K6Config.path), encoding: .utf8)
        XCTAssertEqual(committed, try K6Config.rendered(), "run swift run signet-sim k6-config and commit \(K6Config.path)")
    }

    func testTheModelIsTheSpecsAndEveryPrincipalStaysWithinItsBudget() throws {
        XCTAssertEqual(LoadModel.agentRegistration.virtualUsers, 100)
        XCTAssertEqual(LoadModel.tokenIssuance.virtualUsers, 1000)
        XCTAssertEqual(LoadModel.credentialRotation.virtualUsers, 50)
        XCTAssertEqual(Set(LoadModel.scenarios.map(\.durationSeconds)), [60])
        for scenario in LoadModel.scenarios {
            XCTAssertTrue(
                (0...scenario.durationSeconds / 4).contains(scenario.rampUpSeconds),
                "\(scenario.name): a ramp comes before the spec's duration at full load and stays short beside it")
        }
        XCTAssertEqual(LoadModel.p95Milliseconds, 500)
        XCTAssertEqual(LoadModel.maxFailedRate, 0.01)
        for scenario in LoadModel.scenarios where scenario.principal == .agent {
            XCTAssertLessThanOrEqual(
                scenario.requestsPerWindowPerPrincipal, LoadModel.rateLimitMaxRequests,
                "\(scenario.name): one agent's requests per window, by the think time")
            XCTAssertEqual(scenario.setupAdminRequests, scenario.virtualUsers, "\(scenario.name): one agent per virtual user")
        }
        let admin = LoadModel.scenarios.filter { $0.principal == .admin }.map(\.requestsPerWindowPerPrincipal).reduce(0, +)
        let setups = LoadModel.scenarios.map(\.setupAdminRequests).reduce(0, +)
        XCTAssertEqual(LoadModel.agentRegistration.requestsPerWindowPerPrincipal, 12_000, "100 users, 2 requests a second each, 60 s")
        XCTAssertGreaterThan(
            LoadModel.rateLimitAdminMaxRequests, admin + setups,
            "the admin's budget covers a window of registrations and the set-ups after it")
        XCTAssertEqual(LoadModel.stackEnvironment["RATE_LIMIT_ADMIN_MAX_REQUESTS"], String(LoadModel.rateLimitAdminMaxRequests))
        XCTAssertEqual(LoadModel.stackEnvironment["REDIS_RATE_LIMIT_ENABLED"], "true", "the load runs with the Redis limiter on")
        XCTAssertEqual(
            LoadModel.stackEnvironment["RATE_LIMIT_MAX_REQUESTS"], String(Defaults.rateLimitMaxRequests), "agents keep the default budget")
        XCTAssertEqual(LoadModel.stackEnvironment["OPA_DECISION_CACHE_MS"], String(LoadModel.opaDecisionCacheMilliseconds))
        XCTAssertTrue(
            (1...Defaults.opaDecisionCacheMaxMilliseconds).contains(LoadModel.opaDecisionCacheMilliseconds),
            "OPA stays configured, its decisions reused within the bound Signet accepts")
    }
}
