import Foundation
import Service

/// A Redis Sentinel on a loopback port (`redis-server <config> --sentinel`: Debian's
/// `redis-sentinel` is the same binary), watching one master under `masterName`. Its
/// configuration file, which Sentinel rewrites as it learns, lives in a folder removed when it
/// stops.
public final class RedisSentinel: Sendable {
    public let port: Int
    public let masterName: String
    let process: ManagedProcess
    private let directory: URL

    public var address: String { "127.0.0.1:\(port)" }

    private init(port: Int, masterName: String, process: ManagedProcess, directory: URL) {
        self.port = port
        self.masterName = masterName
        self.process = process
        self.directory = directory
    }

    /// Starts a sentinel watching `master`: it is judged down after `downAfter` without an
    /// answer, by a quorum of `quorum` sentinels.
    public static func start(
        monitoring master: RedisServer, masterName: String, quorum: Int = 2, downAfter: Duration = .seconds(1),
        failoverTimeout: Duration = .seconds(5)
    ) async throws -> RedisSentinel {
        let port = try freePort()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-sentinel-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let configuration = directory.appendingPathComponent("sentinel.conf")
        try """
        port \(port)
        bind 127.0.0.1
        daemonize no
        dir \(directory.path)
        sentinel monitor \(masterName) 127.0.0.1 \(master.port) \(quorum)
        sentinel down-after-milliseconds \(masterName) \(downAfter.milliseconds)
        sentinel failover-timeout \(masterName) \(failoverTimeout.milliseconds)
        sentinel parallel-syncs \(masterName) 1

        """.write(to: configuration, atomically: true, encoding: .utf8)
        let process = try ManagedProcess(
            name: "sentinel:\(port)", executable: try RedisServer.executable(), arguments: [configuration.path, "--sentinel"],
            removeOnExit: directory)
        let sentinel = RedisSentinel(port: port, masterName: masterName, process: process, directory: directory)
        do {
            try await waitUntil("the sentinel on port \(port) names the master", timeout: .seconds(15)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("redis-server --sentinel", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await sentinel.master() != nil
            }
        } catch {
            await sentinel.stop()
            throw error
        }
        return sentinel
    }

    /// `SENTINEL get-master-addr-by-name`: the master it names now.
    public func master() async throws -> RedisAddress? {
        let reply = try await command(["SENTINEL", "get-master-addr-by-name", masterName])
        guard case .array(let parts) = reply, parts.count == 2, case .string(let host) = parts[0], case .string(let port) = parts[1],
            let number = Int(String(decoding: port, as: UTF8.self))
        else { return nil }
        return RedisAddress(host: String(decoding: host, as: UTF8.self), port: number)
    }

    /// How many replicas and other sentinels it knows of this master, in a healthy state: a
    /// failover needs both.
    public func known() async throws -> (replicas: Int, sentinels: Int) {
        func healthy(_ reply: RedisReply) -> Int {
            guard case .array(let entries) = reply else { return 0 }
            return entries.filter { entry in
                guard case .array(let fields) = entry else { return false }
                let strings = fields.map { if case .string(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { "" } }
                guard let flags = strings.firstIndex(of: "flags").map({ strings[$0 + 1] }) else { return false }
                return !flags.contains("down") && !flags.contains("disconnected")
            }.count
        }
        return (
            healthy(try await command(["SENTINEL", "replicas", masterName])),
            healthy(try await command(["SENTINEL", "sentinels", masterName]))
        )
    }

    public func command(_ arguments: [String]) async throws -> RedisReply {
        let endpoint = RedisEndpoint(host: "127.0.0.1", port: port)
        return try await blocking {
            try RedisConnection.connect(endpoint, timeout: .seconds(2)).command(arguments.map { Array($0.utf8) })
        }
    }

    /// Its log lines containing `text` (`+switch-master`, `+odown`).
    public func logLines(containing text: String) -> [String] { process.lines(containing: text) }

    public func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
