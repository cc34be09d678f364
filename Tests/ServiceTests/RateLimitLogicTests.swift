import Foundation
import Logging
import SignetTestSupport
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

/// The limiter's shell on the injected clock: its in-memory windows and its breaker read the
/// `SignetClock` they are given, never the machine's.
final class RateLimiterClockTests: XCTestCase {
    private func limiter(redis: RedisTopology?, clock: ManualClock) -> RateLimiter {
        RateLimiter(
            configuration: RateLimitConfiguration(maxRequests: 2, windowMilliseconds: 1000, redis: redis, redisTimeout: .milliseconds(200)),
            logger: Logger(label: "test"), clock: clock.signetClock())
    }

    func testInMemoryWindowSlidesOnTheInjectedClock() async {
        let clock = ManualClock()
        let limiter = limiter(redis: nil, clock: clock)
        let agent = RateLimitSubject(.agent, "a")
        let first = await limiter.decide(agent)
        let second = await limiter.decide(agent)
        XCTAssertEqual([first.allowed, second.allowed], [true, true])
        clock.advance(by: .milliseconds(999))
        let third = await limiter.decide(agent)
        XCTAssertFalse(third.allowed, "both requests are still in the window")
        XCTAssertEqual(third.resetMilliseconds, 1)
        clock.advance(by: .milliseconds(1))
        let fourth = await limiter.decide(agent)
        XCTAssertTrue(fourth.allowed, "the window slid exactly when the injected clock reached it")
    }

    func testARefusedRedisOpensTheBreakerAndMemoryDecidesOnTheInjectedClock() async throws {
        let clock = ManualClock()
        // Port 1 on loopback refuses at once: the first call fails and opens the breaker.
        let limiter = limiter(redis: .server(try XCTUnwrap(RedisEndpoint(url: "redis://127.0.0.1:1"))), clock: clock)
        XCTAssertTrue(limiter.usesRedis)
        let agent = RateLimitSubject(.agent, "b")
        let first = await limiter.decide(agent)
        XCTAssertTrue(first.allowed)
        XCTAssertFalse(limiter.usesRedis, "one failed call opens the breaker")
        let second = await limiter.decide(agent)
        let third = await limiter.decide(agent)
        XCTAssertEqual([second.allowed, third.allowed], [true, false], "memory counted the failed call's decision")
        clock.advance(by: .seconds(1))
        let fourth = await limiter.decide(agent)
        XCTAssertTrue(fourth.allowed)
    }
}
