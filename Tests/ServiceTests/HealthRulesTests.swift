import XCTest

@testable import Service

/// The pure rules of `/health/detailed` (DESIGN.md §Health): statuses from outcomes and
/// latencies, and the roll-up into the overall status and the HTTP status.
final class HealthRulesTests: XCTestCase {
    let degraded = Duration.milliseconds(1000)
    let timeout = Duration.milliseconds(2000)

    private func judge(_ outcome: CheckOutcome, _ milliseconds: Int64) -> DependencyHealth {
        HealthRules.judge(outcome, latency: .milliseconds(milliseconds), degradedAfter: degraded, timeout: timeout)
    }

    func testAFastAnswerIsHealthy() {
        XCTAssertEqual(judge(.answered(note: nil), 12), DependencyHealth(status: .healthy, latencyMs: 12))
        XCTAssertEqual(judge(.answered(note: nil), 1000).status, .healthy, "exactly the threshold is not slower than it")
    }

    func testASlowAnswerIsDegradedWithItsLatency() {
        let health = judge(.answered(note: nil), 1200)
        XCTAssertEqual(health.status, .degraded)
        XCTAssertEqual(health.latencyMs, 1200)
        XCTAssertEqual(health.message, "answered in 1200 ms, slower than 1000 ms")
    }

    func testAFailureOrNoAnswerIsUnreachable() {
        XCTAssertEqual(
            judge(.failed("Vault is sealed"), 4), DependencyHealth(status: .unreachable, latencyMs: 4, message: "Vault is sealed"))
        XCTAssertEqual(
            judge(.timedOut, 2001), DependencyHealth(status: .unreachable, latencyMs: 2001, message: "no answer within 2000 ms"))
    }

    func testRollUp() {
        let healthy = DependencyHealth(status: .healthy, latencyMs: 1)
        let slow = DependencyHealth(status: .degraded, latencyMs: 1500)
        let down = DependencyHealth(status: .unreachable, latencyMs: 2000)
        XCTAssertEqual(HealthRules.overall([healthy, healthy]), "healthy")
        XCTAssertEqual(HealthRules.httpStatus([healthy, healthy]), 200)
        XCTAssertEqual(HealthRules.overall([healthy, slow]), "degraded")
        XCTAssertEqual(HealthRules.httpStatus([healthy, slow]), 207)
        XCTAssertEqual(HealthRules.overall([slow, down, healthy]), "unhealthy")
        XCTAssertEqual(HealthRules.httpStatus([slow, down]), 503)
    }

    func testTheReportOmitsDependenciesThatAreNotConfigured() throws {
        let report = HealthReport(
            checkedAt: Date(timeIntervalSince1970: 0), database: DependencyHealth(status: .healthy, latencyMs: 3), redis: nil,
            vault: nil, opa: DependencyHealth(status: .degraded, latencyMs: 1100, message: "slow"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["status", "checkedAt", "database", "opa"])
        XCTAssertEqual(json["status"] as? String, "degraded")
        XCTAssertEqual(json["checkedAt"] as? String, "1970-01-01T00:00:00Z")
        XCTAssertEqual(report.httpStatus, 207)
        XCTAssertEqual(Set((json["database"] as? [String: Any] ?? [:]).keys), ["status", "latencyMs"], "no message key when there is none")
    }
}
