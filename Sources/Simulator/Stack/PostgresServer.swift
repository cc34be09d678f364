import Foundation
import Service

/// A throwaway PostgreSQL cluster on a loopback port, in a fresh folder, run in the foreground
/// (as the `postgres` user when the Simulator runs as root). Stopping it removes the folder.
public final class PostgresServer: Sendable {
    public let port: Int
    public let directory: URL
    let process: ManagedProcess

    /// The superuser connection URL.
    public var url: String { url(database: "postgres") }

    public func url(database: String, applicationName: String? = nil) -> String {
        var text = "postgresql://postgres@127.0.0.1:\(port)/\(database)"
        if let applicationName { text += "?application_name=\(applicationName)" }
        return text
    }

    private init(port: Int, directory: URL, process: ManagedProcess) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// The PostgreSQL binaries: `PG_BIN`, else Debian's PostgreSQL 15.
    static var binaries: String {
        ProcessInfo.processInfo.environment["PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
    }

    public static func start(port requested: Int? = nil) async throws -> PostgresServer {
        let bin = binaries
        guard FileManager.default.isExecutableFile(atPath: "\(bin)/postgres") else {
            throw SimulatorError.missingTool("\(bin)/postgres (apt-get install postgresql, or set PG_BIN)")
        }
        let port = try requested ?? freePort()
        let directory = try makeDirectory()
        let data = directory.appendingPathComponent("data").path
        let initdb = try await runToEnd(
            asPostgres(["\(bin)/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        )
        guard initdb.status == 0 else {
            try? FileManager.default.removeItem(at: directory)
            throw SimulatorError.processExited("initdb", status: initdb.status, output: initdb.output)
        }
        let process = try ManagedProcess(
            name: "postgres:\(port)",
            executable: "/usr/bin/env",
            arguments: asPostgres([
                "\(bin)/postgres", "-D", data, "-p", String(port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=\(directory.path)",
                "-c", "max_connections=400", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ]),
            stopSignal: SIGINT,
            removeOnExit: directory
        )
        let server = PostgresServer(port: port, directory: directory, process: process)
        let url = server.url
        do {
            try await waitUntil("PostgreSQL on port \(port) accepts connections", timeout: .seconds(30)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("postgres", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await blocking { (try? PostgresConnection.connect(url, settings: [])) != nil }
            }
        } catch {
            await server.stop()
            if !process.isRunning {
                throw SimulatorError.processExited("postgres", status: process.exitStatus ?? -1, output: process.output)
            }
            throw error
        }
        return server
    }

    /// Runs one statement as the superuser.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = [], database: String = "postgres") async throws -> [Record] {
        let url = url(database: database)
        return try await blocking {
            let connection = try PostgresConnection.connect(url, settings: [])
            defer { connection.close() }
            return try connection.query(sql, parameters).records
        }
    }

    /// A new, empty database; returns its name.
    public func createDatabase(prefix: String = "signet") async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        try await query("CREATE DATABASE \(name)")
        return name
    }

    /// Connections PostgreSQL sees under `applicationName`.
    public func connectionCount(applicationName: String, waitingOnLock: Bool = false) async throws -> Int {
        let rows = try await query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1"
                + (waitingOnLock ? " AND wait_event_type = 'Lock'" : ""),
            [applicationName]
        )
        return Int(rows.first?["n"] ?? "") ?? -1
    }

    /// Stops the server; its folder is removed.
    public func stop() async {
        await process.stop()
    }

    // MARK: Helpers

    static var isRoot: Bool { geteuid() == 0 }

    /// The command, run as `postgres` when we are root (PostgreSQL refuses to run as root).
    static func asPostgres(_ command: [String]) -> [String] {
        isRoot ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + command : command
    }

    static func makeDirectory() throws -> URL {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if isRoot, let user = getpwnam("postgres") {
            chown(directory.path, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        return directory
    }

    /// Runs a short command to its end and returns its status and output.
    static func runToEnd(_ command: [String]) async throws -> (status: Int32, output: [String]) {
        let process = try ManagedProcess(name: command.first ?? "command", executable: "/usr/bin/env", arguments: command)
        try await waitUntil("\(command.joined(separator: " ")) finishes", timeout: .seconds(120)) { process.hasFinished }
        ProcessRegistry.shared.remove(process)
        return (process.exitStatus ?? -1, process.output)
    }
}
