import XCTest

@testable import Service

/// The pipelining queue of the Redis client layer, without Redis: when workers start, what each
/// sends, and when it stops.
final class PipelineQueueTests: XCTestCase {
    func testTheFirstItemStartsAWorkerOnItsOwnThreadAndFollowersJoinItsNextBatch() {
        var queue = PipelineQueue<Int>(maxWorkers: 2, batchLimit: 3)
        XCTAssertEqual(queue.enqueue(1), .worker(onFirstThread: true))
        XCTAssertEqual(queue.enqueue(2), .none)
        XCTAssertEqual(queue.enqueue(3), .none)
        XCTAssertEqual(queue.nextBatch(onFirstThread: true), [1, 2, 3])
        XCTAssertEqual(queue.enqueue(4), .none, "the busy worker sends it next")
        XCTAssertEqual(queue.nextBatch(onFirstThread: true), [4])
        XCTAssertEqual(queue.nextBatch(onFirstThread: true), [], "drained: the worker stops")
        XCTAssertEqual(queue.busyWorkers, 0)
        XCTAssertEqual(queue.enqueue(5), .worker(onFirstThread: true), "the first thread is free again")
    }

    func testASecondWorkerStartsOnlyPastAFullPipelinePerBusyWorker() {
        var queue = PipelineQueue<Int>(maxWorkers: 2, batchLimit: 2)
        XCTAssertEqual(queue.enqueue(1), .worker(onFirstThread: true))
        XCTAssertEqual(queue.nextBatch(onFirstThread: true), [1])
        XCTAssertEqual(queue.enqueue(2), .none)
        XCTAssertEqual(queue.enqueue(3), .none, "one full pipeline waits for the busy worker")
        XCTAssertEqual(queue.enqueue(4), .worker(onFirstThread: false))
        XCTAssertEqual(queue.enqueue(5), .none, "never more than maxWorkers")
        XCTAssertEqual(queue.enqueue(6), .none)
        XCTAssertEqual(queue.nextBatch(onFirstThread: false), [2, 3], "batches are at most batchLimit, oldest first")
    }

    func testTakeAllEmptiesTheQueueForFailingAtOnce() {
        var queue = PipelineQueue<Int>(maxWorkers: 1, batchLimit: 8)
        _ = queue.enqueue(1)
        _ = queue.enqueue(2)
        XCTAssertEqual(queue.takeAll(), [1, 2])
        XCTAssertEqual(queue.nextBatch(onFirstThread: true), [])
    }
}
