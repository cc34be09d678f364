import Foundation
import XCTest

@testable import Simulator

/// `signet-sim explore`'s pure parts (issue 27): the schedule a seed draws, the history's lines,
/// and each checker on histories written by hand: one that holds and one that breaks it, named.
final class ExploreTests: XCTestCase {
    // MARK: The schedule

    func testTheSameSeedDrawsTheSameScheduleAndAnotherSeedAnother() {
        let first = FaultSchedule.draw(seed: 42, duration: .seconds(60), kinds: FaultKind.allCases, instances: 2)
        let again = FaultSchedule.draw(seed: 42, duration: .seconds(60), kinds: FaultKind.allCases, instances: 2)
        let other = FaultSchedule.draw(seed: 43, duration: .seconds(60), kinds: FaultKind.allCases, instances: 2)
        XCTAssertEqual(first, again)
        XCTAssertNotEqual(first.faults, other.faults)
        XCTAssertGreaterThanOrEqual(first.faults.count, 3)
    }

    func testAScheduleHasOneFaultAtATimeInsideTheRunAndEndsBeforeItsLastSixSeconds() {
        for seed in UInt64(0)..<200 {
            let schedule = FaultSchedule.draw(seed: seed, duration: .seconds(60), kinds: FaultKind.allCases, instances: 3)
            var previousEnd = 3000
            for fault in schedule.faults {
                XCTAssertGreaterThanOrEqual(fault.at - previousEnd, 4000, "seed \(seed): a quiet 4 s before each fault")
                XCTAssertTrue((4000...8000).contains(fault.until - fault.at), "seed \(seed): 4–8 s long")
                XCTAssertLessThanOrEqual(fault.until, 54_000, "seed \(seed): nothing in the last 6 s")
                XCTAssertEqual(fault.instance != nil, fault.kind == .instanceRestart)
                if let instance = fault.instance { XCTAssertTrue((0..<3).contains(instance)) }
                previousEnd = fault.until
            }
        }
    }

    func testTheSeedsOfCIDrawTheseSchedulesWhicheverToolchainDrawsThem() {
        // Pinned: the draws are the generator's own (SeededGenerator.int), so these hold on any
        // Swift version, and ci/explore's three seeds keep drawing every kind between them.
        func kinds(_ seed: UInt64) -> [String] {
            FaultSchedule.draw(seed: seed, duration: .seconds(60), kinds: FaultKind.allCases, instances: 2).faults.map(\.rendered)
        }
        XCTAssertEqual(
            kinds(4),
            [
                "  10.3 s –   15.2 s  vault-slow", "  19.9 s –   25.9 s  vault-down", "  30.4 s –   35.7 s  opa-down",
                "  40.7 s –   46.6 s  postgres-restart",
            ])
        XCTAssertEqual(
            kinds(31),
            [
                "  10.7 s –   17.3 s  opa-slow", "  21.9 s –   25.9 s  redis-slow", "  32.2 s –   36.5 s  redis-blackholed",
                "  42.3 s –   47.0 s  postgres-blackholed",
            ])
        XCTAssertEqual(
            kinds(45),
            [
                "   8.6 s –   14.0 s  vault-slow", "  19.7 s –   25.7 s  redis-refused",
                "  33.4 s –   38.3 s  instance-restart (instance 1)",
                "  43.4 s –   50.6 s  postgres-slow",
            ])
        let drawn = Set(
            [4, 31, 45].flatMap {
                FaultSchedule.draw(seed: $0, duration: .seconds(60), kinds: FaultKind.allCases, instances: 2).faults.map(\.kind)
            })
        XCTAssertEqual(drawn, Set(FaultKind.allCases))
    }

    func testOneInstanceIsNeverRestartedAndAnEmptyListOfKindsDrawsNothing() {
        let single = ExploreOptions(seed: 5, duration: .seconds(120), instances: 1)
        XCTAssertFalse(single.drawnKinds.contains(.instanceRestart))
        XCTAssertFalse(single.schedule.faults.contains { $0.kind == .instanceRestart })
        XCTAssertEqual(FaultSchedule.draw(seed: 5, duration: .seconds(60), kinds: [], instances: 2).faults, [])
        XCTAssertEqual(FaultSchedule.draw(seed: 5, duration: .seconds(10), kinds: FaultKind.allCases, instances: 2).faults, [])
    }

