import Logging
import NIOPosix

/// Opens libpq connections with a connection string and default keywords.
public struct PostgresConnectionFactory: PoolConnectionFactory {
    let connectionString: String
    let settings: [(String, String)]
    let session: [(String, String)]

    public func makeConnection() throws -> PostgresConnection {
        try PostgresConnection.connect(connectionString, settings: settings, session: session)
    }
}

extension PostgresConnection: PoolConnection {}

/// The PostgreSQL connection pool: the pool driver on libpq and the continuous clock.
///
/// Every blocking libpq call (connect, query, close) runs on the driver's thread pool, with one
/// thread per allowed connection, never on an event loop.
public typealias ConnectionPool = PoolDriver<PostgresConnectionFactory, ContinuousClock>

extension PoolDriver where Factory == PostgresConnectionFactory, C == ContinuousClock {
    /// - Parameters:
    ///   - connectionString: libpq connection string or URI.
    ///   - settings: libpq keywords used unless the connection string sets them (for example
    ///     `fallback_application_name`, `options`).
    ///   - session: server settings set on each new connection (`statement_timeout`).
    public convenience init(
        configuration: PoolConfiguration,
        connectionString: String,
        settings: [(String, String)] = [],
        session: [(String, String)] = [],
        logger: Logger
    ) {
        self.init(
            configuration: configuration,
            factory: PostgresConnectionFactory(connectionString: connectionString, settings: settings, session: session),
            clock: ContinuousClock(),
            logger: logger
        )
    }

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
        let start = clock.now
        let deadline = start + min(configuration.connectionTimeout, timeout ?? configuration.connectionTimeout)
        // A connection found dead before anything ran is replaced, as often as the deadline
        // allows (the dead ones are already lost). Work that ran and failed on a connection that
        // died or sits on a standby, before any statement succeeded, runs again on another one:
        // `maxAttempts` runs in all, so a server that keeps failing costs a request three
        // connections, not a storm of them.
        var runs = 0
        while true {
            let lease = try await lease(deadline: deadline)
            noteAcquireWait(since: start)
            let connection = lease.connection
            let mayRunAgain = runs + 1 < Self.maxAttempts
            let outcome: Swift.Result<Result, any Error>?
            let reusable: Bool
            let ran: Bool
            do {
                (outcome, reusable, ran) = try await threadPool.running.runIfActive {
                    guard connection.isUsable else { return (nil, false, false) }
                    connection.resetStatementCount()
                    connection.timeout = statementTimeout
                    let outcome = Swift.Result { try body(connection) }
                    var discard = false
                    // A 25006 from a primary (`default_transaction_read_only`, a session set read
                    // only) is the caller's; from a standby, the connection's.
                    if case .failure(let error as DatabaseError) = outcome,
                        error.isConnectionFailure || (error.isReadOnlyServer && connection.isHotStandby)
                    {
                        // Before anything succeeded on it, the work runs again elsewhere (as it
                        // always has for a connection found dead); after, the error goes to the
                        // caller (503), never run again.
                        if connection.statementsSucceeded == 0 && mayRunAgain { return (nil, false, true) }
                        discard = true
                    }
                    if connection.isInTransaction, connection.canSendStatements { _ = try? connection.query("ROLLBACK") }
                    return (outcome, connection.isUsable && !discard, true)
                }
            } catch {
                lease.release(reusable: false)
                throw error
            }
            lease.release(reusable: reusable)
            if ran { runs += 1 }
            if let outcome { return try outcome.get() }
            logger.info("discarded a broken database connection", metadata: ["pool": "\(statistics)"])
        }
    }

    /// How many times one `withConnection` runs its work when each run fails on a connection that
    /// died or sits on a standby before any statement succeeded.
    public static let maxAttempts = 3

    /// Runs `body` inside `BEGIN` ... `COMMIT`; an error rolls back. Every write that must not
    /// happen twice runs here: once `BEGIN` succeeded, a connection lost later (a `COMMIT` whose
    /// outcome is unknown among them) reaches the caller (503) and the work is never run again,
    /// whereas a lone statement whose connection dies is run again on another (see
    /// `withConnection`), which only reads and idempotent writes may be.
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
}
