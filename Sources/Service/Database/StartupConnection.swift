import NIOPosix

/// A direct PostgreSQL connection for start-up work (migrations, the secret material): the pool
/// serves only once the application runs. Each use opens a connection, runs `body` on the
/// blocking thread pool and closes it.
struct StartupConnection: Sendable {
    let databaseURL: String
    let settings: [(String, String)]
    let session: [(String, String)]

    /// A new connection, set up as the pool's are.
    func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(databaseURL, settings: settings, session: session)
    }

    @discardableResult
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        return try await NIOThreadPool.singleton.runIfActive {
            let connection = try self.connect()
            defer { connection.close() }
            return try body(connection)
        }
    }
}
