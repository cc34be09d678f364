import Foundation
import Logging
import XCTest

@testable import Service

/// The pure parts of the authentication layer: whose address a request is, the limiter's keys,
/// the address gate, token times and log escaping.
final class TrustedProxiesTests: XCTestCase {
    func testParsesAddressesAndNetworksAndRefusesAnythingElse() throws {
        let proxies = try XCTUnwrap(TrustedProxies("10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1"))
        XCTAssertTrue(proxies.contains("10.200.3.4"))
        XCTAssertFalse(proxies.contains("11.0.0.1"))
        XCTAssertTrue(proxies.contains("192.168.1.7"))
        XCTAssertFalse(proxies.contains("192.168.1.8"))
        XCTAssertTrue(proxies.contains("fd12::1"))
        XCTAssertTrue(proxies.contains("::1"))
        XCTAssertTrue(proxies.contains("::ffff:10.1.2.3"), "an IPv4-mapped peer is its IPv4 address")
        XCTAssertFalse(proxies.contains("fe80::1"))
        for bad in ["10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/-1", "::1/129", "10.0.0.0/8/8"] {
            XCTAssertNil(TrustedProxies(bad), bad)
        }
        XCTAssertEqual(TrustedProxies("")?.isEmpty, true)
    }

    func testTheClientIsTheRightmostUntrustedHopAndOnlyBehindATrustedPeer() throws {
        let proxies = try XCTUnwrap(TrustedProxies("127.0.0.1, 10.0.0.0/8"))
        XCTAssertEqual(
            proxies.clientAddress(peer: "203.0.113.9", forwardedFor: ["1.2.3.4"]), "203.0.113.9", "an untrusted peer's header is ignored")
        XCTAssertEqual(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: []), "127.0.0.1", "no header: the peer")
        XCTAssertEqual(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.2.3.4, 198.51.100.7"]), "198.51.100.7")
        XCTAssertEqual(
            proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.2.3.4", "198.51.100.7, 10.1.1.1"]), "198.51.100.7",
            "trusted hops are skipped, across header lines")
        XCTAssertEqual(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["junk, 10.1.1.1"]), "10.1.1.1", "no client past junk")
        XCTAssertEqual(proxies.clientAddress(peer: "::ffff:203.0.113.9", forwardedFor: []), "203.0.113.9", "one spelling per client")
        XCTAssertEqual(TrustedProxies("")?.clientAddress(peer: "127.0.0.1", forwardedFor: ["9.9.9.9"]), "127.0.0.1")
    }
}

final class RateLimitSubjectTests: XCTestCase {
    func testKeysHaveOneSizeAndDifferByKindAndIdentity() {
        let identities = ["", "x", String(repeating: "y", count: 10_000), "a\u{0}b", "sgc_AAAAAAAAAAAAAAAAAAAAAA"]
        let keys = RateLimitSubject.Kind.allCases.flatMap { kind in identities.map { RateLimitSubject(kind, $0).key } }
        XCTAssertEqual(Set(keys.map(\.utf8.count)), [33])
        XCTAssertEqual(Set(keys).count, keys.count)
        XCTAssertEqual(RateLimitSubject(.agent, "a"), RateLimitSubject(.agent, "a"))
        XCTAssertFalse(RateLimitSubject(.admin, "secret-admin-token").key.contains("secret"))
    }

    func testEachKindHasItsBudget() {
        let budgets =
            (RateLimitConfiguration(
                maxRequests: 1, windowMilliseconds: 1000, redis: nil, redisTimeout: .seconds(1), addressMaxRequests: 2, adminMaxRequests: 3,
                discoveryMaxRequests: 4)).budgets
        XCTAssertEqual(RateLimitSubject.Kind.allCases.map { budgets[$0] }, [1, 3, 2, 4, 1], "a one-time value is allowed once")
    }
}

final class AddressGateTests: XCTestCase {
    func testBlocksUntilTheRetryTimeAndForgetsAfter() {
        let gate = AddressGate(capacity: 2)
        let start = ContinuousClock.now
        XCTAssertNil(gate.retryAfter("a", now: start))
        gate.block("a", milliseconds: 1500, now: start)
        XCTAssertEqual(gate.retryAfter("a", now: start), 2)
        XCTAssertEqual(gate.retryAfter("a", now: start + .milliseconds(600)), 1)
        XCTAssertNil(gate.retryAfter("a", now: start + .milliseconds(1500)))
        XCTAssertNil(gate.retryAfter("b", now: start))
    }

    func testHeldAddressesAreALeastRecentlyUsedBound() {
        let gate = AddressGate(capacity: 2)
        let start = ContinuousClock.now
        gate.block("first", milliseconds: 10_000, now: start)
        gate.block("second", milliseconds: 10_000, now: start)
        XCTAssertNotNil(gate.retryAfter("first", now: start))
        gate.block("flood", milliseconds: 10_000, now: start)
        XCTAssertNotNil(gate.retryAfter("flood", now: start), "a newcomer is held")
        XCTAssertNil(gate.retryAfter("first", now: start), "the least recently held went: it only asks the limiter again")
        XCTAssertNotNil(gate.retryAfter("second", now: start))
    }
}

