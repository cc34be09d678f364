import XCTest

@testable import Service

/// The change listener's timing rules (`ListenerMonitor`), each at exact instants: the heartbeat's
/// cadence and deadline, what a returning heartbeat confirms, the trigger warning, the outage's
/// two log lines and the reconnect backoff.
final class ListenerMonitorTests: XCTestCase {
    let start = ContinuousClock.now
    let heartbeat = Duration.seconds(1)
    let timeout = Duration.seconds(10)

    func monitor() -> ListenerMonitor { ListenerMonitor(heartbeat: heartbeat, heartbeatTimeout: timeout) }

    /// Sends a heartbeat at `at` and reports it enabled; returns its nonce.
    func send(_ monitor: inout ListenerMonitor, at instant: ContinuousClock.Instant, enabled: Bool = true) -> UInt64? {
        guard case .sendHeartbeat(let nonce) = monitor.tick(now: instant) else { return nil }
        monitor.heartbeatSent(nonce: nonce, triggersEnabled: enabled)
        return nonce
    }

    func testOneHeartbeatAtATimeEveryIntervalFromWhenTheLastWasSent() throws {
        var monitor = monitor()
        monitor.sessionStarted(now: start)
        let first = try XCTUnwrap(send(&monitor, at: start), "the first tick of a session sends")
        XCTAssertEqual(monitor.tick(now: start + .seconds(5)), .wait, "never a second while one is out")
        XCTAssertEqual(
            monitor.heartbeatArrived(payload: String(first)), .confirmed(at: start, afterOutage: nil),
            "it confirms up to when it was sent")
        // Back after 5 s: the next goes at once (the interval counts from the last send)...
        let second = try XCTUnwrap(send(&monitor, at: start + .seconds(5)))
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(second)), .confirmed(at: start + .seconds(5), afterOutage: nil))
        // ...and one that came back quickly waits for the interval.
        XCTAssertEqual(monitor.tick(now: start + .seconds(5) + .milliseconds(999)), .wait)
        XCTAssertNotNil(send(&monitor, at: start + .seconds(6)))
    }

    func testAHeartbeatNotBackPastTheTimeoutEndsTheSession() throws {
        var monitor = monitor()
        monitor.sessionStarted(now: start)
        _ = try XCTUnwrap(send(&monitor, at: start))
        XCTAssertEqual(monitor.tick(now: start + timeout), .wait, "exactly the timeout is still in time")
        XCTAssertEqual(monitor.tick(now: start + timeout + .nanoseconds(1)), .giveUp)
    }

    func testOnlyTheOutstandingHeartbeatReportedSentConfirms() throws {
        var monitor = monitor()
        monitor.sessionStarted(now: start)
        guard case .sendHeartbeat(let nonce) = monitor.tick(now: start) else { return XCTFail("sends") }
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(nonce)), .stray, "not reported sent yet: no trigger state known")
        monitor.heartbeatSent(nonce: nonce, triggersEnabled: true)
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(nonce + 1)), .stray)
        XCTAssertEqual(monitor.heartbeatArrived(payload: "junk"), .stray)
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(nonce)), .confirmed(at: start, afterOutage: nil))
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(nonce)), .stray, "a heartbeat confirms once")
    }

    func testADisabledTriggerConfirmsNothingAndIsWarnedOncePerSessionUntilConfirmedAgain() throws {
        var monitor = monitor()
        monitor.sessionStarted(now: start)
        var now = start
        func beat(enabled: Bool) throws -> ListenerMonitor.Heartbeat {
            let nonce = try XCTUnwrap(send(&monitor, at: now, enabled: enabled))
            defer { now = now + heartbeat }
            return monitor.heartbeatArrived(payload: String(nonce))
        }
        XCTAssertEqual(try beat(enabled: false), .triggersDisabled(warn: true))
        XCTAssertEqual(try beat(enabled: false), .triggersDisabled(warn: false), "warned once")
        XCTAssertEqual(try beat(enabled: true), .confirmed(at: start + heartbeat * 2, afterOutage: nil))
        XCTAssertEqual(try beat(enabled: false), .triggersDisabled(warn: true), "disabled again after a confirmation: warned again")
        monitor.sessionStarted(now: now)
        XCTAssertEqual(try beat(enabled: false), .triggersDisabled(warn: true), "a new session warns again")
    }

    func testAnOutageIsOneWarningThenDebugLinesThenOneLineWhenConfirmedAgain() throws {
        var monitor = monitor()
        // The very first attempt fails: the outage begins.
        XCTAssertEqual(monitor.sessionEnded(now: start).outage, .begins)
        XCTAssertEqual(monitor.sessionEnded(now: start + .seconds(1)).outage, .continues(failedAttempts: 1))
        // A session that listens but dies within the heartbeat timeout does not end the outage.
        monitor.sessionStarted(now: start + .seconds(2))
        XCTAssertEqual(monitor.sessionEnded(now: start + .seconds(2) + timeout - .nanoseconds(1)).outage, .continues(failedAttempts: 2))
        // A heartbeat confirms: the outage's end is logged once, with its failed attempts.
        let listening = start + .seconds(20)
        monitor.sessionStarted(now: listening)
        let first = try XCTUnwrap(send(&monitor, at: listening))
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(first)), .confirmed(at: listening, afterOutage: 3))
        let second = try XCTUnwrap(send(&monitor, at: listening + heartbeat))
        XCTAssertEqual(monitor.heartbeatArrived(payload: String(second)), .confirmed(at: listening + heartbeat, afterOutage: nil))
        // That session lived the heartbeat timeout: its failure begins a new outage.
        XCTAssertEqual(monitor.sessionEnded(now: listening + timeout).outage, .begins)
        XCTAssertTrue(monitor.inOutage)
    }

    func testReconnectingBacksOffFrom200MillisecondsDoublingUpTo5Seconds() {
        var monitor = monitor()
        let delays = (0..<8).map { attempt in monitor.sessionEnded(now: start + .seconds(attempt)).reconnectAfter }
        XCTAssertEqual(delays, [200, 400, 800, 1600, 3200, 5000, 5000, 5000].map { Duration.milliseconds($0) })
        // A session that lived long starts the backoff over.
        monitor.sessionStarted(now: start + .seconds(100))
        XCTAssertEqual(monitor.sessionEnded(now: start + .seconds(100) + timeout).reconnectAfter, .milliseconds(200))
    }
}
