import Foundation
import Logging
import ServiceLifecycle
import Spec
import Synchronization

/// Listens for the `NOTIFY` every change to a client commits (migration 4's triggers, channel
/// `signet_clients`, the client id as payload) and drops that client from this instance's cache
/// (`ClientDirectory`) as each one arrives.
///
/// It holds a PostgreSQL connection of its own, not one from the pool, on a thread of its own
/// (libpq blocks). Every `heartbeat` it sends `SELECT 1`: the answer proves the session alive and
/// that every notification committed before it was delivered, and the cache's long lifetime
/// holds only while the last proof is recent. When the connection fails (terminated, the server
/// gone or frozen past the heartbeat's bound), the cache is flushed and falls back to its short
/// lifetime; the listener reconnects with backoff and, once it listens again, flushes once more
/// (changes made meanwhile went unannounced) before entries may live long again.
public final class ChangeListener: Service, Sendable {
    public static let channel = "signet_clients"
    public static let defaultHeartbeat = Duration.milliseconds(Defaults.changeListenerHeartbeatMilliseconds)
    /// What the listener's session adds to its `application_name`, so an operator (or a
    /// scenario) can tell it from the pool's sessions in `pg_stat_activity`.
    public static let applicationNameSuffix = " listener"

    /// What the thread runs; the listener stops it when it goes away, so an application built
    /// and never run does not keep a connection open.
    private let core: Core

    public init(
        directory: ClientDirectory,
        heartbeat: Duration = ChangeListener.defaultHeartbeat,
        logger: Logger,
        connect: @escaping @Sendable () throws -> PostgresConnection
    ) {
        core = Core(directory: directory, heartbeat: heartbeat, logger: logger, connect: connect)
    }

    deinit {
        core.stopping.store(true, ordering: .relaxed)
    }

    /// Starts listening (once) and returns after the first attempt to connect and `LISTEN`,
    /// successful or not; the attempt is bounded by libpq's `connect_timeout` and the heartbeat.
    public func start() async {
        await core.start()
    }

    /// Listens until graceful shutdown, then stops the thread and waits for it to close its
    /// connection.
    public func run() async throws {
        await core.start()
        try? await gracefulShutdown()
        await core.stop()
    }
}

private final class Core: Sendable {
    private let connect: @Sendable () throws -> PostgresConnection
    private let directory: ClientDirectory
    private let heartbeat: Duration
    private let logger: Logger
    let stopping = Atomic<Bool>(false)
    private struct Progress {
        var threadStarted = false
        var attempted = false
        var finished = false
        var waitingForAttempt: [CheckedContinuation<Void, Never>] = []
        var waitingForFinish: [CheckedContinuation<Void, Never>] = []
    }
    private let progress = Mutex(Progress())

    init(directory: ClientDirectory, heartbeat: Duration, logger: Logger, connect: @escaping @Sendable () throws -> PostgresConnection) {
        self.directory = directory
        self.heartbeat = heartbeat
        self.logger = logger
        self.connect = connect
    }

    func start() async {
        let first = progress.withLock { progress in
            defer { progress.threadStarted = true }
            return !progress.threadStarted
        }
        if first { Thread.detachNewThread { [self] in listen() } }
        await withCheckedContinuation { continuation in
            let done = progress.withLock { progress in
                if progress.attempted { return true }
                progress.waitingForAttempt.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    func stop() async {
        stopping.store(true, ordering: .relaxed)
        await withCheckedContinuation { continuation in
            let done = progress.withLock { progress in
                if progress.finished { return true }
                progress.waitingForFinish.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func listen() {
        var failures = 0
        while !stopping.load(ordering: .relaxed) {
            var listening = false
            do {
                let connection = try connect()
                defer { connection.close() }
                connection.timeout = heartbeat
                try connection.query(
                    "SELECT set_config('application_name', left(current_setting('application_name'), 50) || $1, false)",
                    [ChangeListener.applicationNameSuffix])
                try connection.query("LISTEN \(ChangeListener.channel)")
                directory.listenerStarted(at: .now)
                listening = true
                if failures > 0 { logger.info("listening for client changes again", metadata: ["failedAttempts": "\(failures)"]) }
                failures = 0
                markAttempted()
                var lastBeat = ContinuousClock.now
                while !stopping.load(ordering: .relaxed) {
                    let untilBeat = heartbeat - (ContinuousClock.now - lastBeat)
                    if untilBeat <= .zero {
                        let sent = ContinuousClock.now
                        try connection.query("SELECT 1")
                        apply(try connection.notifications(waitingUpTo: .zero))
                        directory.listenerConfirmed(at: sent)
                        lastBeat = sent
                    } else {
                        // Short waits, so a stop is noticed soon.
                        apply(try connection.notifications(waitingUpTo: min(untilBeat, .milliseconds(100))))
                    }
                }
            } catch {
                if listening || failures == 0 {
                    logger.warning(
                        "not listening for client changes: cached credentials are kept 1 s until it listens again",
                        metadata: ["error": "\(error)"])
                }
                failures += 1
            }
            directory.listenerLost()
            markAttempted()
            pause(for: min(.seconds(5), .milliseconds(100) * (1 << min(failures, 6))))
        }
        let waiting = progress.withLock { progress in
            progress.finished = true
            defer { progress.waitingForFinish = [] }
            return progress.waitingForFinish
        }
        waiting.forEach { $0.resume() }
    }

    private func apply(_ notifications: [PostgresConnection.Notification]) {
        for notification in notifications where notification.channel == ChangeListener.channel {
            directory.invalidate(clientID: notification.payload)
        }
    }

    private func markAttempted() {
        let waiting = progress.withLock { progress in
            progress.attempted = true
            defer { progress.waitingForAttempt = [] }
            return progress.waitingForAttempt
        }
        waiting.forEach { $0.resume() }
    }

    /// Waits before reconnecting, noticing a stop within 50 ms.
    private func pause(for delay: Duration) {
        let end = ContinuousClock.now + delay
        while !stopping.load(ordering: .relaxed), ContinuousClock.now < end {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}