extension AddressGateTests {
    func testBoundsTheExpensiveChecksOneAddressHasUnderWay() {
        let gate = AddressGate(concurrentWork: 2)
        XCTAssertTrue(gate.beginWork("a"))
        XCTAssertTrue(gate.beginWork("a"))
        XCTAssertFalse(gate.beginWork("a"), "a third at once is refused")
        XCTAssertTrue(gate.beginWork("b"), "other addresses are not affected")
        gate.endWork("a")
        XCTAssertTrue(gate.beginWork("a"), "a slot freed")
    }

    func testARequestWaitsForAFreedSlotAndGivesUpAtItsDeadline() async {
        let gate = AddressGate(concurrentWork: 1, queuedWork: 1, workWait: .seconds(60))
        XCTAssertTrue(gate.beginWork("a"))
        let waiting = Task { await gate.awaitWork("a") }
        while gate.waiting("a") == 0 { await Task.yield() }
        let second = await gate.awaitWork("a")
        XCTAssertFalse(second, "the queue holds one: a second waiter is refused at once")
        gate.endWork("a")
        let handedOver = await waiting.value
        XCTAssertTrue(handedOver, "the freed slot went to the waiter")
        XCTAssertEqual(gate.working("a"), 1, "and is still taken, by it")

        let quick = AddressGate(concurrentWork: 1, queuedWork: 4, workWait: .milliseconds(1))
        XCTAssertTrue(quick.beginWork("b"))
        let expired = await quick.awaitWork("b")
        XCTAssertFalse(expired, "no slot within the wait: refused")
        XCTAssertEqual(quick.waiting("b"), 0, "and no longer queued")
        quick.endWork("b")
        XCTAssertEqual(quick.working("b"), 0)
    }

    func testATaskCancelledBeforeItQueuesIsRefusedAtOnce() async {
        let gate = AddressGate(concurrentWork: 1, queuedWork: 4, workWait: .seconds(3600))
        XCTAssertTrue(gate.beginWork("a"))
        let waiting = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await gate.awaitWork("a")
        }
        let granted = await waiting.value
        XCTAssertFalse(granted, "not left waiting an hour for a slot")
        XCTAssertEqual(gate.waiting("a"), 0)
    }

    func testACancelledWaiterLeavesTheQueue() async {
        let gate = AddressGate(concurrentWork: 1, queuedWork: 4, workWait: .seconds(60))
        XCTAssertTrue(gate.beginWork("a"))
        let waiting = Task { await gate.awaitWork("a") }
        while gate.waiting("a") == 0 { await Task.yield() }
        waiting.cancel()
        let granted = await waiting.value
        XCTAssertFalse(granted)
        XCTAssertEqual(gate.waiting("a"), 0)
        gate.endWork("a")
        XCTAssertEqual(gate.working("a"), 0, "the slot was freed, not handed to the cancelled waiter")
    }
}

final class WorkSlotsTests: XCTestCase {
    func testSlotsGoToWaitersInOrderThenFree() {
        var slots = WorkSlots<String>(concurrent: 2, queued: 2)
        XCTAssertTrue(slots.begin("x"))
        XCTAssertEqual(slots.enqueue("x", id: 1, "one") == .began, true, "a free slot is taken at once")
        XCTAssertEqual(slots.enqueue("x", id: 2, "two") == .waiting, true)
        XCTAssertEqual(slots.enqueue("x", id: 3, "three") == .waiting, true)
        XCTAssertEqual(slots.enqueue("x", id: 4, "four") == .full, true, "two waiting is the bound")
        XCTAssertTrue(slots.begin("y"), "another address has slots of its own")
        XCTAssertEqual(slots.expire("x", id: 2), "two", "a waiter's deadline")
        XCTAssertNil(slots.expire("x", id: 2), "once")
        XCTAssertEqual(slots.end("x"), "three", "a freed slot goes to the oldest waiter")
        XCTAssertEqual(slots.working("x"), 2)
        XCTAssertNil(slots.end("x"))
        XCTAssertNil(slots.end("x"))
        XCTAssertEqual(slots.working("x"), 0)
        XCTAssertNil(slots.addresses["x"], "an idle address holds no entry")
    }
}

