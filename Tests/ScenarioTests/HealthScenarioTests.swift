import Simulator
import XCTest

/// Spec requirement "Detailed health endpoint reports per-service status", through the
/// Simulator: real `signet` processes, real PostgreSQL and Redis, Vault and OPA fakes, and the
/// fault proxy; plus the failure modes that must stay bounded (a frozen PostgreSQL, OPA down).
final class HealthScenarioTests: XCTestCase {
    func testAllServicesHealthy() async throws {
        try await runScenario(HealthScenarios.allHealthy)
    }

    func testRedisUnreachable() async throws {
        try await runScenario(HealthScenarios.redisUnreachable)
    }

    func testVaultDegraded() async throws {
        try await runScenario(HealthScenarios.vaultDegraded)
    }

    func testVaultSealedIsUnreachable() async throws {
        try await runScenario(HealthScenarios.vaultSealed)
    }

    func testSlowOPAIsDegraded() async throws {
        try await runScenario(HealthScenarios.opaSlow)
    }

    func testOPADownFailsTokenRequestsClosed() async throws {
        try await runScenario(HealthScenarios.opaDown)
    }

    func testHealthFloodMakesAtMostTwoRoundsOfChecks() async throws {
        try await runScenario(HealthScenarios.flood)
    }

    func testFrozenPostgresCostsEachRequestAtMostItsDeadline() async throws {
        try await runScenario(HealthScenarios.postgresFrozen)
    }

    func testSecretMaterialLivesInVaultAndIsSharedByInstancesStartingAtOnce() async throws {
        try await runScenario(VaultScenarios.secretsInVault)
    }

    func testMovingToVaultKeepsExistingSecretsAndTokens() async throws {
        try await runScenario(VaultScenarios.importFromPostgres)
    }
}
