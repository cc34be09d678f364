/// The bounds of the PostgreSQL connection pool (`DB_POOL_*`).
public struct PoolConfiguration: Sendable, Equatable {
    /// Connections opened at start and kept open (`DB_POOL_MIN`).
    public var minimumConnections: Int
    /// Never more connections than this, counting those being opened (`DB_POOL_MAX`).
    public var maximumConnections: Int
    /// Idle connections above `minimumConnections` close after this (`DB_POOL_IDLE_TIMEOUT_MS`).
    public var idleTimeout: Duration
    /// One deadline covering the wait in the queue and the connect (`DB_POOL_CONNECTION_TIMEOUT_MS`).
    public var connectionTimeout: Duration
    /// The client-side deadline of one statement: the server's `statement_timeout`
    /// (`DB_STATEMENT_TIMEOUT_MS`) plus `queryTimeoutMargin`, so a healthy server always ends a
    /// slow statement first and the client deadline only fires when the server cannot answer.
    public var queryTimeout: Duration

    /// How much longer than `statement_timeout` the client waits for a statement.
    public static let queryTimeoutMargin = Duration.milliseconds(250)

    public init(
        minimumConnections: Int,
        maximumConnections: Int,
        idleTimeout: Duration,
        connectionTimeout: Duration,
        statementTimeout: Duration = .seconds(5)
    ) {
        self.minimumConnections = minimumConnections
        self.maximumConnections = maximumConnections
        self.idleTimeout = idleTimeout
        self.connectionTimeout = connectionTimeout
        self.queryTimeout = statementTimeout + Self.queryTimeoutMargin
    }
}

/// A snapshot of the pool, read by health, metrics and the 503 log line.
public struct PoolStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Open connections plus those being opened.
    public var total: Int
    public var leased: Int
    public var idle: Int
    public var connecting: Int
    /// Requests queued for a connection.
    public var waiting: Int
    /// Requests that gave up after `DB_POOL_CONNECTION_TIMEOUT_MS`, since start.
    public var acquireTimeouts: Int
    public var connectionsOpened: Int
    public var connectionsClosed: Int
    public var connectFailures: Int

    public var description: String {
        "total=\(total) leased=\(leased) idle=\(idle) connecting=\(connecting) waiting=\(waiting) acquireTimeouts=\(acquireTimeouts)"
    }
}
