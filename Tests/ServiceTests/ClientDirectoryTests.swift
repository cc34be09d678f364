import Crypto
import Foundation
import SignetTestSupport
import Synchronization
import XCTest

@testable import Service

/// The credential cache's rules with an injected clock and an injected read: how long an entry
/// lives with and without a current listener, what a flush or a notification drops, and a read
/// under way that a change overtakes.
final class ClientDirectoryTests: XCTestCase {
    private let hasher = CredentialHasher(key: SymmetricKey(size: .bits256))
    private let clientID = CredentialHasher.newClientID()

    /// A directory over one client whose reads are counted; `gate`, when given, holds each read
    /// until the test opens it.
    private func directory(
        clock: ManualClock, reads: Counter, gate: ReadGate? = nil, ttl: Duration = .seconds(300), fallback: Duration = .seconds(1)
    ) -> ClientDirectory {
        let record = ClientRecord(
            agentID: UUID().uuidString.lowercased(), clientID: clientID, owner: "test", status: .active, scopes: ["read"],
            credentials: [], tokenGeneration: 0, rateLimitSubject: RateLimitSubject(.agent, "test"))
        return ClientDirectory(
            hasher: hasher, ttl: ttl, fallbackTTL: fallback, capacity: 100, unknownTTL: .seconds(60), listenerGrace: .seconds(2),
            now: { Date() }, clock: { clock.now }, onLookup: nil
        ) { _ in
            reads.value.add(1, ordering: .relaxed)
            if let gate { await gate.wait() }
            return record
        }
    }

    private func lookUp(_ directory: ClientDirectory) async throws -> Bool {
        try await directory.lookup(clientID, admission: nil).read
    }

    /// Whether a lookup now reads (`true`) or answers from the cache (`false`).
    private func expect(
        _ directory: ClientDirectory, read expected: Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let read = try await lookUp(directory)
        XCTAssertEqual(read, expected, message, file: file, line: line)
    }

    func testWithoutAListenerAnEntryLivesTheFallback() async throws {
        let clock = ManualClock()
        let reads = Counter()
        let directory = directory(clock: clock, reads: reads)
        _ = try await lookUp(directory)
        clock.advance(by: .milliseconds(999))
        try await expect(directory, read: false, "still fresh")
        clock.advance(by: .milliseconds(1))
        try await expect(directory, read: true, "expired at the fallback")
        XCTAssertEqual(reads.value.load(ordering: .relaxed), 2)
        XCTAssertFalse(directory.status().listening)
    }

    func testWhileTheListenerIsConfirmedAnEntryLivesTheLongLifetime() async throws {
        let clock = ManualClock()
        let reads = Counter()
        let directory = directory(clock: clock, reads: reads)
        directory.listenerStarted(at: clock.now)
        XCTAssertFalse(directory.status().listening, "not current before its first heartbeat comes back")
        directory.listenerConfirmed(at: clock.now)
        XCTAssertTrue(directory.status().listening)
        _ = try await lookUp(directory)
        for _ in 0..<150 {  // five minutes of heartbeats, every 2 s
            clock.advance(by: .seconds(2) - .milliseconds(1))
            directory.listenerConfirmed(at: clock.now)
            try await expect(directory, read: false)
        }
        clock.advance(by: .seconds(2))
        directory.listenerConfirmed(at: clock.now)
        try await expect(directory, read: true, "expired at the long lifetime")
    }

    func testALateHeartbeatEndsTheLongLifetimeWithoutAFlush() async throws {
        let clock = ManualClock()
        let reads = Counter()
        let directory = directory(clock: clock, reads: reads)
        directory.listenerStarted(at: clock.now)
        directory.listenerConfirmed(at: clock.now)
        _ = try await lookUp(directory)
        clock.advance(by: .milliseconds(500))
        try await expect(directory, read: false)
        clock.advance(by: .milliseconds(1500))  // 2 s since the last heartbeat: not current
        XCTAssertFalse(directory.status().listening)
        try await expect(directory, read: true, "older than the fallback, so read again")
        clock.advance(by: .milliseconds(500))
        try await expect(directory, read: false, "the new entry lives the fallback meanwhile")
        directory.listenerConfirmed(at: clock.now)
        clock.advance(by: .seconds(1))
        try await expect(directory, read: false, "current again: long-lived again, no flush")
        XCTAssertEqual(reads.value.load(ordering: .relaxed), 2)
    }

