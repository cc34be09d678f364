import Foundation

/// Real PostgreSQL and Redis servers on loopback ports, shared by every scenario of a run.
/// Scenarios do not see each other: each one gets its own database and key prefix.
public final class LocalStack: Sendable {
    public let postgres: PostgresServer
    public let redis: RedisServer

    private init(postgres: PostgresServer, redis: RedisServer) {
        self.postgres = postgres
        self.redis = redis
    }

    /// Starts both servers (in parallel) and installs the exit clean-up.
    ///
    /// - Parameter postgresSettings: PostgreSQL settings over its fast, throwaway defaults.
    public static func start(postgresSettings: [String: String] = [:]) async throws -> LocalStack {
        ExitCleanup.install()
        async let postgres = PostgresServer.start(settings: postgresSettings)
        async let redis = RedisServer.start()
        do {
            return LocalStack(postgres: try await postgres, redis: try await redis)
        } catch {
            // One of them may have started: stop it rather than leave it behind.
            if let started = try? await postgres { await started.stop() }
            if let started = try? await redis { await started.stop() }
            throw error
        }
    }

    public func stop() async {
        await redis.stop()
        await postgres.stop()
    }
}

extension LocalStack {
    /// The variables every instance on this stack needs (its database on this PostgreSQL, this
    /// Redis, the admin token), with `extra` on top: the one place an instance's environment is
    /// put together (scenarios, `stack up`, the stack's own tests).
    public func instanceEnvironment(
        database: String, applicationName: String? = nil, adminToken: String, _ extra: [String: String] = [:]
    ) -> [String: String] {
        var variables = [
            "DATABASE_URL": postgres.url(database: database, applicationName: applicationName),
            "REDIS_URL": redis.url,
            "SIGNET_ADMIN_TOKEN": adminToken,
        ]
        variables.merge(extra) { _, new in new }
        return variables
    }
}
