import Foundation
import Logging
import NIOPosix
import Synchronization
import XCTest

@testable import Service

/// `withDeadline` ends the caller's wait at the deadline, whatever the operation does: the
/// property a task group (which waits for its children) does not have.
final class DeadlineTests: XCTestCase {
    func testTheCallerResumesAtTheDeadlineWhileABlockingCallStillRuns() async throws {
        let release = DispatchSemaphore(value: 0)
        let finished = Atomic<Bool>(false)
        let threads = NIOThreadPool(numberOfThreads: 1)
        threads.start()
        let outcome = await withDeadline(.milliseconds(50)) {
            try await threads.runIfActive {
                // A libpq or hiredis call stuck on a frozen server: cancellation cannot stop it.
                release.wait()
                finished.store(true, ordering: .sequentiallyConsistent)
                return 1
            }
        }
        guard case .timedOut = outcome else { return XCTFail("expected .timedOut, got \(outcome)") }
        XCTAssertFalse(finished.load(ordering: .sequentiallyConsistent), "the caller went on while the call was still blocked")
        release.signal()
        try await threads.shutdownGracefully()
        XCTAssertTrue(finished.load(ordering: .sequentiallyConsistent))
    }

    func testAResultBeforeTheDeadlineIsReturned() async {
        let outcome = await withDeadline(.seconds(60)) { 42 }
        guard case .success(42) = outcome else { return XCTFail("expected .success(42), got \(outcome)") }
    }

    func testAnErrorBeforeTheDeadlineIsReturned() async {
        struct Boom: Error {}
        let outcome = await withDeadline(.seconds(60)) { () async throws -> Int in throw Boom() }
        guard case .failure(let error) = outcome else { return XCTFail("expected .failure, got \(outcome)") }
        XCTAssertTrue(error is Boom)
    }

    func testACooperativeOperationIsCancelledAtTheDeadline() async throws {
        let sawCancellation = Atomic<Bool>(false)
        let outcome = await withDeadline(.milliseconds(20)) { () async throws -> Int in
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                sawCancellation.store(true, ordering: .sequentiallyConsistent)
                throw error
            }
            return 0
        }
        guard case .timedOut = outcome else { return XCTFail("expected .timedOut, got \(outcome)") }
        try await waitFor("the operation sees its cancellation") { sawCancellation.load(ordering: .sequentiallyConsistent) }
    }

    /// The race the issue names: a task cancelled before it starts waiting must not wait until
    /// its deadline (an hour here: the test would hang).
    func testACallerCancelledBeforeItWaitsResumesAtOnce() async {
        let task = Task { () -> TimeoutOutcome<Int> in
            withUnsafeCurrentTask { $0?.cancel() }
            return await withDeadline(.seconds(3600)) {
                try await Task.sleep(for: .seconds(3600))
                return 0
            }
        }
        let outcome = await task.value
        guard case .failure(let error) = outcome else { return XCTFail("expected .failure, got \(outcome)") }
        XCTAssertTrue(error is CancellationError)
    }

    func testACallerCancelledWhileWaitingResumesAtOnce() async throws {
        let started = Atomic<Bool>(false)
        let task = Task { () -> TimeoutOutcome<Int> in
            await withDeadline(.seconds(3600)) {
                started.store(true, ordering: .sequentiallyConsistent)
                try await Task.sleep(for: .seconds(3600))
                return 0
            }
        }
        try await waitFor("the operation runs") { started.load(ordering: .sequentiallyConsistent) }
        task.cancel()
        let outcome = await task.value
        guard case .failure(let error) = outcome else { return XCTFail("expected .failure, got \(outcome)") }
        XCTAssertTrue(error is CancellationError)
    }

    private func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<500 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTFail("timed out waiting until \(what)")
    }
}

/// The pool's lease, without PostgreSQL (nothing listens at its address): a request cancelled
/// before it starts waiting fails at once, not at `DB_POOL_CONNECTION_TIMEOUT_MS`.
final class PoolCancellationTests: XCTestCase {
    func testALeaseCancelledBeforeItWaitsFailsAtOnce() async throws {
        let pool = ConnectionPool(
            configuration: PoolConfiguration(
                minimumConnections: 0, maximumConnections: 1, idleTimeout: .seconds(60), connectionTimeout: .seconds(3600)),
            connectionString: "postgresql://nobody@127.0.0.1:1/none",
            logger: Logger(label: "test")
        )
        let task = Task { () -> (any Error)? in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                _ = try await pool.lease()
                return nil
            } catch {
                return error
            }
        }
        let error = await task.value
        XCTAssertTrue(error is CancellationError, "expected CancellationError, got \(String(describing: error))")
        XCTAssertEqual(pool.statistics.waiting, 0, "the cancelled request does not stay queued")
    }
}
