/// Every scenario the Simulator knows, one per spec scenario built so far.
public enum Catalogue {
    public static let all: [Scenario] = [
        PoolScenarios.exhaustion,
        PoolScenarios.idleReaping,
        RateLimitScenarios.sharedAcrossInstances,
        RateLimitScenarios.redisUnavailable,
        RateLimitScenarios.limitExceeded,
        RateLimitScenarios.scriptFlush,
        RateLimitScenarios.memoryOnly,
        HealthScenarios.allHealthy,
        HealthScenarios.redisUnreachable,
        HealthScenarios.vaultDegraded,
        HealthScenarios.vaultSealed,
        HealthScenarios.opaSlow,
        HealthScenarios.opaDown,
        HealthScenarios.flood,
        HealthScenarios.postgresFrozen,
        VaultScenarios.secretsInVault,
        VaultScenarios.importFromPostgres,
        AbuseScenarios.lockoutThroughBalancer,
        ConnectionScenarios.slowReaders,
        ConnectionScenarios.connectionSlots,
        CacheScenarios.revocationPropagation,
        CacheScenarios.listenerLost,
        OperationsScenarios.rollingRestart,
        OperationsScenarios.prometheusScrape,
        FailoverScenarios.postgresFailover,
        FailoverScenarios.redisSentinelFailover,
        FailoverScenarios.redisCluster,
        FailoverScenarios.pgbouncerSession,
        DelegationScenarios.delegationChain,
        DelegationScenarios.issuerFrozen,
    ]

    public static func named(_ name: String) -> Scenario? {
        all.first { $0.name == name }
    }
}
