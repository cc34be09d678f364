import Foundation
import Logging
import SignetTestSupport
import Synchronization
import XCTest

@testable import Service

/// The pool driver without PostgreSQL: in-memory connections and a manual clock, so waiting,
/// deadlines, cancellation and idle reaping are checked at exact instants, in microseconds.
final class PoolDriverTests: XCTestCase {
    final class FakeConnection: PoolConnection {
        let id: Int
        private let usable = Atomic<Bool>(true)
        private let closed = Atomic<Bool>(false)

        init(id: Int) { self.id = id }

        var isUsable: Bool { usable.load(ordering: .relaxed) && !isClosed }
        var isClosed: Bool { closed.load(ordering: .relaxed) }
        func breakIt() { usable.store(false, ordering: .relaxed) }
        func close() { closed.store(true, ordering: .relaxed) }
    }

    /// Hands out connections, or blocks `connect` while `held` (a server that does not answer).
    final class FakeFactory: PoolConnectionFactory {
        private let made = Atomic<Int>(0)
        let gate = DispatchSemaphore(value: 0)
        let holdConnects: Bool

        init(holdConnects: Bool = false) { self.holdConnects = holdConnects }

        var count: Int { made.load(ordering: .relaxed) }

        func makeConnection() throws -> FakeConnection {
            if holdConnects { gate.wait() }
            return FakeConnection(id: made.add(1, ordering: .relaxed).newValue)
        }
    }

    typealias Driver = PoolDriver<FakeFactory, ManualClock>

    private func makeDriver(
        min: Int = 0, max: Int = 2, idle: Duration = .seconds(30), connect: Duration = .seconds(5), factory: FakeFactory = FakeFactory()
    ) -> (Driver, ManualClock, Task<Void, any Error>) {
        let clock = ManualClock()
        let driver = Driver(
            configuration: PoolConfiguration(
                minimumConnections: min, maximumConnections: max, idleTimeout: idle, connectionTimeout: connect),
            factory: factory, clock: clock, logger: Logger(label: "test"))
        let running = Task { try await driver.run() }
        return (driver, clock, running)
    }

    private func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<2000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        XCTFail("never: \(what)")
    }

    func testMinimumConnectionsOpenAtStart() async throws {
        let (driver, _, running) = makeDriver(min: 2, max: 4)
        try await waitFor("two idle connections") { driver.statistics.idle == 2 }
        XCTAssertEqual(driver.statistics.total, 2)
        driver.shutdown()
        running.cancel()
    }

    func testAWaiterFailsExactlyAtTheConnectionDeadline() async throws {
        let factory = FakeFactory(holdConnects: true)
        let (driver, clock, running) = makeDriver(max: 1, connect: .seconds(5), factory: factory)
        let start = clock.now
        let waiter = Task { try await driver.lease(deadline: start + .seconds(5)) }
        try await waitFor("the request waits") { driver.statistics.waiting == 1 }
        try await waitFor("the tick loop sleeps") { clock.sleeperCount >= 1 }
        clock.advance(by: .milliseconds(4_999))
        try await waitFor("the tick loop sleeps again") { clock.sleeperCount >= 1 }
        XCTAssertEqual(driver.statistics.waiting, 1, "still waiting 1 ms before the deadline")
        clock.advance(by: .milliseconds(1))
        do {
            _ = try await waiter.value
            XCTFail("the lease should have timed out")
        } catch DatabaseError.poolTimeout(let stats) {
            XCTAssertEqual(stats.acquireTimeouts, 1)
        }
        XCTAssertEqual(driver.statistics.waiting, 0)
        factory.gate.signal()
        driver.shutdown()
        running.cancel()
    }

    func testWaitersAreServedInArrivalOrderWhenAConnectionComesBack() async throws {
        let (driver, _, running) = makeDriver(max: 1)
        let held = try await driver.lease()
        final class Order: Sendable {
            let served = Mutex<[Int]>([])
        }
        let order = Order()
        let first = Task {
            let lease = try await driver.lease()
            order.served.withLock { $0.append(1) }
            lease.release()
        }
        try await waitFor("first waits") { driver.statistics.waiting == 1 }
        let second = Task {
            let lease = try await driver.lease()
            order.served.withLock { $0.append(2) }
            lease.release()
        }
        try await waitFor("second waits") { driver.statistics.waiting == 2 }
        held.release()
        try await first.value
        try await second.value
        XCTAssertEqual(order.served.withLock { $0 }, [1, 2])
        XCTAssertEqual(driver.statistics.total, 1, "never more than max")
        driver.shutdown()
        running.cancel()
    }

    func testAWaiterCancelledWhileWaitingLeavesTheQueueAtOnce() async throws {
        let (driver, _, running) = makeDriver(max: 1)
        let held = try await driver.lease()
        let waiter = Task { try await driver.lease() }
        try await waitFor("the request waits") { driver.statistics.waiting == 1 }
        waiter.cancel()
        do {
            _ = try await waiter.value
            XCTFail("expected CancellationError")
        } catch is CancellationError {}
        XCTAssertEqual(driver.statistics.waiting, 0)
        held.release()
        try await waitFor("the connection is idle again") { driver.statistics.idle == 1 }
        driver.shutdown()
        running.cancel()
    }

    func testABrokenConnectionIsClosedAndNeverLeasedAgain() async throws {
        let (driver, _, running) = makeDriver(max: 1)
        let lease = try await driver.lease()
        let broken = lease.connection
        lease.release(reusable: false)
        try await waitFor("it is closed") { broken.isClosed }
        let next = try await driver.lease()
        XCTAssertFalse(next.connection === broken)
        next.release()
        driver.shutdown()
        running.cancel()
    }

    func testIdleConnectionsAboveMinimumCloseAfterTheIdleTimeout() async throws {
        let (driver, clock, running) = makeDriver(min: 1, max: 3, idle: .seconds(30))
        let leases = [try await driver.lease(), try await driver.lease(), try await driver.lease()]
        for lease in leases { lease.release() }
        XCTAssertEqual(driver.statistics.idle, 3)
        try await waitFor("the tick loop sleeps") { clock.sleeperCount >= 1 }
        clock.advance(by: .seconds(29))
        try await waitFor("the tick loop sleeps again") { clock.sleeperCount >= 1 }
        XCTAssertEqual(driver.statistics.total, 3, "nothing closes before the idle timeout")
        clock.advance(by: .seconds(1))
        try await waitFor("back to the minimum") { driver.statistics.total == 1 }
        XCTAssertEqual(driver.statistics.connectionsClosed, 2)
        driver.shutdown()
        running.cancel()
    }
}
