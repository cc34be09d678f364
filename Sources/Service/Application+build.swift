import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import Spec

/// What the service talks to, made once per process. Tests build their own to reach into the
/// pool (to hold leases, read statistics) while running the same application.
public struct Dependencies: Sendable {
    public var pool: ConnectionPool
    public var logger: Logger
    /// Decides the scopes of each token; the built-in policy unless OPA is configured.
    public var policy: any TokenPolicy
    /// The wall clock for token times; tests inject their own.
    public var now: @Sendable () -> Date
    /// How often noted credential uses are written as `lastUsedAt`.
    public var lastUsedFlushInterval: Duration = .seconds(5)
    /// Called before each database lookup of a client id (tests count them).
    public var onClientLookup: (@Sendable () -> Void)?
    /// How long a client read from the database is answered from memory on this instance while
    /// the change listener is not current (tests set a long one to prove an answer did not come
    /// from an expired entry).
    public var credentialCacheFallbackTTL: Duration = .milliseconds(Defaults.credentialCacheMilliseconds)
    /// How often the change listener sends its heartbeat.
    public var changeListenerHeartbeat = ChangeListener.defaultHeartbeat
    /// False: no change listener, as if PostgreSQL never let it listen (tests of the fallback).
    public var listensForChanges = true
    /// Source addresses held over their budget, and the client lookups each has under way
    /// (tests give one with a small bound, and watch its queue).
    public var addressGate = AddressGate()
    /// Set on SIGTERM by `ShutdownDrain`; `/health/ready` answers 503 from then on.
    public var drain = DrainState()
    /// What `GET /metrics` exports; one registry per application.
    public var metrics = SignetMetrics()
    /// Told every route the router registers, once it is built (the OpenAPI document's test).
    public var onRoutes: (@Sendable ([(method: String, path: String)]) -> Void)?

    public init(
        pool: ConnectionPool, logger: Logger, policy: any TokenPolicy = BuiltInPolicy(), now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.pool = pool
        self.logger = logger
        self.policy = policy
        self.now = now
    }

