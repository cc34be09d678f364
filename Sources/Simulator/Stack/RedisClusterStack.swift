import Foundation
import Service
import Spec

/// A throwaway Redis Cluster on loopback: `masterCount` masters, each with one replica, the slots
/// split evenly between the masters in order. Built with `CLUSTER MEET`, `CLUSTER ADDSLOTSRANGE`
/// and `CLUSTER REPLICATE` (not `redis-cli --cluster create`, which pairs replicas as it likes), so
/// `replicas[i]` is the replica of `masters[i]`. A node that misses for `nodeTimeout` is failed,
/// and its replica promoted soon after.
public final class RedisClusterStack: Sendable {
    public let masters: [RedisServer]
    public let replicas: [RedisServer]
    public let nodeTimeout: Duration

    /// Every node, masters first.
    public var nodes: [RedisServer] { masters + replicas }
    /// `REDIS_CLUSTER_NODES` naming every master.
    public var seeds: String { masters.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    private init(masters: [RedisServer], replicas: [RedisServer], nodeTimeout: Duration) {
        self.masters = masters
        self.replicas = replicas
        self.nodeTimeout = nodeTimeout
    }

    public static func start(masterCount: Int = 3, nodeTimeout: Duration = .seconds(1)) async throws -> RedisClusterStack {
        let timeout = String(nodeTimeout.milliseconds)
        var started: [RedisServer] = []
        var busPorts: [Int] = []
        do {
            for _ in 0..<(masterCount * 2) {
                let busPort = try freePort()
                busPorts.append(busPort)
                // nodes.conf goes in the server's own --dir; the bus port is chosen (its default, the
                // port + 10000, is past 65535 for much of the ephemeral range).
                started.append(
                    try await RedisServer.start(arguments: [
                        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", timeout,
                        "--cluster-port", String(busPort),
                        // A replica takes over however long it was cut off: the test kills masters, not links.
                        "--cluster-replica-validity-factor", "0",
                    ]))
            }
            let stack = RedisClusterStack(
                masters: Array(started[..<masterCount]), replicas: Array(started[masterCount...]), nodeTimeout: nodeTimeout)
            try await stack.form(busPort: busPorts[0])
            return stack
        } catch {
            for server in started { await server.stop() }
            throw error
        }
    }

    /// `busPort`: the first node's cluster bus port, which the others meet it on.
    private func form(busPort: Int) async throws {
        let first = nodes[0]
        for node in nodes.dropFirst() {
            try expectOK(await node.command(["CLUSTER", "MEET", "127.0.0.1", String(first.port), String(busPort)]), "CLUSTER MEET")
        }
        let count = masters.count
        for (index, master) in masters.enumerated() {
            let low = RedisCluster.slotCount * index / count
            let high = RedisCluster.slotCount * (index + 1) / count - 1
            try await expectOK(master.command(["CLUSTER", "ADDSLOTSRANGE", String(low), String(high)]), "CLUSTER ADDSLOTSRANGE")
        }
        try await waitUntil("every node of the cluster knows the \(nodes.count) others", timeout: .seconds(20)) {
            for node in self.nodes {
                let known = try await node.text(["CLUSTER", "NODES"]).split(whereSeparator: \.isNewline)
                if known.count != self.nodes.count || known.contains(where: { $0.contains("handshake") }) { return false }
            }
            return true
        }
        for (master, replica) in zip(masters, replicas) {
            let id = try await master.text(["CLUSTER", "MYID"])
            try await expectOK(replica.command(["CLUSTER", "REPLICATE", id]), "CLUSTER REPLICATE")
        }
        try await waitUntil("every replica is in sync and every node says cluster_state:ok", timeout: .seconds(30)) {
            for replica in self.replicas where !(try await replica.text(["INFO", "replication"]).contains("master_link_status:up")) {
                return false
            }
            for node in self.nodes where try await Self.state(of: node) != "ok" { return false }
            return true
        }
    }

    /// `cluster_state` from the node's `CLUSTER INFO`: `ok` or `fail`.
    public static func state(of node: RedisServer) async throws -> String? {
        try await node.text(["CLUSTER", "INFO"]).split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("cluster_state:") }.map { String($0.dropFirst("cluster_state:".count)) }
    }

    /// The masters serving slots, as `host:port`, as `node` sees them (`CLUSTER SLOTS`).
    public static func masters(seenBy node: RedisServer) async throws -> Set<String> {
        guard case .array(let ranges) = try await node.command(["CLUSTER", "SLOTS"]) else { return [] }
        var masters: Set<String> = []
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 3, case .array(let master) = fields[2], master.count >= 2,
                case .string(let host) = master[0], case .integer(let port) = master[1]
            else { continue }
            masters.insert("\(String(decoding: host, as: UTF8.self)):\(port)")
        }
        return masters
    }

    /// The keys `node` holds under `prefix` (`SCAN`, so a big node is not blocked).
    public static func keys(on node: RedisServer, prefix: String) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            guard case .array(let reply) = try await node.command(["SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"]),
                reply.count == 2, case .string(let next) = reply[0], case .array(let batch) = reply[1]
            else { throw SimulatorError.setupFailed("SCAN answered unexpectedly") }
            cursor = String(decoding: next, as: UTF8.self)
            for case .string(let key) in batch { keys.append(String(decoding: key, as: UTF8.self)) }
        } while cursor != "0"
        return keys
    }

    public func stop() async {
        for node in nodes { await node.stop() }
    }

    private func expectOK(_ reply: RedisReply, _ command: String) throws {
        guard case .status("OK") = reply else { throw SimulatorError.setupFailed("\(command) answered \(reply)") }
    }
}
