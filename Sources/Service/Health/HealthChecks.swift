import Logging

extension HealthMonitor {
    /// The checks of `/health/detailed` and `/health/ready`, and their wording: a pooled
    /// `SELECT 1`; `PING` on a Redis connection of its own (unless `REDIS_RATE_LIMIT_ENABLED=false`);
    /// Vault's `sys/health` and OPA's `/health` when they are configured.
    static func live(
        configuration: SignetConfiguration, pool: ConnectionPool, limiter: RateLimiter, directory: ClientDirectory,
        vault: VaultClient?, opa: OPAClient?, logger: Logger, clock: SignetClock
    ) -> HealthMonitor {
        var redis: Check?
        if let endpoint = configuration.rateLimit.redis {
            let pinger = RedisPinger(endpoint: endpoint)
            redis = { timeout in try await redisCheck(pinger, limiter: limiter, timeout: timeout) }
        }
        var vaultCheck: Check?
        if let vault { vaultCheck = { timeout in try await vault.health(timeout: timeout) } }
        var opaCheck: Check?
        if let opa { opaCheck = { timeout in try await opa.health(timeout: timeout) } }
        return HealthMonitor(
            database: { timeout in try await databaseCheck(pool, timeout: timeout) },
            redis: redis,
            vault: vaultCheck,
            opa: opaCheck,
            credentialCache: { HealthRules.credentialCache(directory.status()) },
            timeout: configuration.healthCheckTimeout,
            degradedAfter: configuration.healthDegradedLatency,
            logger: logger,
            clock: clock
        )
    }

    static func databaseCheck(_ pool: ConnectionPool, timeout: Duration) async throws -> String? {
        do {
            try await pool.withConnection(timeout: timeout) { try $0.ping() }
        } catch let error as DatabaseError {
            let reason =
                switch error {
                case .poolTimeout: "no pooled connection within the check's bound"
                case .timedOut: "SELECT 1 got no answer within the check's bound"
                case .poolShutDown: "the pool is shutting down"
                case .connectionFailed, .connectionLost: "the database is unavailable"
                case .server, .unexpectedResult, .invalidParameter: "SELECT 1 failed"
                }
            throw HealthCheckError("\(reason); pool \(pool.statistics)")
        }
        return "pool \(pool.statistics)"
    }

    static func redisCheck(_ pinger: RedisPinger, limiter: RateLimiter, timeout: Duration) async throws -> String? {
        do {
            try await pinger.ping(timeout: timeout)
        } catch let error as RedisError {
            let reason =
                switch error {
                case .connectionFailed: "could not connect to Redis"
                case .io: "Redis did not answer PING"
                case .protocolError: "Redis answered PING unexpectedly"
                }
            throw HealthCheckError(reason + (limiter.usesRedis ? "" : "; the rate limiter decides in memory"))
        }
        return limiter.usesRedis ? nil : "Redis answers; the rate limiter still decides in memory until its next probe"
    }
}