final class ClientAddressKeyTests: XCTestCase {
    func testNAT64EmbeddedIPv4CountsAsThatIPv4Address() {
        XCTAssertEqual(TrustedProxies.limiterKey("64:ff9b::c000:0201"), "192.0.2.1")
        XCTAssertEqual(TrustedProxies.limiterKey("64:ff9b::198.51.100.7"), "198.51.100.7")
        XCTAssertNotEqual(
            TrustedProxies.limiterKey("64:ff9b::c000:0201"), TrustedProxies.limiterKey("64:ff9b::c000:0202"),
            "two IPv4 clients behind one translator are two budgets, not one /64")
        XCTAssertEqual(TrustedProxies.limiterKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        XCTAssertEqual(TrustedProxies.limiterKey("203.0.113.5"), "203.0.113.5")
    }
}

final class TokenTimeTests: XCTestCase {
    let claims = AccessTokenClaims(
        iss: "https://signet.test", sub: "s", aud: "https://signet.test", client_id: "c", scope: "read", iat: 1000, exp: 1900, jti: "j")

    func testCurrentBetweenIssueAndExpiryForItsIssuerAndAudience() {
        func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: seconds) }
        XCTAssertTrue(claims.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(1000)))
        XCTAssertTrue(claims.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(1899.9)))
        XCTAssertFalse(claims.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(1900)), "exp has no slack")
        XCTAssertTrue(claims.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(940)), "iat within the skew")
        XCTAssertFalse(
            claims.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(939)), "issued in the future")
        XCTAssertFalse(claims.isCurrent(issuer: "https://other", audience: "https://signet.test", at: at(1000)))
        XCTAssertFalse(claims.isCurrent(issuer: "https://signet.test", audience: "https://api", at: at(1000)))
        var later = claims
        later.nbf = 1500
        XCTAssertFalse(later.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(1200)), "before nbf")
        XCTAssertTrue(later.isCurrent(issuer: "https://signet.test", audience: "https://signet.test", at: at(1500)))
    }
}

final class EscapingLogHandlerTests: XCTestCase {
    final class Recorder: LogHandler, @unchecked Sendable {
        var events: [LogEvent] = []
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { events.append(event) }
    }

    func testAClientStringCannotStartAFakeLine() throws {
        let recorder = Recorder()
        let logger = Logger(label: "t") { _ in EscapingLogHandler(recorder) }
        logger.info(
            "unknown client \("x\nINFO admin login ok")",
            metadata: ["client.id": "a\r\nb\u{1B}[31m", "nested": ["list": ["\u{2028}"]], "plain": "sgc_AAAA"])
        let event = try XCTUnwrap(recorder.events.first)
        XCTAssertEqual(event.message.description, "unknown client x\\nINFO admin login ok")
        XCTAssertEqual(event.metadata?["client.id"], .string("a\\r\\nb\\u{1B}[31m"))
        XCTAssertEqual(event.metadata?["nested"], .dictionary(["list": .array([.string("\\u{2028}")])]))
        XCTAssertEqual(event.metadata?["plain"], .string("sgc_AAAA"))
        logger.info("x", metadata: ["fake": "a\\nb"])
        XCTAssertEqual(
            recorder.events.last?.metadata?["fake"], .string("a\\\\nb"), "a literal backslash-n cannot pass for an escaped newline")
    }

    func testTheLoggersOwnMetadataIsMergedIntoEachEventEscapedAndNeverRenderedByTheWrappedHandler() throws {
        let recorder = Recorder()
        var logger = Logger(label: "t") { _ in EscapingLogHandler(recorder) }
        logger[metadataKey: "hb.request.id"] = "id\nforged"
        logger[metadataKey: "instance"] = "signet-0"
        XCTAssertEqual(logger[metadataKey: "instance"], "signet-0")
        XCTAssertTrue(recorder.metadata.isEmpty, "setting metadata does not reach the wrapped handler")
        logger.info("one", metadata: ["instance": "override"])
        logger.info("two")
        XCTAssertEqual(recorder.events.count, 2)
        XCTAssertEqual(recorder.events[0].metadata?["hb.request.id"], .string("id\\nforged"))
        XCTAssertEqual(recorder.events[0].metadata?["instance"], .string("override"), "the event's own value wins")
        XCTAssertEqual(recorder.events[1].metadata?["instance"], .string("signet-0"))
    }

    func testAMetadataProvidersValuesAreEscapedAndSitBetweenTheLoggersAndTheEvents() throws {
        let recorder = Recorder()
        let provider = Logger.MetadataProvider { ["trace": "t\r\n", "instance": "provided", "event": "provided"] }
        var logger = Logger(label: "t") { _ in
            var handler = EscapingLogHandler(recorder)
            handler.metadataProvider = provider
            return handler
        }
        logger[metadataKey: "instance"] = "signet-0"
        logger.info("x", metadata: ["event": "own"])
        let event = try XCTUnwrap(recorder.events.first)
        XCTAssertEqual(event.metadata?["trace"], .string("t\\r\\n"))
        XCTAssertEqual(event.metadata?["instance"], .string("provided"), "the provider over the logger's metadata")
        XCTAssertEqual(event.metadata?["event"], .string("own"), "the event's own over the provider")
    }
}
