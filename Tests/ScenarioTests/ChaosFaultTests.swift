import Foundation
import Simulator
import XCTest

/// `signet-sim chaos --allow-faults` (issue 27) against a deployed-like stack: one Signet whose
/// PostgreSQL, Redis, Vault and OPA each go through a proxy of `signet-sim proxy` (in process,
/// Toxiproxy's API), observed only through HTTP as staging offers it.
final class ChaosFaultTests: XCTestCase {
    func testEveryFaultScenarioPassesAgainstAStackBehindTheProxyAndLeavesNoToxic() async throws {
        let stack = try await SharedStack.shared.get()
        let dependencies = try await ProxiedDependencies.start(stack: stack, databasePrefix: "chaosfaults")
        let server = dependencies.toxiproxy
        // A crash of an earlier run left a toxic behind.
        try await server.proxy("redis")?.addToxic(Toxic(name: "signet-sim-crashed-redis-x", kind: .latency, attributes: ["latency": 1]))

        let token = "sim-admin-token-0123456789abcdefghijkl"
        let environment = dependencies.environment(
            applicationName: "chaos", adminToken: token,
            [
                "DB_POOL_CONNECTION_TIMEOUT_MS": "1000", "DB_STATEMENT_TIMEOUT_MS": "1000",
                "REDIS_KEY_PREFIX": "chaos-\(UUID().uuidString.prefix(8)):",
            ])
        let instance = try await SignetInstance.start(id: "staging", environment: environment)

        let faults = ChaosFaults(
            toxiproxy: ToxiproxyClient(base: server.url),
            proxies: ["redis": "redis", "postgres": "postgres", "vault": "vault", "opa": "opa"], poolTimeout: .milliseconds(1000))
        let report = await Chaos.run(target: instance.url, adminToken: token, operations: instance.opsURL, faults: faults)
        print(report.rendered)
        XCTAssertTrue(report.passed, report.rendered)
        let names = report.checks.map(\.name)
        for expected in [
            "Redis refused: tokens keep flowing (limiter in memory)", "Redis black-holed: health says unreachable",
            "Vault slow: health says degraded", "OPA slow: token requests fail closed", "OPA down: token requests fail closed",
            "PostgreSQL black-holed: a read is 503 with Retry-After",
            "PostgreSQL back: reads recover without a restart",
            "pool exhausted: a 503 comes past DB_POOL_CONNECTION_TIMEOUT_MS (1000 ms)",
        ] {
            XCTAssertTrue(names.contains(expected), "\(expected) not checked")
        }
        XCTAssertEqual(report.checks.first { $0.name.hasPrefix("toxics an earlier run") }?.observed, "1")
        for name in ProxiedDependencies.names { XCTAssertEqual(server.proxy(name)?.toxics, [], "\(name): every toxic removed") }
        XCTAssertTrue(ReportFiles.junit([report]).contains("<testsuite name=\"chaos\""))

        await instance.stop()
        await dependencies.stop()
    }
}
