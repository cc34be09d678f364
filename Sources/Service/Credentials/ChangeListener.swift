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
/// (libpq blocks). Every `heartbeat` it notifies a channel of its own and checks that the
/// triggers are enabled; the notification coming back proves that notifications reach it and
/// that every change committed before was delivered (PostgreSQL delivers in commit order), and
/// the cache's long lifetime holds only while the last proof is recent (`ClientDirectory`'s
/// grace). When the connection fails (terminated, the server gone, a heartbeat not back within
/// `heartbeatTimeout`), the cache is flushed and falls back to its short lifetime; the listener
/// reconnects with backoff and, once it listens again, flushes once more (changes made meanwhile
/// went unannounced) before entries may live long again.
public final class ChangeListener: Service, Sendable {
    public static let channel = "signet_clients"
    public static let defaultHeartbeat = Duration.milliseconds(Defaults.changeListenerHeartbeatMilliseconds)
    /// What the listener's session adds to its `application_name`, so an operator (or a
    /// scenario) can tell it from the pool's sessions in `pg_stat_activity`.
    public static let applicationNameSuffix = " listener"
    /// The payload that announces a change to every client (a `TRUNCATE`).
    static let everyClient = "*"
    /// The triggers that announce changes (migrations 4 and 5); all must be enabled `ALWAYS`.
    static let triggers = ["agents_changed", "agent_credentials_changed", "agents_truncated", "agent_credentials_truncated"]
    /// How long a heartbeat may take to come back before the session is given up for a new one.
    /// Shorter stalls only end the cache's long lifetime (its grace), without a flush.
    public static let heartbeatTimeout = Duration.seconds(10)

    /// What the thread runs; the listener stops it when it goes away, so an application built
    /// and never run does not keep a connection open.
    private let core: Core

    public init(
        directory: ClientDirectory,
        heartbeat: Duration = ChangeListener.defaultHeartbeat,
        logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
        connect: @escaping @Sendable () throws -> PostgresConnection
    ) {
        core = Core(directory: directory, heartbeat: heartbeat, logger: logger, now: now, connect: connect)
    }

    deinit {
        core.stopping.store(true, ordering: .relaxed)
    }

    /// Listens until graceful shutdown (or cancellation): its thread starts here, under the
    /// service group, never when the listener is built. Then it stops the thread and waits up to
    /// 2 s for it to close its connection: a thread blocked connecting to a frozen server ends on
    /// its own at libpq's `connect_timeout`, without holding the shutdown.
    public func run() async throws {
        await core.start()
        try? await gracefulShutdown()
        core.stopping.store(true, ordering: .relaxed)
        _ = await withDeadline(.seconds(2)) { [core] in await core.finished() }
    }
}

private final class Core: Sendable {
    private let connect: @Sendable () throws -> PostgresConnection
    private let directory: ClientDirectory
    private let heartbeat: Duration
    private let logger: Logger
    private let now: @Sendable () -> ContinuousClock.Instant
    let stopping = Atomic<Bool>(false)
    private struct Progress {
        var threadStarted = false
        var attempted = false
        var finished = false
        var waitingForAttempt: [CheckedContinuation<Void, Never>] = []
        var waitingForFinish: [CheckedContinuation<Void, Never>] = []
    }
    private let progress = Mutex(Progress())
    /// This listener's own channel for its heartbeats.
    private let heartbeatChannel = "signet_heartbeat_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)

    init(
        directory: ClientDirectory, heartbeat: Duration, logger: Logger, now: @escaping @Sendable () -> ContinuousClock.Instant,
        connect: @escaping @Sendable () throws -> PostgresConnection
    ) {
        self.now = now
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
        await wait(until: \.attempted, in: \.waitingForAttempt)
    }

    /// Returns once the thread has ended (after `stopping` was set).
    func finished() async {
        await wait(until: \.finished, in: \.waitingForFinish)
    }

    private typealias Waiters = WritableKeyPath<Progress, [CheckedContinuation<Void, Never>]>

