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

    /// The settings every cluster runs with: fast and throwaway (no fsync; a crash of the process,
    /// not of the machine, loses nothing). `start(settings:)` overrides any of them.
    static let defaultSettings: [String: String] = [
        "listen_addresses": "127.0.0.1", "max_connections": "400", "fsync": "off", "synchronous_commit": "off",
        "full_page_writes": "off",
    ]

    public static func start(port requested: Int? = nil, settings: [String: String] = [:]) async throws -> PostgresServer {
        let bin = try checkedBinaries()
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
        return try await launch(port: port, directory: directory, settings: settings)
    }

    /// A hot standby of `primary`, streaming from it as `name` (list it in the primary's
    /// `synchronous_standby_names` to make it synchronous): a base backup (`pg_basebackup`, WAL
    /// streamed), `standby.signal`, and `primary_conninfo` naming the primary's port.
    public static func startStandby(of primary: PostgresServer, name: String, settings: [String: String] = [:]) async throws
        -> PostgresServer
    {
        let bin = try checkedBinaries()
        let port = try freePort()
        let directory = try makeDirectory()
        let data = directory.appendingPathComponent("data")
        let backup = try await runToEnd(
            asPostgres([
                "\(bin)/pg_basebackup", "-D", data.path, "-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres",
                "-X", "stream", "--no-sync",
            ]))
        guard backup.status == 0 else {
            try? FileManager.default.removeItem(at: directory)
            throw SimulatorError.processExited("pg_basebackup", status: backup.status, output: backup.output)
        }
        let conninfo = "host=127.0.0.1 port=\(primary.port) user=postgres application_name=\(name)"
        try Data().write(to: data.appendingPathComponent("standby.signal"))
        let auto = data.appendingPathComponent("postgresql.auto.conf")
        let existing = (try? String(contentsOf: auto, encoding: .utf8)) ?? ""
        try Data((existing + "primary_conninfo = '\(conninfo)'\n").utf8).write(to: auto)
        if isRoot, let user = getpwnam("postgres") {
            for file in ["standby.signal", "postgresql.auto.conf"] {
                chown(data.appendingPathComponent(file).path, user.pointee.pw_uid, user.pointee.pw_gid)
            }
        }
        return try await launch(port: port, directory: directory, settings: settings)
    }

    /// Runs `postgres` on the cluster in `directory/data` and waits until it accepts connections.
    private static func launch(port: Int, directory: URL, settings: [String: String]) async throws -> PostgresServer {
        let bin = binaries
        let data = directory.appendingPathComponent("data").path
        var arguments = ["\(bin)/postgres", "-D", data, "-p", String(port), "-c", "unix_socket_directories=\(directory.path)"]
        for (name, value) in defaultSettings.merging(settings, uniquingKeysWith: { _, new in new }).sorted(by: { $0.key < $1.key }) {
            arguments += ["-c", "\(name)=\(value)"]
        }
        let process = try ManagedProcess(
            name: "postgres:\(port)",
            executable: "/usr/bin/env",
            arguments: asPostgres(arguments),
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

    private static func checkedBinaries() throws -> String {
        let bin = binaries
        guard FileManager.default.isExecutableFile(atPath: "\(bin)/postgres") else {
            throw SimulatorError.missingTool("\(bin)/postgres (apt-get install postgresql, or set PG_BIN)")
        }
        return bin
    }

    /// Promotes a standby to primary (`pg_ctl promote`, waiting until it accepts writes).
    public func promote() async throws {
        let data = directory.appendingPathComponent("data").path
        let promoted = try await Self.runToEnd(Self.asPostgres(["\(Self.binaries)/pg_ctl", "promote", "-w", "-t", "30", "-D", data]))
        guard promoted.status == 0 else {
            throw SimulatorError.processExited("pg_ctl promote", status: promoted.status, output: promoted.output)
        }
    }

    /// The server crashes as its machine would: `SIGKILL` to the postmaster and every process it
    /// started, at once (no shutdown, no goodbye to clients or standbys).
    public func crash() {
        let postmaster = process.pid
        let children = Self.children(of: postmaster)
        process.signal(SIGKILL)
        for child in children { kill(child, SIGKILL) }
    }

    /// A restart as the crash of one backend causes it: `SIGKILL` to a client backend, and the
    /// postmaster ends every session, recovers, and accepts connections again on the same port with
    /// the data kept (about a second). Returns once a session of its own has been ended by it and a
    /// new one connects.
    public func restartAfterBackendCrash() async throws {
        let url = url
        let watcher = try await blocking { try PostgresConnection.connect(url, settings: []) }
        defer { watcher.close() }
        let own = try await blocking { try watcher.query("SELECT pg_backend_pid() AS pid").records.first?["pid"] }
        let backends = try await query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> $1",
            [own ?? "0"])
        guard let victim = backends.compactMap({ $0["pid"].flatMap(Int32.init) }).first ?? own.flatMap(Int32.init) else {
            throw SimulatorError.setupFailed("no PostgreSQL backend to crash")
        }
        kill(victim, SIGKILL)
        try await waitUntil("PostgreSQL on port \(port) ends its sessions after the crash", timeout: .seconds(30)) {
            try await blocking { (try? watcher.query("SELECT 1")) == nil }
        }
        try await waitUntil("PostgreSQL on port \(port) accepts connections after the crash", timeout: .seconds(30)) {
            try await blocking { (try? PostgresConnection.connect(url, settings: []))?.close() != nil }
        }
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
        // A crashed server's process had already exited, so stopping it removed nothing.
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Helpers

    /// The processes whose parent is `parent` (from `/proc/<pid>/stat`).
    static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // After the command's closing parenthesis: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent ? pid : nil
        }
    }

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
