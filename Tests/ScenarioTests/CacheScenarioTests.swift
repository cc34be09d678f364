import Simulator
import XCTest

/// Issue 14's credential cache scenarios, through the Simulator against real PostgreSQL, Redis
/// and haproxy.
final class CacheScenarioTests: XCTestCase {
    func testRevocationPropagatesToEveryInstance() async throws {
        try await runScenario(CacheScenarios.revocationPropagation)
    }

    func testALostListenerNeverLetsARevokedCredentialThrough() async throws {
        try await runScenario(CacheScenarios.listenerLost)
    }
}