    func testTheReplayCommandCarriesEverythingTheRunWasGiven() {
        let options = ExploreOptions(
            seed: 9, duration: .seconds(45), instances: 2, env: ["REDIS_RATE_LIMIT_ENABLED": "false", "A": "1"],
            kinds: [.redisSlow, .opaDown])
        XCTAssertEqual(
            options.replay,
            "signet-sim explore --seed 9 --duration 45s --instances 2 --env A=1 --env REDIS_RATE_LIMIT_ENABLED=false --faults redis-slow,opa-down"
        )
    }

    func testAgainstATargetOnlyItsProxiesToxicsAreDrawnAndTheReplayCarriesNoToken() {
        let target = ExploreTarget(
            base: "https://signet.staging/", adminToken: "secret-admin-token", toxiproxy: "http://proxy:8474",
            proxies: ["redis": "r", "opa": "o"], operations: ["http://10.0.0.5:8081/"], answerBoundMs: 3250)
        let options = ExploreOptions(seed: 3, duration: .seconds(60), instances: 2, target: target)
        XCTAssertEqual(Set(options.drawnKinds), [.redisRefused, .redisBlackholed, .redisSlow, .opaSlow, .opaDown])
        XCTAssertTrue(options.schedule.faults.allSatisfy { ["redis", "opa"].contains($0.kind.dependency) })
        XCTAssertFalse(options.replay.contains("secret-admin-token"))
        XCTAssertEqual(
            options.replay,
            "signet-sim explore --seed 3 --duration 60s --instances 2 --target https://signet.staging --toxiproxy http://proxy:8474 "
                + "--proxy opa=o --proxy redis=r --operations http://10.0.0.5:8081 --answer-bound-ms 3250")
        XCTAssertEqual(Explorer.policy("40;w=5")?.limit, 40)
        XCTAssertEqual(Explorer.policy("40;w=5")?.windowMs, 5000)
        XCTAssertNil(Explorer.policy("40"))
    }

    func testTheGeneratorIsSplitMix64() {
        // The reference sequence of SplitMix64 seeded with 0.
        var random = SeededGenerator(seed: 0)
        XCTAssertEqual([random.next(), random.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4])
    }

    // MARK: The history

