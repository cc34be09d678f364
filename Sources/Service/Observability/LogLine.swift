import Logging

/// The log lines an operator (or a Simulator scenario) looks for, by their fixed message: the
/// service logs them with these constants and the scenarios match them by the same constants, so
/// rewording one cannot silently break the check that it is logged.
public enum LogLine {
    /// The change listener lost its session: the cache falls back to its short lifetime.
    public static let listenerLost: Logger.Message =
        "not listening for client changes: cached credentials are kept only the short fallback until it listens again"
    /// The change listener confirmed a heartbeat after an outage.
    public static let listenerBack: Logger.Message = "listening for client changes again"
    /// OPA failed: token requests fail closed.
    public static let opaDown: Logger.Message = "OPA unavailable: token requests fail closed (503) until it answers"
    /// OPA answered again after failing.
    public static let opaBack: Logger.Message = "OPA answers again: token decisions resumed"
    /// The limiter lost Redis and decides in memory.
    public static let redisDown: Logger.Message = "rate limiter: Redis failed; deciding in memory (per instance) until it answers again"
    /// The limiter decides in Redis again.
    public static let redisBack: Logger.Message = "rate limiter: Redis answers again; deciding in Redis"
    /// The sentinels named a master (at start, or after a failure forgot the last one).
    public static let redisMasterFound: Logger.Message = "Redis: the sentinels name this master"
    /// The master behind Sentinel changed (`+switch-master`, or a new answer after a failure).
    public static let redisMasterSwitched: Logger.Message = "Redis: the master changed; the limiter follows it"
    /// The cluster's slot map changed (a master failed over, or slots moved).
    public static let redisClusterMapChanged: Logger.Message = "Redis Cluster: the slot map changed; the limiter follows it"
    /// A request waited its whole bound for a pooled connection (one line with the pool's numbers).
    public static let poolTimeout: Logger.Message = "database pool: no connection within DB_POOL_CONNECTION_TIMEOUT_MS"
    /// Start-up with Vault found secret material in PostgreSQL (copied to an empty Vault).
    public static let secretsInPostgres: Logger.Message = """
        secret material found in PostgreSQL: it is copied to an empty Vault and not used from PostgreSQL; \
        delete the server_keys and signing_keys rows once every instance runs with Vault
        """
}

extension Logger.Message {
    /// The message's text, for matching log lines.
    public var text: String { description }
}
