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
    /// The one clock, wall and monotonic; tests inject their own.
    public var clock = SignetClock.system
    /// The wall clock (token times, expiry, audit): `clock.wall`.
    public var now: @Sendable () -> Date {
        get { clock.wall }
        set { clock.wall = newValue }
    }
    /// What `GET /metrics` exports; one registry per application.
    public var metrics = SignetMetrics()
    /// Set on SIGTERM by `ShutdownDrain`; `/health/ready` answers 503 from then on.
    public var drain = DrainState()
    /// Timings and hooks tests change; `Tuning.production` everywhere else.
    public var tuning = Tuning.production

    public init(pool: ConnectionPool, logger: Logger, clock: SignetClock = .system) {
        self.pool = pool
        self.logger = logger
        self.clock = clock
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
                session: postgresSession(configuration),
                logger: logger
            ),
            logger: logger
        )
    }

    /// Server settings of every Signet connection, set once it is open (not in the startup
    /// packet's `options`, which PgBouncer refuses).
    public static func postgresSession(_ configuration: SignetConfiguration) -> [(String, String)] {
        [("statement_timeout", "\(configuration.statementTimeout.milliseconds)")]
    }

    /// libpq keywords for every Signet connection, unless `DATABASE_URL` sets them itself.
    public static func postgresSettings(_ configuration: SignetConfiguration) -> [(String, String)] {
        let connectSeconds = max(2, Int((configuration.pool.connectionTimeout.milliseconds + 999) / 1000))
        return [
            ("fallback_application_name", "signet"),
            ("connect_timeout", String(connectSeconds)),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("tcp_user_timeout", "10000"),
        ]
    }
}

/// The service's one clock: wall time for what is written down or compared with other machines
/// (token `iat`/`exp`, credential expiry, audit rows) and monotonic time for what is measured on
/// this one (shared health rounds, the change listener's heartbeats, the credential cache's ages,
/// which the listener's confirmations are compared with). Passed to every
/// part that reads time, so a test moves both at once.
public struct SignetClock: Sendable {
    public var wall: @Sendable () -> Date
    public var monotonic: @Sendable () -> ContinuousClock.Instant

    public init(wall: @escaping @Sendable () -> Date, monotonic: @escaping @Sendable () -> ContinuousClock.Instant) {
        self.wall = wall
        self.monotonic = monotonic
    }

    /// The machine's clocks.
    public static let system = SignetClock(wall: { Date() }, monotonic: { ContinuousClock.now })
}
