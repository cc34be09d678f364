import Foundation
import Logging
import Spec

/// What the service talks to, made once per process: the pool, the logger, the clock, the
/// metrics registry and the drain flag. Tests build their own to reach into the pool (to hold
/// leases, read statistics) while running the same application, and tune timings through
/// `tuning`; production uses `Tuning.production`.
public struct Dependencies: Sendable {
    public var pool: ConnectionPool
    public var logger: Logger
    /// The wall clock for token times; tests inject their own.
    public var now: @Sendable () -> Date
    /// What `GET /metrics` exports; one registry per application.
    public var metrics = SignetMetrics()
    /// Set on SIGTERM by `ShutdownDrain`; `/health/ready` answers 503 from then on.
    public var drain = DrainState()
    /// Timings and hooks tests change; `Tuning.production` everywhere else.
    public var tuning = Tuning.production

    public init(pool: ConnectionPool, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.pool = pool
        self.logger = logger
        self.now = now
    }

    /// What tests tune. Each default is production's.
    public struct Tuning: Sendable {
        /// How often noted credential uses are written as `lastUsedAt`.
        public var lastUsedFlushInterval: Duration = .seconds(5)
        /// Called before each database lookup of a client id (tests count them).
        public var onClientLookup: (@Sendable () -> Void)?
        /// How long a client read from the database is answered from memory on this instance
        /// while the change listener is not current (tests set a long one to prove an answer did
        /// not come from an expired entry).
        public var credentialCacheFallbackTTL: Duration = .milliseconds(Defaults.credentialCacheMilliseconds)
        /// How often the change listener sends its heartbeat.
        public var changeListenerHeartbeat = ChangeListener.defaultHeartbeat
        /// False: no change listener, as if PostgreSQL never let it listen (tests of the fallback).
        public var listensForChanges = true
        /// Source addresses held over their budget, and the client lookups each has under way
        /// (tests give one with a small bound, and watch its queue).
        public var addressGate = AddressGate()
        /// Told every route the router registers, once it is built (the OpenAPI document's test).
        public var onRoutes: (@Sendable ([(method: String, path: String)]) -> Void)?

        public init() {}

        public static var production: Tuning { Tuning() }
    }

    /// The production dependencies for a configuration.
    public static func live(configuration: SignetConfiguration, logger: Logger) -> Dependencies {
        Dependencies(
            pool: ConnectionPool(
                configuration: configuration.pool,
                connectionString: configuration.databaseURL,
                settings: postgresSettings(configuration),
                logger: logger
            ),
            logger: logger
        )
    }

    /// libpq keywords for every Signet connection, unless `DATABASE_URL` sets them itself.
    public static func postgresSettings(_ configuration: SignetConfiguration) -> [(String, String)] {
        let connectSeconds = max(2, Int((configuration.pool.connectionTimeout.milliseconds + 999) / 1000))
        return [
            ("fallback_application_name", "signet"),
            ("connect_timeout", String(connectSeconds)),
            ("options", "-c statement_timeout=\(configuration.statementTimeout.milliseconds)"),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("tcp_user_timeout", "10000"),
        ]
    }
}
