import Service
import XCTest

/// The pool's logic with time driven by hand: every instant below is exact.
final class PoolStateMachineTests: XCTestCase {
    typealias Action = PoolStateMachine.Action
    let t0 = ContinuousClock.now

    func makePool(min: Int = 0, max: Int = 2, idleMs: Int = 1000, timeoutMs: Int = 300) -> PoolStateMachine {
        PoolStateMachine(
            configuration: PoolConfiguration(
                minimumConnections: min,
                maximumConnections: max,
                idleTimeout: .milliseconds(idleMs),
                connectionTimeout: .milliseconds(timeoutMs)
            )
        )
    }

    func at(_ ms: Int) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }

    /// Opens every connection the actions ask for, at `ms`; returns the actions that follow.
    func openAll(_ actions: [Action], in pool: inout PoolStateMachine, at ms: Int) -> [Action] {
        var follow: [Action] = []
        for case .openConnection(let id, _) in actions { follow += pool.connectionOpened(id, now: at(ms)) }
        return follow
    }

    func testStartOpensMinimumConnections() {
        var pool = makePool(min: 2, max: 5)
        let actions = pool.start()
        XCTAssertEqual(actions, [.openConnection(0, delay: .zero), .openConnection(1, delay: .zero)])
        XCTAssertEqual(openAll(actions, in: &pool, at: 0), [])
        XCTAssertEqual(pool.statistics.idle, 2)
        XCTAssertEqual(pool.statistics.total, 2)
    }

    func testExhaustionThenTimeout() {
        var pool = makePool(min: 0, max: 2, timeoutMs: 300)
        // Two leases take both connections.
        XCTAssertEqual(pool.leaseRequested(1, deadline: at(300), now: at(0)), [.openConnection(0, delay: .zero)])
        XCTAssertEqual(pool.connectionOpened(0, now: at(1)), [.lease(0, to: 1)])
        XCTAssertEqual(pool.leaseRequested(2, deadline: at(301), now: at(1)), [.openConnection(1, delay: .zero)])
        XCTAssertEqual(pool.connectionOpened(1, now: at(2)), [.lease(1, to: 2)])
        // A third waits: no connection beyond max.
        XCTAssertEqual(pool.leaseRequested(3, deadline: at(310), now: at(10)), [])
        XCTAssertEqual(pool.statistics.waiting, 1)
        XCTAssertEqual(pool.statistics.total, 2)
        // Nothing happens before its deadline...
        XCTAssertEqual(pool.tick(now: at(309)), [])
        // ...and at the deadline it fails.
        XCTAssertEqual(pool.tick(now: at(310)), [.failRequest(3, .timedOut)])
        XCTAssertEqual(pool.statistics.waiting, 0)
        XCTAssertEqual(pool.statistics.acquireTimeouts, 1)
    }

    /// A health check's shorter deadline behind an API request's longer one: it fails at its
    /// own deadline, and the earlier waiter keeps waiting (and its place).
    func testAWaiterBehindALaterDeadlineFailsAtItsOwn() {
        var pool = makePool(min: 0, max: 1)
        _ = pool.leaseRequested(1, deadline: at(5000), now: at(0))
        _ = pool.connectionOpened(0, now: at(0))
        XCTAssertEqual(pool.leaseRequested(2, deadline: at(5000), now: at(0)), [])
        XCTAssertEqual(pool.leaseRequested(3, deadline: at(2000), now: at(0)), [])
        XCTAssertEqual(pool.leaseRequested(4, deadline: at(5001), now: at(0)), [])
        XCTAssertEqual(pool.nextDeadline, at(2000))
        XCTAssertEqual(pool.tick(now: at(1999)), [])
        XCTAssertEqual(pool.tick(now: at(2000)), [.failRequest(3, .timedOut)])
        XCTAssertEqual(pool.nextDeadline, at(5000))
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(2500)), [.lease(0, to: 2)], "the oldest waiter is served first")
        XCTAssertEqual(pool.statistics.waiting, 1)
    }

    func testWaiterIsServedWhenALeaseIsReleasedBeforeItsDeadline() {
        var pool = makePool(min: 0, max: 1)
        _ = pool.leaseRequested(1, deadline: at(300), now: at(0))
        _ = pool.connectionOpened(0, now: at(0))
        XCTAssertEqual(pool.leaseRequested(2, deadline: at(300), now: at(0)), [])
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(299)), [.lease(0, to: 2)])
        XCTAssertEqual(pool.tick(now: at(400)), [])
        XCTAssertEqual(pool.statistics.acquireTimeouts, 0)
    }

    func testWaitersAreServedInFIFOOrder() {
        var pool = makePool(min: 1, max: 1)
        _ = openAll(pool.start(), in: &pool, at: 0)
        XCTAssertEqual(pool.leaseRequested(100, deadline: at(1000), now: at(0)), [.lease(0, to: 100)])
        for request in 1...5 {
            XCTAssertEqual(pool.leaseRequested(request, deadline: at(1000), now: at(request)), [])
        }
        var served: [Int] = []
        for step in 1...5 {
            let actions = pool.connectionReleased(0, reusable: true, now: at(10 + step))
            for case .lease(_, let request) in actions { served.append(request) }
        }
        XCTAssertEqual(served, [1, 2, 3, 4, 5])
    }

    func testReleaseHandsConnectionToOldestWaiterEvenWhenNewRequestsArrive() {
        var pool = makePool(min: 1, max: 1)
        _ = openAll(pool.start(), in: &pool, at: 0)
        _ = pool.leaseRequested(1, deadline: at(1000), now: at(0))
        _ = pool.leaseRequested(2, deadline: at(1000), now: at(1))
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(2)), [.lease(0, to: 2)])
        // A newcomer does not jump the queue while someone waits.
        _ = pool.leaseRequested(3, deadline: at(1000), now: at(3))
        _ = pool.leaseRequested(4, deadline: at(1000), now: at(4))
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(5)), [.lease(0, to: 3)])
    }

    func testIdleConnectionsAboveMinimumAreReapedToExactlyMinimum() {
        var pool = makePool(min: 2, max: 10, idleMs: 200)
        _ = openAll(pool.start(), in: &pool, at: 0)
        // A burst of 10 leases opens 8 more connections.
        var leased: [Int] = []
        for request in 0..<10 {
            var actions = pool.leaseRequested(request, deadline: at(5000), now: at(1))
            actions += openAll(actions, in: &pool, at: 2)
            for case .lease(let connection, _) in actions { leased.append(connection) }
        }
        XCTAssertEqual(leased.count, 10)
        XCTAssertEqual(pool.statistics.total, 10)
        for connection in leased { _ = pool.connectionReleased(connection, reusable: true, now: at(10)) }
        XCTAssertEqual(pool.statistics.idle, 10)
        XCTAssertEqual(pool.tick(now: at(209)), [], "not idle long enough yet")
        let closed = pool.tick(now: at(210)).filter { if case .closeConnection = $0 { true } else { false } }
        XCTAssertEqual(closed.count, 8)
        XCTAssertEqual(pool.statistics.total, 2)
        XCTAssertEqual(pool.tick(now: at(10_000)), [], "never below min")
        XCTAssertEqual(pool.statistics.total, 2)
    }

    func testRecentlyUsedConnectionsAreLeasedFirstSoSurplusStaysIdle() {
        var pool = makePool(min: 0, max: 3, idleMs: 100)
        for request in 0..<3 {
            _ = openAll(pool.leaseRequested(request, deadline: at(1000), now: at(0)), in: &pool, at: 0)
        }
        _ = pool.connectionReleased(0, reusable: true, now: at(1))
        _ = pool.connectionReleased(1, reusable: true, now: at(2))
        _ = pool.connectionReleased(2, reusable: true, now: at(3))
        // Steady traffic of one request at a time reuses connection 2 only.
        for step in 0..<10 {
            XCTAssertEqual(pool.leaseRequested(10 + step, deadline: at(2000), now: at(50 + step)), [.lease(2, to: 10 + step)])
            _ = pool.connectionReleased(2, reusable: true, now: at(50 + step))
        }
        XCTAssertEqual(Set(pool.tick(now: at(102))), [.closeConnection(0), .closeConnection(1)])
    }

    func testMinimumIsRestoredAfterConnectFailuresWithBackoff() {
        var pool = makePool(min: 2, max: 4)
        XCTAssertEqual(pool.start().count, 2)
        XCTAssertEqual(pool.connectionFailed(0, now: at(0)), [.openConnection(2, delay: .milliseconds(50))])
        XCTAssertEqual(pool.connectionFailed(1, now: at(0)), [.openConnection(3, delay: .milliseconds(100))])
        XCTAssertEqual(pool.connectionFailed(2, now: at(50)), [.openConnection(4, delay: .milliseconds(200))])
        XCTAssertEqual(pool.connectionOpened(3, now: at(100)), [])
        XCTAssertEqual(pool.connectionOpened(4, now: at(250)), [])
        XCTAssertEqual(pool.statistics.total, 2)
        XCTAssertEqual(pool.statistics.idle, 2)
        XCTAssertEqual(pool.statistics.connectFailures, 3)
    }

    func testBrokenConnectionIsClosedReplacedAndNeverHandedOutAgain() {
        var pool = makePool(min: 1, max: 1)
        _ = openAll(pool.start(), in: &pool, at: 0)
        XCTAssertEqual(pool.leaseRequested(1, deadline: at(300), now: at(0)), [.lease(0, to: 1)])
        _ = pool.leaseRequested(2, deadline: at(300), now: at(1))
        let actions = pool.connectionReleased(0, reusable: false, now: at(2))
        XCTAssertEqual(actions, [.closeConnection(0), .openConnection(1, delay: .zero)])
        XCTAssertEqual(pool.connectionOpened(1, now: at(3)), [.lease(1, to: 2)])
        // The broken id is gone for good: releasing it again does nothing.
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(4)), [])
        XCTAssertEqual(pool.statistics.total, 1)
    }

    func testNeverMoreThanMaximumConnections() {
        var pool = makePool(min: 0, max: 3)
        var opened = 0
        for request in 0..<20 {
            for case .openConnection(_, _) in pool.leaseRequested(request, deadline: at(1000), now: at(0)) { opened += 1 }
            XCTAssertLessThanOrEqual(pool.statistics.total, 3)
        }
        XCTAssertEqual(opened, 3)
        XCTAssertEqual(pool.statistics.waiting, 20)
    }

    func testCancelledWaiterIsSkipped() {
        var pool = makePool(min: 1, max: 1)
        _ = openAll(pool.start(), in: &pool, at: 0)
        _ = pool.leaseRequested(1, deadline: at(1000), now: at(0))
        _ = pool.leaseRequested(2, deadline: at(1000), now: at(0))
        _ = pool.leaseRequested(3, deadline: at(1000), now: at(0))
        _ = pool.leaseCancelled(2)
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(1)), [.lease(0, to: 3)])
    }

    func testNoLeaseAfterShutdown() {
        var pool = makePool(min: 2, max: 2)
        _ = openAll(pool.start(), in: &pool, at: 0)
        XCTAssertEqual(pool.leaseRequested(1, deadline: at(1000), now: at(0)), [.lease(1, to: 1)])
        XCTAssertEqual(pool.leaseRequested(2, deadline: at(1000), now: at(0)), [.lease(0, to: 2)])
        _ = pool.leaseRequested(3, deadline: at(1000), now: at(0))
        XCTAssertEqual(pool.shutdown(), [.failRequest(3, .shutDown)])
        XCTAssertEqual(pool.leaseRequested(4, deadline: at(1000), now: at(1)), [.failRequest(4, .shutDown)])
        XCTAssertFalse(pool.isDrained)
        XCTAssertEqual(pool.connectionReleased(1, reusable: true, now: at(2)), [.closeConnection(1)])
        XCTAssertEqual(pool.connectionReleased(0, reusable: true, now: at(2)), [.closeConnection(0)])
        XCTAssertTrue(pool.isDrained)
    }

    func testConnectionOpenedDuringShutdownIsClosed() {
        var pool = makePool(min: 0, max: 1)
        XCTAssertEqual(pool.leaseRequested(1, deadline: at(1000), now: at(0)), [.openConnection(0, delay: .zero)])
        _ = pool.shutdown()
        XCTAssertEqual(pool.connectionOpened(0, now: at(1)), [.closeConnection(0)])
        XCTAssertTrue(pool.isDrained)
    }

    func testLeaseWithDeadlineAlreadyPassedFailsAtOnceWhenNothingIsIdle() {
        var pool = makePool(min: 0, max: 1)
        XCTAssertEqual(pool.leaseRequested(1, deadline: at(0), now: at(0)), [.failRequest(1, .timedOut)])
    }
}
