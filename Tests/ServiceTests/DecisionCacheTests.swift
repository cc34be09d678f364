import Foundation
import Logging
import SignetTestSupport
import XCTest

@testable import Service

/// `OPA_DECISION_CACHE_MS`: a decision is reused only for the same input and only within its
/// lifetime; a changed agent asks OPA again, and OPA down fails closed once the entry has expired.
final class DecisionCacheTests: XCTestCase {
    let subject = PolicySubject(agentID: "a1", owner: "team", status: .active, scopes: ["read", "write"], clientAddress: "192.0.2.7")

    /// OPA at an address where nothing listens: every call it gets fails.
    func policy(cache: DecisionCache) -> OPAPolicy {
        OPAPolicy(
            client: OPAClient(url: "http://127.0.0.1:9", decisionPath: "signet/token", timeout: .milliseconds(500)),
            logger: Logger(label: "test"), cache: cache)
    }

    func testAnEntryLivesExactlyItsLifetime() {
        let clock = ManualClock()
        let cache = DecisionCache(lifetime: .seconds(5), now: { clock.now })
        let input = OPAClient.decisionBody(subject, requested: ["read"])
        XCTAssertNil(cache.decision(for: input))
        cache.store(["read"], for: input)
        clock.advance(by: .milliseconds(4999))
        XCTAssertEqual(cache.decision(for: input), ["read"])
        clock.advance(by: .milliseconds(1))
        XCTAssertNil(cache.decision(for: input), "expired at its lifetime")
        XCTAssertEqual(cache.count, 0, "an expired entry is dropped")
    }

    func testEveryPartOfTheInputIsPartOfTheKey() {
        let cache = DecisionCache(lifetime: .seconds(60))
        cache.store(["read"], for: OPAClient.decisionBody(subject, requested: ["read"]))
        let variants = [
            PolicySubject(agentID: "a2", owner: "team", status: .active, scopes: ["read", "write"], clientAddress: "192.0.2.7"),
            PolicySubject(agentID: "a1", owner: "other", status: .active, scopes: ["read", "write"], clientAddress: "192.0.2.7"),
            PolicySubject(agentID: "a1", owner: "team", status: .suspended, scopes: ["read", "write"], clientAddress: "192.0.2.7"),
            PolicySubject(agentID: "a1", owner: "team", status: .active, scopes: ["read"], clientAddress: "192.0.2.7"),
            PolicySubject(agentID: "a1", owner: "team", status: .active, scopes: ["read", "write"], clientAddress: "192.0.2.8"),
            PolicySubject(agentID: "a1", owner: "team", status: .active, scopes: ["read", "write"], clientAddress: nil),
        ]
        for variant in variants {
            XCTAssertNil(cache.decision(for: OPAClient.decisionBody(variant, requested: ["read"])), "\(variant)")
        }
        XCTAssertNil(cache.decision(for: OPAClient.decisionBody(subject, requested: ["write"])))
        XCTAssertNil(cache.decision(for: OPAClient.decisionBody(subject, requested: [])))
        XCTAssertEqual(cache.decision(for: OPAClient.decisionBody(subject, requested: ["read"])), ["read"])
    }

    func testItHoldsAtMostItsCapacity() {
        let cache = DecisionCache(lifetime: .seconds(60), capacity: 3)
        for index in 0..<10 {
            let agent = PolicySubject(agentID: "a\(index)", owner: "o", status: .active, scopes: ["read"])
            cache.store(["read"], for: OPAClient.decisionBody(agent, requested: []))
        }
        XCTAssertEqual(cache.count, 3)
    }

    /// The policy answers a cached input without OPA, still narrowed to what the agent holds;
    /// a changed agent goes to OPA (down: 503), and so does the same input once expired.
    func testThePolicyReusesOnlyLiveEntriesAndFailsClosedAfter() async throws {
        let clock = ManualClock()
        let cache = DecisionCache(lifetime: .seconds(5), now: { clock.now })
        let policy = policy(cache: cache)
        cache.store(["read", "admin"], for: OPAClient.decisionBody(subject, requested: ["read", "admin"]))
        let granted = try await policy.grantedScopes(for: subject, requested: ["read", "admin"])
        XCTAssertEqual(granted, ["read"], "OPA may narrow, never widen, cached or not")

        let suspended = PolicySubject(
            agentID: "a1", owner: "team", status: .suspended, scopes: ["read", "write"], clientAddress: "192.0.2.7")
        await assertFailsClosed(policy, suspended, requested: ["read", "admin"])

        clock.advance(by: .seconds(5))
        await assertFailsClosed(policy, subject, requested: ["read", "admin"])
    }

    /// A failed call stores nothing: the next request asks OPA again.
    func testAFailureIsNotCached() async {
        let cache = DecisionCache(lifetime: .seconds(60))
        let policy = policy(cache: cache)
        await assertFailsClosed(policy, subject, requested: ["read"])
        XCTAssertEqual(cache.count, 0)
    }

    func assertFailsClosed(
        _ policy: OPAPolicy, _ subject: PolicySubject, requested: [String], file: StaticString = #filePath, line: UInt = #line
    ) async {
        do {
            let granted = try await policy.grantedScopes(for: subject, requested: requested)
            XCTFail("granted \(granted) without OPA", file: file, line: line)
        } catch {
            XCTAssertTrue(error is PolicyError, "\(error)", file: file, line: line)
        }
    }
}
