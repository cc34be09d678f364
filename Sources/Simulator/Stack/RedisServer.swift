import Foundation
import Service

/// A throwaway Redis on a loopback port, without persistence, run in the foreground.
public final class RedisServer: Sendable {
    public let port: Int
    let process: ManagedProcess

    public var url: String { "redis://127.0.0.1:\(port)" }

    private init(port: Int, process: ManagedProcess) {
        self.port = port
        self.process = process
    }

    /// Starts a server; `replicaOf`: as that server's replica; `arguments`: more of
    /// `redis-server`'s options (`--cluster-enabled yes`, ...).
    public static func start(
        port requested: Int? = nil, replicaOf master: RedisServer? = nil, arguments extra: [String] = []
    ) async throws -> RedisServer {
        let executable = try executable()
        let port = try requested ?? freePort()
        // A folder of its own: a replica writes the master's snapshot to disk as it syncs.
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-redis-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = [
            "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", directory.path,
        ]
        if let master { arguments += ["--replicaof", "127.0.0.1", String(master.port)] }
        arguments += extra
        let process = try ManagedProcess(name: "redis:\(port)", executable: executable, arguments: arguments, removeOnExit: directory)
        let server = RedisServer(port: port, process: process)
        do {
            try await waitUntil("Redis on port \(port) answers PING", timeout: .seconds(15)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("redis-server", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await server.ping()
            }
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    static func executable() throws -> String {
        let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let executable else { throw SimulatorError.missingTool("redis-server (apt-get install redis-server)") }
        return executable
    }

    /// One command, on a connection of its own.
    public func command(_ arguments: [String]) async throws -> RedisReply {
        let endpoint = RedisEndpoint(host: "127.0.0.1", port: port)
        return try await blocking {
            try RedisConnection.connect(endpoint, timeout: .seconds(2)).command(arguments.map { Array($0.utf8) })
        }
    }

    /// The text of a command that answers a bulk string (`INFO`, `CLUSTER INFO`, `CLUSTER MYID`).
    public func text(_ arguments: [String]) async throws -> String {
        let reply = try await command(arguments)
        guard case .string(let bytes) = reply else {
            throw SimulatorError.setupFailed("\(arguments.joined(separator: " ")) answered \(reply)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `ROLE`'s first element: `master` or `slave`.
    public func role() async throws -> String? {
        guard case .array(let parts) = try await command(["ROLE"]), case .string(let role) = parts.first else { return nil }
        return String(decoding: role, as: UTF8.self)
    }

    /// The server crashes as its machine would: `SIGKILL`, no goodbye to clients or replicas.
    public func crash() {
        process.signal(SIGKILL)
    }

    /// Freezes it (`SIGSTOP`): connections are accepted by the kernel, nothing is answered.
    public func freeze() {
        process.signal(SIGSTOP)
    }

    /// Lets a frozen server go on (`SIGCONT`).
    public func thaw() {
        process.signal(SIGCONT)
    }

    /// True when Redis answers `PING` with `PONG`.
    public func ping() async throws -> Bool {
        let port = port
        return try await blocking {
            tcpExchange(port: port, request: Data("PING\r\n".utf8)).map { String(decoding: $0, as: UTF8.self).hasPrefix("+PONG") } ?? false
        }
    }

    public func stop() async {
        await process.stop()
        // A crashed server had already exited, so stopping it removed nothing.
        try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "/signet-sim-redis-\(port)")
    }
}
