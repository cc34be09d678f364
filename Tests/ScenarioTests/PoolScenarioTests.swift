import Simulator
import XCTest

/// Spec requirement "Database connection pool is explicitly configured", through the Simulator:
/// real `signet` processes on a real PostgreSQL.
final class PoolScenarioTests: XCTestCase {
    func testPoolExhaustionUnderLoad() async throws {
        try await runScenario(PoolScenarios.exhaustion)
    }

    func testIdleConnectionsAreReaped() async throws {
        try await runScenario(PoolScenarios.idleReaping)
    }

    func testEveryCatalogueScenarioHasATestHere() {
        // Adding a scenario to the catalogue without a test fails here.
        XCTAssertEqual(
            Catalogue.all.map(\.name),
            [
                "pool-exhaustion", "idle-reaping", "rate-limit-shared", "redis-fallback", "rate-limit-exceeded", "script-flush",
                "memory-only", "health-all-healthy", "health-redis-unreachable", "health-vault-degraded", "vault-sealed", "opa-slow",
                "opa-down", "health-flood", "postgres-frozen", "vault-secrets", "vault-import", "lockout-behind-balancer", "slow-readers",
                "connection-slots",
                "revocation-propagation", "listener-lost", "rolling-restart", "prometheus-scrape", "postgres-failover",
                "redis-sentinel-failover", "redis-cluster", "pgbouncer-session", "delegation-chain", "issuer-frozen",
            ]
        )
    }
}