    /// Returns once `flag` is set (by `signal`).
    private func wait(until flag: KeyPath<Progress, Bool>, in waiters: Waiters) async {
        await withCheckedContinuation { continuation in
            let done = progress.withLock { progress in
                if progress[keyPath: flag] { return true }
                progress[keyPath: waiters].append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Sets `flag` and resumes everyone waiting for it.
    private func signal(_ flag: WritableKeyPath<Progress, Bool>, _ waiters: Waiters) {
        let waiting = progress.withLock { progress in
            progress[keyPath: flag] = true
            defer { progress[keyPath: waiters] = [] }
            return progress[keyPath: waiters]
        }
        waiting.forEach { $0.resume() }
    }

    private func listen() {
        var monitor = ListenerMonitor(heartbeat: heartbeat, heartbeatTimeout: ChangeListener.heartbeatTimeout)
        while !stopping.load(ordering: .relaxed) {
            var reconnectAfter = Duration.zero
            do {
                let connection = try connect()
                defer { connection.close() }
                connection.timeout = ChangeListener.heartbeatTimeout
                try ChangeFeed.listen(heartbeatChannel: heartbeatChannel, on: connection)
                let now = self.now()
                directory.listenerStarted(at: now)
                monitor.sessionStarted(now: now)
                try beat(on: connection, monitor: &monitor)
            } catch {
                let (outage, delay) = monitor.sessionEnded(now: now())
                reconnectAfter = delay
                switch outage {
                case .begins: logger.warning(LogLine.listenerLost, metadata: ["error": "\(error)"])
                case .continues(let failed):
                    logger.debug(LogLine.listenerLost, metadata: ["error": "\(error)", "failedAttempts": "\(failed)"])
                }
            }
            directory.listenerLost()
            markAttempted()
            pause(for: reconnectAfter)
        }
        markAttempted()
        signal(\.finished, \.waitingForFinish)
    }

    /// Every `heartbeat`: a notification to this listener's own channel, committed after every
    /// change before it, and a look at the triggers (`ListenerMonitor` keeps the rules). When it
    /// comes back (notifications arrive in commit order) and every trigger is enabled, every change
    /// committed before it has been seen: the cache may count on the listener up to then. One not
    /// back within `heartbeatTimeout` ends the session; until then only the cache's grace decides.
    private func beat(on connection: PostgresConnection, monitor: inout ListenerMonitor) throws {
        while !stopping.load(ordering: .relaxed) {
            switch monitor.tick(now: now()) {
            case .sendHeartbeat(let nonce):
                let enabled = try ChangeFeed.heartbeat(nonce, to: heartbeatChannel, on: connection)
                monitor.heartbeatSent(nonce: nonce, triggersEnabled: enabled)
            case .giveUp:
                throw DatabaseError.timedOut(ChangeListener.heartbeatTimeout)
            case .wait:
                break
            }
            // Short waits, so a stop is noticed soon.
            for notification in try connection.notifications(waitingUpTo: .milliseconds(100)) {
                if notification.channel == ChangeListener.channel {
                    if notification.payload == ChangeListener.everyClient {
                        directory.invalidateAll()
                    } else {
                        directory.invalidate(clientID: notification.payload)
                    }
                    continue
                }
                guard notification.channel == heartbeatChannel else { continue }
                switch monitor.heartbeatArrived(payload: notification.payload) {
                case .stray:
                    continue
                case .confirmed(let sent, let afterOutage):
                    directory.listenerConfirmed(at: sent)
                    if let afterOutage {
                        logger.info(LogLine.listenerBack, metadata: ["failedAttempts": "\(afterOutage)"])
                    }
                case .triggersDisabled(let warn):
                    if warn {
                        logger.warning(
                            "a client change trigger is not enabled (ENABLE ALWAYS): cached credentials are kept only the short fallback",
                            metadata: ["triggers": "\(ChangeListener.triggers.joined(separator: ", "))"])
                    }
                }
                markAttempted()
            }
        }
    }

    private func markAttempted() {
        signal(\.attempted, \.waitingForAttempt)
    }

    /// Waits before reconnecting, noticing a stop within 50 ms.
    private func pause(for delay: Duration) {
        let end = ContinuousClock.now + delay
        while !stopping.load(ordering: .relaxed), ContinuousClock.now < end {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
}
