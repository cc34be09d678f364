import Logging
import SignetTestSupport
import Synchronization
import XCTest

@testable import Service

/// The health round cache's timing rules (`HealthRounds`), each at exact instants, and the shell
/// (`HealthMonitor`) keeping them with real tasks on a `ManualClock`.
final class HealthRoundsTests: XCTestCase {
    let start = ContinuousClock.now

    func testTheFirstRequestStartsARoundAndTheOthersJoinIt() {
        var rounds = HealthRounds<String>(sharedFor: .seconds(1))
        guard case .start(let round) = rounds.request(now: start) else { return XCTFail("a round starts") }
        for offset in [0, 10, 5_000] {
            guard case .join(let joined) = rounds.request(now: start + .milliseconds(offset)) else {
                return XCTFail("a request while the round runs joins it, however long it runs (+\(offset) ms)")
            }
            XCTAssertEqual(joined, round)
        }
        XCTAssertEqual(rounds.running, round)
    }

    func testAReportIsSharedForItsWindowFromTheEndOfItsRound() {
        var rounds = HealthRounds<String>(sharedFor: .seconds(1))
        guard case .start(let round) = rounds.request(now: start) else { return XCTFail("a round starts") }
        // The round took 2 s: its report is shared from when it ended, not from when it started.
        let ended = start + .seconds(2)
        rounds.finished(round: round, report: "first", now: ended)
        XCTAssertNil(rounds.running)
        for offset in [0, 1, 999] {
            guard case .answer(let report) = rounds.request(now: ended + .milliseconds(offset)) else {
                return XCTFail("shared at +\(offset) ms")
            }
            XCTAssertEqual(report, "first")
        }
        guard case .start(let next) = rounds.request(now: ended + .seconds(1)) else {
            return XCTFail("exactly the window later a new round starts")
        }
        XCTAssertEqual(next, round + 1)
        // While it runs, the old report is not answered: the request waits for the new round.
        guard case .join(next) = rounds.request(now: ended + .milliseconds(1_001)) else { return XCTFail("joins the new round") }
    }

    func testTheEndOfARoundThatIsNotUnderWayChangesNothing() {
        var rounds = HealthRounds<String>(sharedFor: .seconds(1))
        guard case .start(let round) = rounds.request(now: start) else { return XCTFail("a round starts") }
        rounds.finished(round: round + 7, report: "stray", now: start)
        XCTAssertEqual(rounds.running, round)
        XCTAssertNil(rounds.latest)
        rounds.finished(round: round, report: "real", now: start)
        rounds.finished(round: round, report: "again", now: start + .milliseconds(500))
        XCTAssertEqual(rounds.latest?.report, "real")
        XCTAssertEqual(rounds.latest?.at, start)
    }

    /// The shell: a hundred requests within the window make one round of checks; the window
    /// passing on the clock (and nothing else) makes the next.
    func testAMonitorMakesOneRoundOfChecksPerWindow() async throws {
        let clock = ManualClock(start: start)
        let calls = Atomic<Int>(0)
        let monitor = HealthMonitor(
            database: { _ in
                calls.add(1, ordering: .relaxed)
                return "pool ok"
            },
            redis: nil, vault: nil, opa: nil, timeout: .seconds(2), degradedAfter: .seconds(1), sharedFor: .seconds(1),
            logger: Logger(label: "test"), clock: clock.signetClock(wall: { Date(timeIntervalSince1970: 1_800_000_000) }))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<100 { group.addTask { _ = await monitor.report() } }
        }
        XCTAssertEqual(calls.load(ordering: .relaxed), 1, "a hundred requests in one window: one round")
        clock.advance(by: .milliseconds(999))
        _ = await monitor.report()
        XCTAssertEqual(calls.load(ordering: .relaxed), 1, "still shared just inside the window")
        clock.advance(by: .milliseconds(1))
        let report = await monitor.report()
        XCTAssertEqual(calls.load(ordering: .relaxed), 2, "the window passed: a new round")
        XCTAssertEqual(report.database.status, .healthy)
        XCTAssertEqual(report.checkedAt, "2027-01-15T08:00:00Z", "checkedAt from the injected wall clock")
    }
}
