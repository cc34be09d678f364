import Foundation
import Service

/// A PgBouncer on a loopback port in front of a PostgreSQL of the Simulator, in the pool mode
/// asked for, letting in `postgres` without a password (`auth_type = trust`, as the
/// Simulator's PostgreSQL does). Run as `postgres` when the Simulator is root: PgBouncer refuses
/// to run as root. Its configuration lives in a folder removed when it stops.
public final class PgBouncer: Sendable {
    public enum Mode: String, Sendable {
        case session, transaction, statement
    }

    public let port: Int
    public let mode: Mode
    let process: ManagedProcess
    private let directory: URL

    private init(port: Int, mode: Mode, process: ManagedProcess, directory: URL) {
        self.port = port
        self.mode = mode
        self.process = process
        self.directory = directory
    }

    /// A connection URI through PgBouncer to `database` of the server behind it.
    public func url(database: String, applicationName: String? = nil) -> String {
        var text = "postgresql://postgres@127.0.0.1:\(port)/\(database)"
        if let applicationName { text += "?application_name=\(applicationName)" }
        return text
    }

    /// Starts PgBouncer in front of `postgres`, every database name passed through, at most
    /// `serverConnections` server connections per database.
    public static func start(before postgres: PostgresServer, mode: Mode, serverConnections: Int = 40) async throws -> PgBouncer {
        let executable = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let executable else { throw SimulatorError.missingTool("pgbouncer (apt-get install pgbouncer)") }
        let port = try freePort()
        let directory = try PostgresServer.makeDirectory()
        let configuration = directory.appendingPathComponent("pgbouncer.ini")
        let users = directory.appendingPathComponent("users.txt")
        try "\"postgres\" \"\"\n".write(to: users, atomically: true, encoding: .utf8)
        try """
        [databases]
        * = host=127.0.0.1 port=\(postgres.port)

        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = \(port)
        unix_socket_dir =
        auth_type = trust
        auth_file = \(users.path)
        admin_users = postgres
        pool_mode = \(mode.rawValue)
        max_client_conn = 1000
        default_pool_size = \(serverConnections)
        server_connect_timeout = 5

        """.write(to: configuration, atomically: true, encoding: .utf8)
        if PostgresServer.isRoot, let user = getpwnam("postgres") {
            for file in [configuration, users] { chown(file.path, user.pointee.pw_uid, user.pointee.pw_gid) }
        }
        let process = try ManagedProcess(
            name: "pgbouncer:\(port)", executable: "/usr/bin/env",
            arguments: PostgresServer.asPostgres([executable, configuration.path]), removeOnExit: directory)
        let bouncer = PgBouncer(port: port, mode: mode, process: process, directory: directory)
        let probe = bouncer.url(database: "postgres")
        do {
            try await waitUntil("PgBouncer on port \(port) lets a client through", timeout: .seconds(15)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("pgbouncer", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await blocking {
                    let connection = try PostgresConnection.connect(probe, settings: [("connect_timeout", "2")])
                    defer { connection.close() }
                    try connection.ping()
                    return true
                }
            }
        } catch {
            await bouncer.stop()
            throw error
        }
        return bouncer
    }

    public func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