    func testAHistoryRoundTripsAndABrokenLineIsNamed() throws {
        var request = HistoryEvent.request("token.basic", sent: 10, answered: 25, status: 200)
        request.agent = "a1"
        let events = [runEvent(), .fault(ScheduledFault(kind: .redisRefused, at: 1000, until: 5000, instance: nil)), request]
        let text = try History.encode(events)
        XCTAssertEqual(text.split(separator: "\n").count, 3)
        XCTAssertTrue(text.contains(#"{"at":1000,"kind":"redis-refused","type":"fault","until":5000}"#), text)
        XCTAssertEqual(try History.decode(text), events)
        XCTAssertThrowsError(try History.decode(text + "{not json\n")) { error in
            XCTAssertTrue("\(error)".contains("line 4"), "\(error)")
        }
    }

    // MARK: The checkers

    func runEvent(limit: Int = 3, window: Int = 1000, instances: Int = 2) -> HistoryEvent {
        var event = HistoryEvent(type: "run")
        (event.seed, event.limit, event.windowMs, event.instances, event.answerBoundMs) = (1, limit, window, instances, 2000)
        return event
    }

    func request(
        _ op: String, _ sent: Int, _ answered: Int, _ status: Int?, agent: String? = nil, target: String? = nil, credential: String? = nil,
        jti: String? = nil, active: Bool? = nil, instance: String = "i0", retryAfter: String? = nil
    ) -> HistoryEvent {
        var event = HistoryEvent.request(op, sent: sent, answered: answered, status: status)
        (event.agent, event.target, event.credential, event.jti, event.active) = (agent, target, credential, jti, active)
        (event.instance, event.retryAfter) = (instance, retryAfter)
        return event
    }

    func testRevocationHoldsWhenEverythingPastTheBoundIsRefused() {
        let events = [
            runEvent(),
            request("credential.revoke", 1000, 1010, 204, target: "a", credential: "c1"),
            request("token.basic", 2000, 2010, 200, agent: "a", credential: "c1"),  // inside the bound: allowed
            request("probe.token", 4100, 4110, 401, agent: "a", credential: "c1"),
            request("token.basic", 4200, 4210, 200, agent: "a", credential: "c2"),  // another credential
            request("token.revoke", 5000, 5010, 200, agent: "a", jti: "j1"),
            request("introspect", 8100, 8110, 200, agent: "a", jti: "j1", active: false),
        ]
        let report = Invariants.revocation(events)
        XCTAssertTrue(report.passed, report.rendered)
        XCTAssertEqual(report.checked, 2)
    }

    func testRevocationNamesATokenFromARevokedCredentialAndAnActiveRevokedToken() {
        let events = [
            request("credential.revoke", 1000, 1010, 204, target: "a", credential: "c1"),
            request("probe.token", 4100, 4110, 200, agent: "a", credential: "c1", jti: "late", instance: "i1"),
            request("token.revoke", 5000, 5010, 200, agent: "a", jti: "j1"),
            request("introspect", 8100, 8110, 200, agent: "a", jti: "j1", active: true, instance: "i0"),
            // A revocation that was not acknowledged proves nothing.
            request("credential.revoke", 1000, 6000, 503, target: "b", credential: "c9", retryAfter: "1"),
            request("token.basic", 9000, 9010, 200, agent: "b", credential: "c9"),
        ]
        let report = Invariants.revocation(events)
        XCTAssertEqual(report.violations.count, 2, report.rendered)
        XCTAssertTrue(report.violations[0].contains("late") && report.violations[0].contains("i1"), report.violations[0])
        XCTAssertTrue(report.violations[1].contains("j1") && report.violations[1].contains("active"), report.violations[1])
    }

    func testTheLimitIsCountedOnGrantedRequestsThatSurelyShareAWindow() {
        // Limit 3 per 1000 ms. Four granted within 1000 ms of sending the first: broken.
        var events = [runEvent()]
        for sent in [0, 100, 200, 300] { events.append(request("token.basic", sent, sent + 50, 200, agent: "a")) }
        // Refused ones and another agent's do not count.
        events.append(request("token.basic", 400, 410, 429, agent: "a", retryAfter: "1"))
        events.append(request("token.basic", 400, 410, 200, agent: "b"))
        let broken = Invariants.rateLimit(events)
        XCTAssertEqual(broken.violations.count, 1, broken.rendered)
        XCTAssertTrue(broken.violations[0].contains("agent a was granted 4"), broken.violations[0])

        // The fourth answered only after the first's window ended: it may have been decided in the next.
        var spread = [runEvent()]
        for (sent, answered) in [(0, 50), (100, 150), (200, 250), (300, 1001)] {
            spread.append(request("token.basic", sent, answered, 200, agent: "a"))
        }
        XCTAssertTrue(Invariants.rateLimit(spread).passed, Invariants.rateLimit(spread).rendered)
    }

    func testARefusalMadeAfterTheLimiterCountsAndAFailedAuthenticationDoesNot() {
        // Limit 3 per 1000 ms: the agents' policy is "3;w=1".
        var events = [runEvent()]
        for sent in [0, 100, 200] { events.append(request("token.basic", sent, sent + 50, 200, agent: "a")) }
        var refusedByPolicy = request("token.basic", 300, 350, 503, agent: "a", retryAfter: "1")
        refusedByPolicy.policy = "3;w=1"
        var wrongSecret = request("probe.token", 300, 350, 401, agent: "a")
        wrongSecret.policy = "100000;w=1"
        let thrownBeforeTheLimiter = request("token.basic", 300, 350, 503, agent: "a", retryAfter: "1")
        XCTAssertTrue(Invariants.rateLimit(events + [wrongSecret, thrownBeforeTheLimiter]).passed)
        XCTAssertEqual(Invariants.rateLimit(events + [refusedByPolicy]).violations.count, 1)
    }

    func testARevocationProbeThatProvesNothingIsNotCountedAsChecked() {
        let events = [
            request("credential.revoke", 1000, 1010, 204, target: "a", credential: "c1"),
            request("probe.token", 4100, 4110, 429, agent: "a", credential: "c1", retryAfter: "2"),
            request("probe.token", 4200, 4210, 503, agent: "a", credential: "c1", retryAfter: "1"),
            request("probe.token", 6200, 6210, 401, agent: "a", credential: "c1"),
        ]
        XCTAssertEqual(Invariants.revocation(events).checked, 1)
    }

    func testNearARedisFaultEachInstanceAndRedisMayGrantTheLimit() {
        // Two instances, limit 3: up to (2 + 1) × 3 = 9 near a Redis fault, 3 away from one.
        var events = [runEvent(), .fault(ScheduledFault(kind: .redisBlackholed, at: 0, until: 500, instance: nil))]
        for sent in stride(from: 0, to: 450, by: 50) { events.append(request("token.basic", sent, sent + 10, 200, agent: "a")) }
        XCTAssertTrue(Invariants.rateLimit(events).passed, Invariants.rateLimit(events).rendered)
        events.append(request("token.basic", 460, 470, 200, agent: "a"))
        XCTAssertFalse(Invariants.rateLimit(events).passed)

        // Long after the fault (past limiterRecoveryMs), Redis answers again: the limit is 3.
        let later = 500 + Invariants.limiterRecoveryMs + 1000
        var afterwards = [runEvent(), .fault(ScheduledFault(kind: .redisBlackholed, at: 0, until: 500, instance: nil))]
        for sent in [later, later + 10, later + 20, later + 30] {
            afterwards.append(request("token.basic", sent, sent + 5, 200, agent: "a"))
        }
        XCTAssertTrue(Invariants.rateLimit(afterwards).violations.first?.contains("Redis answering") == true)
    }

    func testAnswersNameA500AMissingRetryAfterALateAnswerAndNoAnswer() {
        let events = [
            runEvent(),
            request("token.basic", 0, 10, 200),
            request("token.basic", 0, 10, 503, retryAfter: "1"),
            request("admin.read", 100, 110, 500, instance: "i1"),
            request("admin.read", 200, 210, 503),
            request("admin.read", 300, 2301, 200),
            {
                var lost = request("register", 400, 900, nil)
                lost.error = "connection reset"
                return lost
            }(),
        ]
        let report = Invariants.answers(events)
        XCTAssertEqual(report.checked, 6)
        XCTAssertEqual(report.violations.count, 4, report.rendered)
        XCTAssertTrue(report.violations[0].contains("500 from i1"))
        XCTAssertTrue(report.violations[1].contains("without Retry-After"))
        XCTAssertTrue(report.violations[2].contains("2001 ms"))
        XCTAssertTrue(report.violations[3].contains("connection reset"))
    }

    func verify(_ op: String, agent: String, credential: String? = nil, found: Bool = true, state: String? = nil, actions: [String]? = nil)
        -> HistoryEvent
    {
        var event = HistoryEvent(type: "verify")
        (event.op, event.agent, event.credential, event.found, event.state, event.actions) = (op, agent, credential, found, state, actions)
        return event
    }

    func testEveryAcknowledgedWriteIsThereWithOneAuditRow() {
        let writes = [
            request("register", 0, 10, 201, target: "a", credential: "c1"),
            request("rotate", 100, 110, 201, target: "a", credential: "c2"),
            request("credential.revoke", 200, 210, 204, target: "a", credential: "c1"),
            request("token.revoke", 300, 310, 200, agent: "a", jti: "j1"),
            // Not acknowledged: no claim either way.
            request("rotate", 400, 410, 503, target: "a", retryAfter: "1"),
        ]
        let complete = [
            verify("agent", agent: "a"), verify("credential", agent: "a", credential: "c2", state: "active"),
            verify("credential", agent: "a", credential: "c1", state: "revoked"),
            verify("audit", agent: "a", actions: ["agent.register", "credential.rotate:c2", "credential.revoke:c1", "token.revoke:j1"]),
        ]
        let held = Invariants.acknowledgedWrites(writes + complete)
        XCTAssertTrue(held.passed, held.rendered)
        XCTAssertEqual(held.checked, 4)

        let damaged = [
            verify("agent", agent: "a"), verify("credential", agent: "a", credential: "c1", state: "active"),
            verify(
                "audit", agent: "a", actions: ["agent.register", "credential.rotate:c2", "credential.rotate:c2", "credential.revoke:c1"]),
        ]
        let broken = Invariants.acknowledgedWrites(writes + damaged)
        XCTAssertEqual(
            broken.violations.map { String($0.split(separator: ":", maxSplits: 1)[1]) },
            [
                " credential c2 is not there afterwards", " 2 audit rows credential.rotate:c2, expected 1",
                " credential c1 is active afterwards, not revoked", " 0 audit rows token.revoke:j1, expected 1",
            ], broken.rendered)
    }

    func health(_ at: Int, _ instance: String, _ statuses: [String: String]) -> HistoryEvent {
        var event = HistoryEvent(type: "health")
        (event.at, event.instance, event.dependencies) = (at, instance, statuses)
        return event
    }

    func testHealthMustShowTheFaultInTimeAndRecoverAfterIt() {
        let fault = HistoryEvent.fault(ScheduledFault(kind: .redisRefused, at: 1000, until: 8000, instance: nil))
        let before = [health(500, "i0", ["redis": "healthy"]), health(500, "i1", ["redis": "healthy"])]
        let good =
            [runEvent(), fault] + before + [
                health(2500, "i0", ["redis": "unreachable"]), health(3000, "i1", ["redis": "unreachable"]),
                health(9000, "i0", ["redis": "healthy"]), health(12_000, "i1", ["redis": "healthy"]),
            ]
        XCTAssertTrue(Invariants.health(good).passed, Invariants.health(good).rendered)
        XCTAssertEqual(Invariants.health(good).checked, 4)

        let late =
            [runEvent(), fault] + before + [
                health(2500, "i0", ["redis": "unreachable"]), health(6500, "i1", ["redis": "unreachable"]),
                health(9000, "i0", ["redis": "healthy"]), health(18_500, "i1", ["redis": "healthy"]),
            ]
        let broken = Invariants.health(late)
        XCTAssertEqual(broken.violations.count, 2, broken.rendered)
        XCTAssertTrue(broken.violations.allSatisfy { $0.contains("i1") })

        // A short fault must be seen too, by a reading answered before it ended (or within 1 s after);
        // a reading that does not name the dependency says nothing.
        let short = HistoryEvent.fault(ScheduledFault(kind: .redisRefused, at: 1000, until: 3000, instance: nil))
        let unnamed = [
            runEvent(), short, health(500, "i0", ["redis": "healthy"]), health(2000, "i0", [:]), health(5000, "i0", ["redis": "healthy"]),
        ]
        XCTAssertEqual(
            Invariants.health(unnamed).violations, ["redis-refused at 1.000 s: i0 did not report redis unhealthy within 3000 ms"])
        let seenJustAfter = [
            runEvent(), short, health(500, "i0", ["redis": "healthy"]), health(3900, "i0", ["redis": "unreachable"]),
            health(5000, "i0", ["redis": "healthy"]),
        ]
        XCTAssertTrue(Invariants.health(seenJustAfter).passed, Invariants.health(seenJustAfter).rendered)

        // A dependency an instance did not report healthy before the fault is not held against it.
        let unwatched = [runEvent(), fault, health(500, "i0", ["redis": "disabled"])]
        XCTAssertEqual(Invariants.health(unwatched).checked, 0)
    }

    func testTheSummaryGivesAnswerTimesOverallAndDuringEachFault() {
        let events = [
            runEvent(), .fault(ScheduledFault(kind: .opaDown, at: 1000, until: 2000, instance: nil)),
            request("token.basic", 0, 10, 200), request("token.basic", 100, 130, 200),
            request("token.basic", 1100, 1600, 503, retryAfter: "1"), request("token.basic", 1500, 1502, 503, retryAfter: "1"),
        ]
        XCTAssertEqual(
            HistorySummary.lines(events),
            [
                "6 events: 4 requests, 1 faults, 0 health readings, 0 reads afterwards",
                "answers: p50 30 ms, p99 500 ms, slowest 500 ms; 200 × 2, 503 × 2",
                "  during opa-down (1000 ms): p50 500 ms, p99 500 ms, slowest 500 ms; 503 × 2",
            ])
    }
}