    /// The production dependencies for a configuration.
    public static func live(configuration: SignetConfiguration, logger: Logger) -> Dependencies {
        let metrics = SignetMetrics()
        var dependencies = Dependencies(
            pool: ConnectionPool(
                configuration: configuration.pool,
                connectionString: configuration.databaseURL,
                settings: postgresSettings(configuration),
                logger: logger
            ),
            logger: logger,
            policy: configuration.opa.map { opa in
                var client = OPAClient(url: opa.url, decisionPath: opa.decisionPath, timeout: opa.timeout)
                client.metrics = metrics
                let cache = opa.decisionCacheLifetime > .zero ? DecisionCache(lifetime: opa.decisionCacheLifetime) : nil
                return OPAPolicy(client: client, logger: logger, cache: cache)
            } ?? BuiltInPolicy()
        )
        dependencies.metrics = metrics
        return dependencies
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

/// Builds the whole service: migrates the schema, loads the server keys, wires the routes.
///
/// `main` and the tests call this same function, so what the tests run is what production runs.
public func buildApplication(configuration: SignetConfiguration, dependencies: Dependencies) async throws -> some ApplicationProtocol {
    let logger = dependencies.logger
    let databaseURL = configuration.databaseURL
    let settings = Dependencies.postgresSettings(configuration)
    let pool = dependencies.pool
    let secrets: any SecretStore
    let hmacKey: SymmetricKey
    let signingKeys: [SigningKey]
    /// A direct connection: the pool runs only once the application does.
    @discardableResult @Sendable func onStartupConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T)
        async throws -> T
    {
        try await NIOThreadPool.singleton.runIfActive {
            let connection = try PostgresConnection.connect(databaseURL, settings: settings)
            defer { connection.close() }
            return try body(connection)
        }
    }
    try await onStartupConnection { try Migrations.apply(on: $0, logger: logger) }
    if let vault = configuration.vault {
        // The secret material lives in Vault and nowhere else; PostgreSQL only gets the schema.
        var client = VaultClient(address: vault.address, token: vault.token, mount: vault.mount, timeout: vault.timeout)
        client.metrics = dependencies.metrics
        let store = VaultSecretStore(client: client, pool: pool, now: dependencies.now) {
            let found = try await onStartupConnection { connection in
                (
                    hmacKey: try ServerKeys.existing(ServerKeys.credentialHMACKeyName, on: connection),
                    signingKeys: try SigningKeyStore.exportable(on: connection)
                )
            }
            if found.hmacKey != nil || !found.signingKeys.isEmpty {
                logger.warning(
                    """
                    secret material found in PostgreSQL: it is copied to an empty Vault and not used from PostgreSQL; \
                    delete the server_keys and signing_keys rows once every instance runs with Vault
                    """)
            }
            return found
        }
        hmacKey = try await store.credentialHMACKey()
        signingKeys = try await store.ensureSigningKeys()
        secrets = store
        logger.info("secret material in Vault", metadata: ["vault": "\(vault.address)", "mount": "\(vault.mount)"])
    } else {
        (hmacKey, signingKeys) = try await onStartupConnection { connection in
            try SigningKeyStore.ensureCurrent(on: connection)
            return (
                try ServerKeys.loadOrCreate(ServerKeys.credentialHMACKeyName, on: connection),
                try SigningKeyStore.published(on: connection)
            )
        }
        secrets = PostgresSecretStore(pool: pool)
    }
    let hasher = CredentialHasher(key: hmacKey)
    let keyRing = KeyRing(store: secrets, logger: logger)
    try await keyRing.install(signingKeys)
    let now = dependencies.now
    let directory = ClientDirectory(
        pool: pool, hasher: hasher, ttl: configuration.credentialCacheTTL, fallbackTTL: dependencies.credentialCacheFallbackTTL,
        capacity: configuration.credentialCacheSize, listenerGrace: dependencies.changeListenerHeartbeat * 2, now: now,
        onLookup: dependencies.onClientLookup)
    let listener = ChangeListener(directory: directory, heartbeat: dependencies.changeListenerHeartbeat, logger: logger) {
        try PostgresConnection.connect(databaseURL, settings: settings)
    }
    // Listening before the first request, so the cache starts long-lived when PostgreSQL answers.
    if dependencies.listensForChanges { await listener.start() }
    let recorder = LastUsedRecorder(pool: pool, logger: logger, flushInterval: dependencies.lastUsedFlushInterval)
    let tokens = TokenService(
        keyRing: keyRing,
        directory: directory,
        policy: dependencies.policy,
        recorder: recorder,
        pool: pool,
        issuer: configuration.issuer,
        audience: configuration.tokenAudience,
        ttl: configuration.tokenTTL,
        now: now,
        metrics: dependencies.metrics
    )
    let credentials = CredentialRoutes(store: CredentialStore(pool: pool, hasher: hasher, now: now), directory: directory)

    let metrics = dependencies.metrics
    pool.observeAcquireWait { metrics.poolAcquired(after: $0) }
    let limiter = RateLimiter(configuration: configuration.rateLimit, logger: logger, metrics: metrics)
    let health = healthMonitor(configuration: configuration, pool: pool, limiter: limiter, directory: directory, logger: logger)
    let admin = AdminAuthenticator(adminToken: configuration.adminToken)
    let gate = dependencies.addressGate

    // In order: request id; the OAuth form read once; authentication (one principal, or none);
    // the limiter (keyed on it, or on the address); errors of the routes as JSON, so they carry
    // the limiter's headers. The form and authentication layers never throw: what fails there
    // is kept in the context and answered by the route once the limiter has counted it.
    let router = Router(context: SignetRequestContext.self)
    router.add(middleware: MetricsMiddleware(metrics: metrics))
    router.add(middleware: RequestIDMiddleware(instanceID: configuration.instanceID))
    router.add(middleware: RequestLimitsMiddleware())
    router.add(middleware: FormBodyMiddleware())
    let clientHolds = AddressGate()
    router.add(
        middleware: AuthMiddleware(
            admin: admin,
            clients: ClientCredentialsAuthenticator(directory: directory, now: now),
            trustedProxies: configuration.trustedProxies,
            gate: gate,
            clientHolds: clientHolds,
            operations: OperationsTokens(metrics: configuration.metricsToken, health: configuration.healthDetailedToken)
        ))
    if configuration.accessLog { router.add(middleware: AccessLogMiddleware()) }
    router.add(middleware: RateLimitMiddleware(limiter: limiter, admin: admin, gate: gate, clientHolds: clientHolds))
    let routeTable = RouteTable()
    router.add(middleware: ErrorMiddleware(routes: routeTable))
    let healthRoutes = HealthRoutes(
        monitor: health,
        detailedAccess: .publicListener(variable: "HEALTH_DETAILED_TOKEN", tokenConfigured: configuration.healthDetailedToken != nil),
        drain: dependencies.drain
    )
    healthRoutes.add(to: router.group("health"))
    let metricsRoutes = MetricsRoutes(metrics: metrics, pool: pool, limiter: limiter, health: health)
    metricsRoutes.add(to: router, access: .publicListener(variable: "METRICS_TOKEN", tokenConfigured: configuration.metricsToken != nil))
    OAuthRoutes(tokens: tokens, issuer: configuration.issuer).add(to: router)

    let adminAPI = router.group("v1").add(middleware: RequireAdmin())
    AgentRoutes(store: AgentStore(pool: pool, hasher: hasher), directory: directory).add(to: adminAPI.group("agents"))
    credentials.addAdminRoutes(to: adminAPI.group("agents/{id}/credentials"))
    KeyRoutes(store: secrets, keyRing: keyRing, tokenTTL: configuration.tokenTTL).add(to: adminAPI.group("keys"))
    AuditRoutes(pool: pool).add(to: adminAPI.group("audit"))
    router.get("/openapi.yaml") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }
    credentials.addRotateRoute(
        to: router.group("v1/agents/{id}/credentials/rotate").add(
            middleware: RequireAdminOrOwnClient(scope: Scopes.credentialsRotate, tokens: tokens))
    )

