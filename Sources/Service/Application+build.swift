import Hummingbird
import Logging
import NIOPosix

/// What the service talks to, made once per process. Tests build their own to reach into the
/// pool (to hold leases, read statistics) while running the same application.
public struct Dependencies: Sendable {
    public var pool: ConnectionPool
    public var logger: Logger

    public init(pool: ConnectionPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
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

/// Builds the whole service: migrates the schema, loads the server keys, wires the routes.
///
/// `main` and the tests call this same function, so what the tests run is what production runs.
public func buildApplication(configuration: SignetConfiguration, dependencies: Dependencies) async throws -> some ApplicationProtocol {
    let logger = dependencies.logger
    let databaseURL = configuration.databaseURL
    let settings = Dependencies.postgresSettings(configuration)
    let hmacKey = try await NIOThreadPool.singleton.runIfActive {
        let connection = try PostgresConnection.connect(databaseURL, settings: settings)
        try Migrations.apply(on: connection, logger: logger)
        return try ServerKeys.loadOrCreate(ServerKeys.credentialHMACKeyName, on: connection)
    }
    let store = AgentStore(pool: dependencies.pool, hasher: CredentialHasher(key: hmacKey))

    let router = Router(context: SignetRequestContext.self)
    router.add(middleware: RequestIDMiddleware(instanceID: configuration.instanceID))
    router.add(middleware: ErrorMiddleware())
    HealthRoutes(pool: dependencies.pool, timeout: configuration.healthCheckTimeout).add(to: router.group("health"))
    let admin = router.group("v1").add(middleware: AdminAuthMiddleware(adminToken: configuration.adminToken))
    AgentRoutes(store: store).add(to: admin.group("agents"))

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "signet"),
        services: [dependencies.pool],
        logger: logger
    )
}