    func testAnEntryReadBeforeTheListenerStartedNeverLivesLong() async throws {
        let clock = ManualClock()
        let reads = Counter()
        let directory = directory(clock: clock, reads: reads, fallback: .seconds(10))
        _ = try await lookUp(directory)
        clock.advance(by: .milliseconds(1))
        directory.listenerStarted(at: clock.now)
        try await expect(directory, read: true, "flushed when the listener started")
        // What was read before a loss, and between a loss and the next start, goes too.
        directory.listenerLost()
        clock.advance(by: .milliseconds(1))
        try await expect(directory, read: true, "flushed when the listener was lost")
        clock.advance(by: .milliseconds(1))
        directory.listenerStarted(at: clock.now)
        directory.listenerConfirmed(at: clock.now)
        try await expect(directory, read: true, "flushed again when it listened again")
        clock.advance(by: .seconds(11))
        directory.listenerConfirmed(at: clock.now)
        try await expect(directory, read: false, "read after the start: long-lived")
        XCTAssertEqual(reads.value.load(ordering: .relaxed), 4)
    }

    func testANotificationDropsTheEntryAndAReadUnderWay() async throws {
        let clock = ManualClock()
        let reads = Counter()
        let gate = ReadGate()
        let directory = directory(clock: clock, reads: reads, gate: gate)
        directory.listenerStarted(at: clock.now)
        directory.listenerConfirmed(at: clock.now)
        let clientID = self.clientID
        let first = Task { try await directory.lookup(clientID, admission: nil).read }
        await gate.waitForReaders(1)
        // The change is announced while the read is under way: its answer must not be cached.
        directory.invalidate(clientID: clientID)
        await gate.open()
        _ = try await first.value
        try await expect(directory, read: true, "the overtaken read was not cached")
        try await expect(directory, read: false, "this one was")
        directory.invalidate(clientID: clientID)
        try await expect(directory, read: true)
        directory.invalidateAll()
        try await expect(directory, read: true)
        XCTAssertEqual(reads.value.load(ordering: .relaxed), 4)
    }

    func testTheRefetchBoundIsWiderWhileTheListenerIsCurrent() {
        let clock = ManualClock()
        let directory = directory(clock: clock, reads: Counter())
        XCTAssertEqual(directory.refetchInterval, ClientDirectory.refetchIntervalWithoutListener)
        directory.listenerStarted(at: clock.now)
        directory.listenerConfirmed(at: clock.now)
        XCTAssertEqual(directory.refetchInterval, ClientDirectory.refetchIntervalWhileListening)
        XCTAssertEqual(directory.refetchCutoff(), clock.now - ClientDirectory.refetchIntervalWhileListening)
    }
}

private final class Counter: Sendable {
    let value = Atomic(0)
}

/// Holds reads until opened, and tells how many are waiting.
private actor ReadGate {
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var readers = 0
    private var readerWaiters: [(Int, CheckedContinuation<Void, Never>)] = []

    func wait() async {
        readers += 1
        for (count, continuation) in readerWaiters where readers >= count { continuation.resume() }
        readerWaiters.removeAll { readers >= $0.0 }
        guard !isOpen else { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func waitForReaders(_ count: Int) async {
        guard readers < count else { return }
        await withCheckedContinuation { readerWaiters.append((count, $0)) }
    }

    func open() {
        isOpen = true
        waiting.forEach { $0.resume() }
        waiting = []
    }
}
