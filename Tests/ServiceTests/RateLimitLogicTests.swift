import XCTest

@testable import Service

/// The sliding window and the circuit breaker, with time given by hand.
final class SlidingWindowTests: XCTestCase {
    func testAllowsExactlyTheLimitThenRejects() {
        var window = SlidingWindow(limit: 3, windowMilliseconds: 1000)
        let decisions = (0..<5).map { window.decide("a", now: Int64($0) * 10) }
        XCTAssertEqual(decisions.map(\.allowed), [true, true, true, false, false])
        XCTAssertEqual(decisions.map(\.remaining), [2, 1, 0, 0, 0])
        // The oldest (t=0) leaves at t=1000: reset counted from each decision.
        XCTAssertEqual(decisions[3].resetMilliseconds, 1000 - 30)
        XCTAssertEqual(decisions[4].retryAfterSeconds, 1)
    }

    func testRejectedRequestsAreNotCounted() {
        var window = SlidingWindow(limit: 1, windowMilliseconds: 100)
        XCTAssertTrue(window.decide("a", now: 0).allowed)
        for time in stride(from: Int64(1), to: 100, by: 7) { XCTAssertFalse(window.decide("a", now: time).allowed) }
        // Had rejections counted, the window would still be full here.
        XCTAssertTrue(window.decide("a", now: 100).allowed)
    }

    func testWindowSlidesAtItsExactBoundary() {
        var window = SlidingWindow(limit: 2, windowMilliseconds: 1000)
        XCTAssertTrue(window.decide("a", now: 0).allowed)
        XCTAssertTrue(window.decide("a", now: 500).allowed)
        XCTAssertFalse(window.decide("a", now: 999).allowed, "t=0 is still in (−1, 999]")
        XCTAssertTrue(window.decide("a", now: 1000).allowed, "t=0 left at exactly 1000")
        XCTAssertFalse(window.decide("a", now: 1499).allowed)
        let slid = window.decide("a", now: 1500)
        XCTAssertTrue(slid.allowed)
        XCTAssertEqual(slid.resetMilliseconds, 500, "oldest counted is t=1000, leaving at 2000")
    }

    func testRetryAfterRoundsUpToWholeSecondsAndIsAtLeastOne() {
        var window = SlidingWindow(limit: 1, windowMilliseconds: 60_000)
        _ = window.decide("a", now: 0)
        XCTAssertEqual(window.decide("a", now: 1).retryAfterSeconds, 60, "59.999 s rounds up")
        XCTAssertEqual(window.decide("a", now: 59_000).retryAfterSeconds, 1)
        XCTAssertEqual(window.decide("a", now: 59_999).retryAfterSeconds, 1, "1 ms left is still 1 s")
    }

    func testSubjectsAreIndependent() {
        var window = SlidingWindow(limit: 1, windowMilliseconds: 1000)
        XCTAssertTrue(window.decide("a", now: 0).allowed)
        XCTAssertTrue(window.decide("b", now: 0).allowed)
        XCTAssertFalse(window.decide("a", now: 1).allowed)
        XCTAssertEqual(window.subjectCount, 2)
    }

    func testSubjectsAreBoundedLeastRecentlyUsedFirstOut() {
        var window = SlidingWindow(limit: 1, windowMilliseconds: 60_000, capacity: 2)
        XCTAssertTrue(window.decide("a", now: 0).allowed)
        XCTAssertTrue(window.decide("b", now: 1).allowed)
        XCTAssertFalse(window.decide("a", now: 2).allowed, "a is the most recent now")
        XCTAssertTrue(window.decide("c", now: 3).allowed, "a third subject pushes out b, the least recently used")
        XCTAssertEqual(window.subjectCount, 2)
        XCTAssertFalse(window.decide("a", now: 4).allowed, "a kept its count")
        XCTAssertTrue(window.decide("b", now: 5).allowed, "b starts again from nothing")
    }
}

final class CircuitBreakerTests: XCTestCase {
    let t0 = ContinuousClock.now

    func testOneFailureOpensOnceAndOneSuccessCloses() {
        var breaker = CircuitBreaker(probeInterval: .milliseconds(500))
        XCTAssertTrue(breaker.allowsRequests)
        XCTAssertEqual(breaker.failed(now: t0), .opened)
        XCTAssertFalse(breaker.allowsRequests)
        XCTAssertEqual(breaker.failed(now: t0 + .milliseconds(10)), .none, "reported once, not per failure")
        XCTAssertEqual(breaker.succeeded(now: t0 + .seconds(3)), .closed(after: .seconds(3)))
        XCTAssertTrue(breaker.allowsRequests)
        XCTAssertEqual(breaker.succeeded(now: t0 + .seconds(4)), .none)
    }

    func testProbesAreSpacedByTheInterval() {
        var breaker = CircuitBreaker(probeInterval: .milliseconds(500))
        XCTAssertFalse(breaker.probeDue(now: t0), "no probe while closed")
        _ = breaker.failed(now: t0)
        XCTAssertFalse(breaker.probeDue(now: t0 + .milliseconds(499)))
        XCTAssertTrue(breaker.probeDue(now: t0 + .milliseconds(500)))
        XCTAssertFalse(breaker.probeDue(now: t0 + .milliseconds(600)))
        XCTAssertTrue(breaker.probeDue(now: t0 + .milliseconds(1000)))
    }
}

/// When the Redis limiter opens another connection.
final class RedisWorkerRuleTests: XCTestCase {
    func testOneWorkerUntilMoreThanAFullPipelineWaitsPerBusyWorker() {
        let full = RedisWindow.batchLimit
        XCTAssertTrue(
            PipelineQueue<Int>.startsWorker(busy: 0, queued: 1, maxWorkers: 2, batchLimit: full), "the first decision starts a worker")
        XCTAssertFalse(PipelineQueue<Int>.startsWorker(busy: 1, queued: 1, maxWorkers: 2, batchLimit: full))
        XCTAssertFalse(
            PipelineQueue<Int>.startsWorker(busy: 1, queued: full, maxWorkers: 2, batchLimit: full),
            "one full pipeline waits for the busy worker")
        XCTAssertTrue(PipelineQueue<Int>.startsWorker(busy: 1, queued: full + 1, maxWorkers: 2, batchLimit: full))
        XCTAssertFalse(
            PipelineQueue<Int>.startsWorker(busy: 2, queued: 10 * full, maxWorkers: 2, batchLimit: full), "never more than maxWorkers")
        XCTAssertFalse(PipelineQueue<Int>.startsWorker(busy: 1, queued: 10 * full, maxWorkers: 1, batchLimit: full))
    }
}