    let routes = router.routes.map { (method: $0.method.rawValue, path: $0.path.description) }
    routeTable.register(routes)
    dependencies.onRoutes?(routes)

    let connections = configuration.connections
    let perAddress = ConnectionsPerAddress(limit: connections.maxConnectionsPerAddress, trustedProxies: configuration.trustedProxies)
    return Application(
        router: router,
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [
                    ConnectionGuard(
                        perAddress: perAddress, maxPipelined: connections.maxPipelinedRequests,
                        writeTimeout: TimeAmount(connections.writeTimeout), metrics: metrics),
                    BodyDeadlineHandler(timeout: TimeAmount(connections.bodyTimeout)),
                ],
                idleTimeout: TimeAmount(connections.idleTimeout)
            )),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port),
            serverName: "signet",
            availableConnectionsDelegate: MaximumAvailableConnections(connections.maxConnections, logger: logger)
        ),
        services: [pool, keyRing, recorder, limiter, Housekeeping(pool: pool, logger: logger, now: now)]
            + (dependencies.listensForChanges ? [listener] : [])
            + [
                operationsApplication(configuration: configuration, health: healthRoutes, metrics: metricsRoutes, logger: logger)
            ],
        logger: logger
    )
}

/// The operations listener (`OPS_HOST`:`OPS_PORT`, loopback by default): `/health/*` and
/// `/metrics` without tokens, for the scraper and the balancer's checks; nothing else. It has no
/// limiter and no authentication: it must not be reachable from where the public listener is.
func operationsApplication(
    configuration: SignetConfiguration, health: HealthRoutes, metrics: MetricsRoutes, logger: Logger
) -> some ApplicationProtocol {
    let router = Router(context: SignetRequestContext.self)
    router.add(middleware: RequestIDMiddleware(instanceID: configuration.instanceID))
    // The same routes (one readiness memory: a change is logged once), open here.
    var health = health
    health.detailedAccess = .operationsListener
    health.add(to: router.group("health"))
    metrics.add(to: router, access: .operationsListener)
    return Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: TimeAmount(configuration.connections.idleTimeout))),
        configuration: .init(
            address: .hostname(configuration.operationsHost, port: configuration.operationsPort), serverName: "signet-ops",
            availableConnectionsDelegate: MaximumAvailableConnections(configuration.connections.maxConnections, logger: logger)),
        logger: logger
    )
}

/// The checks of `/health/detailed` and `/health/ready`: a pooled `SELECT 1`; `PING` on a Redis
/// connection of its own (unless `REDIS_RATE_LIMIT_ENABLED=false`); Vault's `sys/health` and
/// OPA's `/health` when they are configured.
func healthMonitor(
    configuration: SignetConfiguration, pool: ConnectionPool, limiter: RateLimiter, directory: ClientDirectory, logger: Logger
) -> HealthMonitor {
    let database: HealthMonitor.Check = { timeout in
        do {
            try await pool.withConnection(timeout: timeout) { connection in _ = try connection.query("SELECT 1") }
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
    var redis: HealthMonitor.Check?
    if let endpoint = configuration.rateLimit.redis {
        let pinger = RedisPinger(endpoint: endpoint)
        redis = { timeout in
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
    let vault = configuration.vault.map { settings -> HealthMonitor.Check in
        let client = VaultClient(address: settings.address, token: settings.token, mount: settings.mount, timeout: settings.timeout)
        return { timeout in try await client.health(timeout: timeout) }
    }
    let opa = configuration.opa.map { settings -> HealthMonitor.Check in
        let client = OPAClient(url: settings.url, decisionPath: settings.decisionPath, timeout: settings.timeout)
        return { timeout in try await client.health(timeout: timeout) }
    }
    return HealthMonitor(
        database: database,
        redis: redis,
        vault: vault,
        opa: opa,
        credentialCache: { HealthRules.credentialCache(directory.status()) },
        timeout: configuration.healthCheckTimeout,
        degradedAfter: configuration.healthDegradedLatency,
        logger: logger
    )
}
