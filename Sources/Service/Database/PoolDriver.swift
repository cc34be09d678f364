import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What the pool needs of a connection: whether it can be used, and how to end it.
public protocol PoolConnection: AnyObject, Sendable {
    /// False when the connection is known to be broken; such a connection is never leased again.
    var isUsable: Bool { get }
    /// Ends the connection. May block briefly; runs on the pool's threads.
    func close()
}

/// Opens connections for the pool. `makeConnection` blocks (libpq connects synchronously) and
/// runs on the pool's threads, never on an event loop.
public protocol PoolConnectionFactory: Sendable {
    associatedtype Connection: PoolConnection
    func makeConnection() throws -> Connection
}

/// The pool's shell: `PoolStateMachine`'s decisions carried out with a connection factory, a
/// thread pool for the blocking calls, and a clock.
///
/// Generic over the factory and the clock (the anchor is postgres-nio's `ConnectionPool`), so the
/// waiting, deadlines, cancellation and idle reaping are unit-tested with a manual clock and
/// in-memory connections; `ConnectionPool` is this driver on libpq and the continuous clock.
///
/// `run()` (a lifecycle `Service`) opens `min` connections, ticks the state machine's timers on
/// the clock (at the earliest waiter's deadline, and periodically for idle reaping), and on graceful shutdown fails waiters and closes
/// every connection once it is released.
public final class PoolDriver<Factory: PoolConnectionFactory, C: Clock<Duration>>: Service, Sendable
where C.Instant == ContinuousClock.Instant {
    public typealias Connection = Factory.Connection
    public typealias ConnectionID = PoolStateMachine.ConnectionID
    typealias RequestID = PoolStateMachine.RequestID
    private typealias Continuation = CheckedContinuation<Lease, any Error>

    /// A leased connection. Give it back exactly once with `release(reusable:)`.
    public struct Lease: Sendable {
        public let id: ConnectionID
        public let connection: Connection
        let driver: PoolDriver

        /// Returns the connection; `reusable: false` closes and replaces it.
        public func release(reusable: Bool = true) {
            driver.release(id, reusable: reusable)
        }
    }

    private struct State: ~Copyable {
        var machine: PoolStateMachine
        var open: [ConnectionID: Connection] = [:]
        var waiters: [RequestID: Continuation] = [:]
        /// Requests whose continuation is not stored yet.
        var starting: Set<RequestID> = []
        /// Requests cancelled before their continuation was stored: they fail at once when it is.
        var cancelledEarly: Set<RequestID> = []
        var nextRequestID: RequestID = 0
    }

    /// Work for `run()`'s task group: connecting and closing block, so they never run inline.
    private enum Work: Sendable {
        case open(ConnectionID, delay: Duration)
        case close(Connection?)
    }

    public let configuration: PoolConfiguration
    let factory: Factory
    let clock: C
    let threadPool: OnDemandThreadPool
    let logger: Logger
    private let state: Mutex<State>
    /// Told how long each lease took to get (`signet_db_pool_acquire_wait_seconds`). In a class:
    /// a closure read and written back through `Mutex`'s generic `inout` gains a reabstraction
    /// thunk on every access, and the calls slowed down with each lease (measured, 5x in a minute).
    private let acquireWaitObserver = Mutex<AcquireWaitObserver?>(nil)

    final class AcquireWaitObserver: Sendable {
        let observe: @Sendable (Duration) -> Void
        init(_ observe: @escaping @Sendable (Duration) -> Void) { self.observe = observe }
    }
    private let work: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation

    /// Calls `observer` with the wait of every lease granted from now on.
    public func observeAcquireWait(_ observer: @escaping @Sendable (Duration) -> Void) {
        let box = AcquireWaitObserver(observer)
        acquireWaitObserver.withLock { $0 = box }
    }

    func noteAcquireWait(since start: C.Instant) {
        if let observer = acquireWaitObserver.withLock({ $0 }) { observer.observe(start.duration(to: clock.now)) }
    }

    public init(configuration: PoolConfiguration, factory: Factory, clock: C, logger: Logger) {
        self.configuration = configuration
        self.factory = factory
        self.clock = clock
        self.state = Mutex(State(machine: PoolStateMachine(configuration: configuration)))
        self.threadPool = OnDemandThreadPool(numberOfThreads: configuration.maximumConnections)
        (self.work, self.workContinuation) = AsyncStream.makeStream(of: Work.self)
        self.logger = logger
    }

    /// A snapshot for health, metrics and logs.
    public var statistics: PoolStatistics {
        state.withLock { $0.machine.statistics }
    }

    // MARK: Service

    public func run() async throws {
        execute(state.withLock { $0.machine.start() })
        let tickInterval = Self.tickInterval(for: configuration)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while !Task.isCancelled {
                        // The periodic tick reaps idle connections; a waiter's deadline wakes it
                        // earlier, so requests fail at their deadline.
                        let periodic = self.clock.now + tickInterval
                        let wake = self.state.withLock { $0.machine.nextDeadline }.map { min($0, periodic) } ?? periodic
                        try? await self.clock.sleep(until: wake, tolerance: nil)
                        let (actions, drained) = self.state.withLock { ($0.machine.tick(now: self.clock.now), $0.machine.isDrained) }
                        self.execute(actions)
                        if drained { break }
                    }
                    self.workContinuation.finish()
                }
                for await item in self.work {
                    group.addTask { await self.perform(item) }
                }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        try await threadPool.shutdown()
    }

    /// Stops leasing: waiters fail now, idle connections close now, leased ones on release.
    public func shutdown() {
        execute(state.withLock { $0.machine.shutdown() })
    }

    // MARK: Leasing

    /// Takes a connection out of the pool, waiting until `deadline` at most (then
    /// `DatabaseError.poolTimeout`). A task cancelled before or while waiting gets
    /// `CancellationError` at once.
    public func lease(deadline: ContinuousClock.Instant) async throws -> Lease {
        let request = state.withLock { state in
            state.nextRequestID += 1
            state.starting.insert(state.nextRequestID)
            return state.nextRequestID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Continuation) in
                let actions: [PoolStateMachine.Action]? = state.withLock { state in
                    state.starting.remove(request)
                    // Cancelled before this ran (onCancel found nothing to resume): never wait.
                    if state.cancelledEarly.remove(request) != nil { return nil }
                    state.waiters[request] = continuation
                    return state.machine.leaseRequested(request, deadline: deadline, now: clock.now)
                }
                guard let actions else { return continuation.resume(throwing: CancellationError()) }
                execute(actions)
            }
        } onCancel: {
            let continuation = state.withLock { state -> Continuation? in
                _ = state.machine.leaseCancelled(request)
                if state.starting.contains(request) {
                    state.cancelledEarly.insert(request)
                    return nil
                }
                return state.waiters.removeValue(forKey: request)
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Takes a connection within `DB_POOL_CONNECTION_TIMEOUT_MS`.
    public func lease() async throws -> Lease {
        try await lease(deadline: clock.now + configuration.connectionTimeout)
    }

    /// Gives back connection `id`.
    public func release(_ id: ConnectionID, reusable: Bool = true) {
        execute(state.withLock { $0.machine.connectionReleased(id, reusable: reusable, now: clock.now) })
    }

    // MARK: Carrying out actions

    private func execute(_ actions: [PoolStateMachine.Action]) {
        for action in actions {
            switch action {
            case .openConnection(let id, let delay):
                workContinuation.yield(.open(id, delay: delay))
            case .closeConnection(let id):
                let connection = state.withLock { $0.open.removeValue(forKey: id) }
                workContinuation.yield(.close(connection))
            case .lease(let id, let request):
                let (continuation, connection) = state.withLock { ($0.waiters.removeValue(forKey: request), $0.open[id]) }
                guard let continuation else {
                    // The request was cancelled in the meantime: the connection goes back.
                    release(id)
                    continue
                }
                guard let connection else {
                    continuation.resume(throwing: DatabaseError.unexpectedResult("pool leased an unknown connection"))
                    continue
                }
                continuation.resume(returning: Lease(id: id, connection: connection, driver: self))
            case .failRequest(let request, let failure):
                let (continuation, stats) = state.withLock { ($0.waiters.removeValue(forKey: request), $0.machine.statistics) }
                guard let continuation else { continue }
                switch failure {
                case .timedOut:
                    logger.warning(
                        LogLine.poolTimeout,
                        metadata: [
                            "timeoutMs": "\(configuration.connectionTimeout.milliseconds)",
                            "total": "\(stats.total)", "leased": "\(stats.leased)",
                            "idle": "\(stats.idle)", "waiting": "\(stats.waiting)",
                        ]
                    )
                    continuation.resume(throwing: DatabaseError.poolTimeout(stats))
                case .shutDown:
                    continuation.resume(throwing: DatabaseError.poolShutDown)
                }
            }
        }
    }

    private func perform(_ item: Work) async {
        switch item {
        case .close(let connection):
            _ = try? await threadPool.running.runIfActive { connection?.close() }
        case .open(let id, let delay):
            if delay > .zero { try? await clock.sleep(for: delay) }
            let factory = self.factory
            do {
                let connection = try await threadPool.running.runIfActive { try factory.makeConnection() }
                let actions = state.withLock { state in
                    state.open[id] = connection
                    return state.machine.connectionOpened(id, now: clock.now)
                }
                execute(actions)
            } catch {
                logger.warning("database pool: could not open a connection", metadata: ["error": "\(error)"])
                execute(state.withLock { $0.machine.connectionFailed(id, now: clock.now) })
            }
        }
    }

    /// Timers are checked this often: a twentieth of the shortest timeout, 5 ms to 100 ms.
    static func tickInterval(for configuration: PoolConfiguration) -> Duration {
        let shortest = min(configuration.connectionTimeout, configuration.idleTimeout)
        return min(max(shortest / 20, .milliseconds(5)), .milliseconds(100))
    }
}
