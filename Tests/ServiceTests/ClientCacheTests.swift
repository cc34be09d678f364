import XCTest

@testable import Service

/// The credential cache's timing rules as a pure value: instants in, answers out.
final class ClientCacheTests: XCTestCase {
    private let start = ContinuousClock.now
    private let record = ClientRecord(
        agentID: "a", clientID: "c", owner: "test", status: .active, scopes: ["read"], credentials: [], tokenGeneration: 0,
        rateLimitSubject: RateLimitSubject(.agent, "a"))

    private func cache() -> ClientCache {
        ClientCache(
            ttl: .seconds(300), fallbackTTL: .seconds(1), unknownTTL: .seconds(60), listenerGrace: .seconds(2), capacity: 4,
            unknownCapacity: 2)
    }

    private func isKnown(_ lookup: ClientCache.Lookup) -> Bool {
        if case .known = lookup { true } else { false }
    }

    func testWithoutAListenerAnEntryLivesTheFallbackOnly() {
        var cache = cache()
        cache.store("c", record, fetched: start)
        XCTAssertTrue(isKnown(cache.lookup("c", now: start + .milliseconds(999))))
        XCTAssertFalse(isKnown(cache.lookup("c", now: start + .seconds(1))))
    }

    func testAnEntryReadWhileTheListenerIsConfirmedLivesTheTTLWhileHeartbeatsComeBack() {
        var cache = cache()
        cache.listenerStarted(at: start)
        cache.store("c", record, fetched: start + .milliseconds(10))
        XCTAssertFalse(isKnown(cache.lookup("c", now: start + .seconds(1) + .milliseconds(10))), "no heartbeat back yet: fallback")
        cache.listenerConfirmed(at: start + .seconds(1))
        XCTAssertTrue(isKnown(cache.lookup("c", now: start + .seconds(2))))
        XCTAssertFalse(
            isKnown(cache.lookup("c", now: start + .seconds(3))), "its last heartbeat is as old as the grace: fallback again")
        cache.listenerConfirmed(at: start + .seconds(299))
        XCTAssertTrue(isKnown(cache.lookup("c", now: start + .seconds(300))))
        XCTAssertFalse(isKnown(cache.lookup("c", now: start + .seconds(300) + .milliseconds(10))), "the ttl ends it")
    }

    func testAnEntryReadBeforeTheListenerStartedNeverLivesLong() {
        var cache = cache()
        cache.listenerStarted(at: start)
        cache.store("c", record, fetched: start - .milliseconds(1))
        cache.listenerConfirmed(at: start + .milliseconds(500))
        XCTAssertEqual(cache.lifetime(of: ClientCache.Entry(record: record, fetched: start - .milliseconds(1)), at: start), .seconds(1))
        XCTAssertFalse(isKnown(cache.lookup("c", now: start + .seconds(1))))
    }

    func testConfirmationsNeverMoveBackAndALostListenerDropsEverything() {
        var cache = cache()
        cache.listenerStarted(at: start)
        cache.listenerConfirmed(at: start + .seconds(5))
        cache.listenerConfirmed(at: start + .seconds(1))
        XCTAssertTrue(cache.isListening(at: start + .seconds(6)), "a late answer to an older heartbeat does not age the listener")
        cache.store("c", record, fetched: start + .seconds(6))
        cache.listenerLost()
        XCTAssertFalse(cache.isListening(at: start + .seconds(6)))
        XCTAssertFalse(isKnown(cache.lookup("c", now: start + .seconds(6))))
        XCTAssertEqual(cache.known.count, 0)
    }

    func testUnknownIdsLiveTheirOwnTTLInTheirOwnBound() {
        var cache = cache()
        for id in ["u1", "u2", "u3"] { cache.store(id, nil, fetched: start) }
        guard case .unknown = cache.lookup("u3", now: start + .seconds(59)) else { return XCTFail("remembered as unknown") }
        guard case .miss = cache.lookup("u3", now: start + .seconds(60)) else { return XCTFail("forgotten after its ttl") }
        guard case .miss = cache.lookup("u1", now: start) else { return XCTFail("the oldest went past the bound of 2") }
        cache.store("c", record, fetched: start)
        XCTAssertEqual(cache.known.count, 1, "unknown ids never take a known client's slot")
    }

    func testReadSinceRefusesAnOlderEntryAndInvalidateDropsOne() {
        var cache = cache()
        cache.store("c", record, fetched: start)
        guard case .miss = cache.lookup("c", now: start, readSince: start + .milliseconds(1)) else {
            return XCTFail("an entry read before readSince does not count")
        }
        XCTAssertTrue(isKnown(cache.lookup("c", now: start, readSince: start)))
        cache.invalidate("c")
        guard case .miss = cache.lookup("c", now: start) else { return XCTFail("invalidated") }
    }
}
