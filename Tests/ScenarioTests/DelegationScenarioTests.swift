import Simulator
import XCTest

/// Issue 30's scenarios, through the Simulator against real PostgreSQL, Redis and `signet`
/// processes, and a trusted issuer's key server as a process of its own.
final class DelegationScenarioTests: XCTestCase {
    func testADelegationChainDiesOnTheOtherInstanceWithTheCredentialItCameFrom() async throws {
        try await runScenario(DelegationScenarios.delegationChain)
    }

    func testAFrozenIssuerKeyServerHoldsNoTokenRequestWhoseKeyIsCached() async throws {
        try await runScenario(DelegationScenarios.issuerFrozen)
    }
}
