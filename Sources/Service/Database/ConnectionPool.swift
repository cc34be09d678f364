import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The PostgreSQL connection pool: `PoolStateMachine`'s decisions carried out with libpq.
///
/// Every blocking libpq call (connect, query, close) runs on a dedicated `NIOThreadPool` with one
/// thread per allowed connection, never on an event loop. `run()` (a lifecycle `Service`) opens
/// `min` connections, ticks the state machine's timers (lease deadlines, idle reaping), and on
/// graceful shutdown fails waiters and closes every connection once it is released.
public final class ConnectionPool: Service, Sendable {
    public typealias ConnectionID = PoolStateMachine.ConnectionID
    private typealias RequestID = PoolStateMachine.RequestID
    private typealias Continuation = CheckedContinuation<(ConnectionID, PostgresConnection), any Error>

    private struct State: ~Copyable {
        var machine: PoolStateMachine
        var open: [ConnectionID: PostgresConnection] = [:]
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
        case close(PostgresConnection?)
    }

    public let configuration: PoolConfiguration
    private let connectionString: String
    private let settings: [(String, String)]
    private let state: Mutex<State>
    private let threadPool: NIOThreadPool
    private let work: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation
    private let logger: Logger
    private let clock = ContinuousClock()

    /// - Parameters:
    ///   - connectionString: libpq connection string or URI.
    ///   - settings: libpq keywords used unless the connection string sets them (for example
    ///     `fallback_application_name`, `options`).
    public init(
        configuration: PoolConfiguration,
        connectionString: String,
        settings: [(String, String)] = [],
        logger: Logger
    ) {
        self.configuration = configuration
        self.connectionString = connectionString
        self.settings = settings
        self.state = Mutex(State(machine: PoolStateMachine(configuration: configuration)))
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.maximumConnections)
        (self.work, self.workContinuation) = AsyncStream.makeStream(of: Work.self)
        self.logger = logger
        threadPool.start()
    }

    deinit {
        threadPool.shutdownGracefully { _ in }
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
                        try? await Task.sleep(for: tickInterval)
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
        try await threadPool.shutdownGracefully()
    }

    /// Stops leasing: waiters fail now, idle connections close now, leased ones on release.
    public func shutdown() {
        execute(state.withLock { $0.machine.shutdown() })
    }

    // MARK: Using a connection

    /// Runs `body` with a leased connection on the pool's thread pool.
    ///
    /// Waiting for a connection and opening one share one deadline,
    /// `DB_POOL_CONNECTION_TIMEOUT_MS` (or `timeout`, when shorter); past it this throws
    /// `DatabaseError.poolTimeout`. A connection found broken is discarded and another one leased
    /// within the same deadline. A transaction `body` left open is rolled back before the
    /// connection goes back.
    ///
    /// Each statement `body` runs is bounded by `timeout`, or by `queryTimeout` when nil; one
    /// that misses it throws `DatabaseError.timedOut` and its connection is discarded, never
    /// returned to the idle set.
    public func withConnection<Result: Sendable>(
        timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) throws -> Result
    ) async throws -> Result {
        let statementTimeout = timeout ?? configuration.queryTimeout
        let deadline = clock.now + min(configuration.connectionTimeout, timeout ?? configuration.connectionTimeout)
        while true {
            let (id, connection) = try await lease(deadline: deadline)
            let outcome: Swift.Result<Result, any Error>?
            let reusable: Bool
            do {
                (outcome, reusable) = try await threadPool.runIfActive {
                    guard connection.isUsable else { return (nil, false) }
                    connection.resetStatementCount()
                    connection.timeout = statementTimeout
                    let outcome = Swift.Result { try body(connection) }
                    if case .failure(let error as DatabaseError) = outcome, error.isConnectionFailure,
                        connection.statementsSucceeded == 0
                    {
                        // The connection died before anything ran (a server restart or a
                        // terminated session noticed only now): safe to run again elsewhere.
                        return (nil, false)
                    }
                    if connection.isInTransaction, connection.isUsable { _ = try? connection.query("ROLLBACK") }
                    return (outcome, connection.isUsable)
                }
            } catch {
                release(id, reusable: false)
                throw error
            }
            release(id, reusable: reusable)
            if let outcome { return try outcome.get() }
            logger.info("discarded a broken database connection", metadata: ["pool": "\(statistics)"])
        }
    }

    /// Runs `body` inside `BEGIN` ... `COMMIT`; an error rolls back.
    public func transaction<Result: Sendable>(
        timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) throws -> Result
    ) async throws -> Result {
        try await withConnection(timeout: timeout) { connection in
            try connection.query("BEGIN")
            let result = try body(connection)
            try connection.query("COMMIT")
            return result
        }
    }

    /// Takes a connection out of the pool; the caller must `release` it. For tests that hold
    /// leases to exhaust the pool.
    public func lease() async throws -> (ConnectionID, PostgresConnection) {
        try await lease(deadline: clock.now + configuration.connectionTimeout)
    }

    /// Gives back a connection taken with `lease()`.
    public func release(_ id: ConnectionID, reusable: Bool = true) {
        execute(state.withLock { $0.machine.connectionReleased(id, reusable: reusable, now: clock.now) })
    }

    private func lease(deadline: ContinuousClock.Instant) async throws -> (ConnectionID, PostgresConnection) {
        let request = state.withLock { state in
            state.nextRequestID += 1
            state.starting.insert(state.nextRequestID)
            return state.nextRequestID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Continuation) in
                let actions: [PoolStateMachine.Action]? = state.withLock { state in
                    // Cancelled before this ran (onCancel found nothing to resume): never wait.
                    state.starting.remove(request)
                    if state.cancelledEarly.remove(request) != nil { return nil }
                    state.waiters[request] = continuation
                    return state.machine.leaseRequested(request, deadline: deadline, now: clock.now)
                }
                guard let actions else { return continuation.resume(throwing: CancellationError()) }
                execute(actions)
            }
        } onCancel: {
            let continuation = state.withLock { state in
                _ = state.machine.leaseCancelled(request)
                if state.starting.contains(request) {
                    state.cancelledEarly.insert(request)
                    return nil as Continuation?
                }
                return state.waiters.removeValue(forKey: request)
            }
            continuation?.resume(throwing: CancellationError())
        }
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
                continuation.resume(returning: (id, connection))
            case .failRequest(let request, let failure):
                let (continuation, stats) = state.withLock { ($0.waiters.removeValue(forKey: request), $0.machine.statistics) }
                guard let continuation else { continue }
                switch failure {
                case .timedOut:
                    logger.warning(
                        "database pool: no connection within DB_POOL_CONNECTION_TIMEOUT_MS",
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
            // PQfinish may block briefly (it sends Terminate), so it runs on the thread pool.
            _ = try? await threadPool.runIfActive { connection?.close() }
        case .open(let id, let delay):
            if delay > .zero { try? await Task.sleep(for: delay) }
            let connectionString = self.connectionString
            let settings = self.settings
            do {
                let connection = try await threadPool.runIfActive {
                    try PostgresConnection.connect(connectionString, settings: settings)
                }
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

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
