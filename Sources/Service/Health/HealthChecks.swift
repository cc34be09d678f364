import Logging

extension HealthMonitor {
    /// The checks of `/health/detailed` and `/health/ready`, and their wording: a pooled
    /// `SELECT 1`; `PING` on a Redis connection of its own (unless `REDIS_RATE_LIMIT_ENABLED=false`);
    /// Vault's `sys/health` and OPA's `/health` when they are configured.
    static func live(
        configuration: SignetConfiguration, pool: ConnectionPool, limiter: RateLimiter, directory: ClientDirectory,
        vault: VaultClient?, opa: OPAClient?, trustedIssuers: TrustedIssuers? = nil, logger: Logger, clock: SignetClock
    ) -> HealthMonitor {
        var redis: Check?
        if let topology = configuration.rateLimit.redis {
            let pinger = RedisPinger(
                locator: RedisLocator(topology: topology, timeout: configuration.healthCheckTimeout, logger: logger))
            redis = { _ in try await redisCheck(pinger, limiter: limiter) }
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
            trustedIssuers: trustedIssuers.map { issuers in { @Sendable in issuers.health() } },
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

    /// Behind Sentinel the message names the master in use (the limiter's), so an operator sees
    /// a failover in the health report; with a cluster, the masters of the slot map in use; a
    /// single server's healthy answer carries no message.
    static func redisCheck(_ pinger: RedisPinger, limiter: RateLimiter) async throws -> String? {
        let topology: String? =
            if let master = limiter.redisMaster {
                "master \(master.address.map { "\($0)" } ?? "not yet known") (\(master.switches) switches since start)"
            } else if let cluster = limiter.redisCluster {
                "cluster masters \(cluster.masters.isEmpty ? "not yet known" : cluster.masters.map(\.description).joined(separator: ","))"
                    + " (slot map changed \(cluster.changes) times since start)"
            } else {
                nil
            }
        do {
            try await pinger.ping()
        } catch let error as RedisError {
            let reason =
                switch error {
                case .connectionFailed:
                    switch pinger.locator.topology {
                    case .server: "could not connect to Redis"
                    case .sentinel: pinger.locator.master == nil ? "could not connect to Redis" : "no sentinel named a reachable master"
                    case .cluster: "no node of REDIS_CLUSTER_NODES answered"
                    }
                case .io: "Redis did not answer PING"
                case .protocolError, .redirected: "Redis answered PING unexpectedly"
                case .readOnly: "the server the sentinels named is not a master"
                case .clusterDown(let message): "Redis Cluster: \(message)"
                }
            throw HealthCheckError(
                reason + (limiter.usesRedis ? "" : "; the rate limiter decides in memory") + (topology.map { "; \($0)" } ?? ""))
        }
        let decides = limiter.usesRedis ? nil : "Redis answers; the rate limiter still decides in memory until its next probe"
        let parts = [decides, topology].compactMap { $0 }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}
