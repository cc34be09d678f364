/// A failure talking to PostgreSQL. Messages come from libpq or the server and can name tables
/// or values: they go to logs at most, never into a response.
public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    /// No connection could be opened.
    case connectionFailed(String)
    /// The connection broke during a call; it is discarded.
    case connectionLost(String)
    /// The server rejected the statement; `sqlState` is the five-character SQLSTATE code.
    case server(sqlState: String, message: String, constraint: String?)
    /// The pool gave no connection in time (`DB_POOL_CONNECTION_TIMEOUT_MS`).
    case poolTimeout(PoolStatistics)
    /// The pool is shutting down.
    case poolShutDown
    /// A statement got no complete answer within its client-side deadline; the connection was
    /// abandoned (the server may be frozen or unreachable).
    case timedOut(Duration)
    /// A parameter cannot be sent as it is (a NUL character): the client's input is refused
    /// before it reaches libpq. The message is safe to show.
    case invalidParameter(String)
    /// A result did not have the shape the code expected.
    case unexpectedResult(String)

    /// SQLSTATE 23505.
    public var isUniqueViolation: Bool {
        if case .server(let state, _, _) = self { return state == "23505" }
        return false
    }

    /// The constraint a violation names (e.g. a unique index), when the server said.
    public var constraint: String? {
        if case .server(_, _, let constraint) = self { return constraint }
        return nil
    }

    /// The connection, not the statement, failed: the server went away, was shut down or
    /// terminated the session (SQLSTATE classes 08 and 57P).
    public var isConnectionFailure: Bool {
        switch self {
        case .connectionLost, .connectionFailed: true
        case .server(let state, _, _): state.hasPrefix("08") || state.hasPrefix("57P")
        default: false
        }
    }

    /// SQLSTATE 25006 (read-only SQL transaction): a standby refused a write (one a connection
    /// reached before a failover), or a primary set read-only (`default_transaction_read_only`).
    /// `PostgresConnection.isHotStandby` tells the two apart.
    public var isReadOnlyServer: Bool {
        if case .server(let state, _, _) = self { return state == "25006" }
        return false
    }

    public var description: String {
        switch self {
        case .connectionFailed(let message): "could not connect to PostgreSQL: \(message)"
        case .connectionLost(let message): "lost the PostgreSQL connection: \(message)"
        case .server(let state, let message, _): "PostgreSQL error \(state): \(message)"
        case .poolTimeout(let stats): "no database connection within the pool's deadline (\(stats))"
        case .poolShutDown: "the database pool is shut down"
        case .timedOut(let timeout): "PostgreSQL did not answer within \(timeout.milliseconds) ms"
        case .unexpectedResult(let message): "unexpected database result: \(message)"
        case .invalidParameter(let message): "refused a statement parameter: \(message)"
        }
    }
}
