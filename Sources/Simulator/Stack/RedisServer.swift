import Foundation

/// A throwaway Redis on a loopback port, without persistence, run in the foreground.
public final class RedisServer: Sendable {
    public let port: Int
    let process: ManagedProcess

    public var url: String { "redis://127.0.0.1:\(port)" }

    private init(port: Int, process: ManagedProcess) {
        self.port = port
        self.process = process
    }

    public static func start(port requested: Int? = nil) async throws -> RedisServer {
        let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let executable else { throw SimulatorError.missingTool("redis-server (apt-get install redis-server)") }
        let port = try requested ?? freePort()
        let process = try ManagedProcess(
            name: "redis:\(port)",
            executable: executable,
            arguments: ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--daemonize", "no"]
        )
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

    /// True when Redis answers `PING` with `PONG`.
    public func ping() async throws -> Bool {
        let port = port
        return try await blocking {
            tcpExchange(port: port, request: Data("PING\r\n".utf8)).map { String(decoding: $0, as: UTF8.self).hasPrefix("+PONG") } ?? false
        }
    }

    public func stop() async {
        await process.stop()
    }
}
