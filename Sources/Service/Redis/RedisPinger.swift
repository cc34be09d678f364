import NIOPosix
import Synchronization

/// `PING` on a connection of its own, never the limiter's pipeline, for the health check: a
/// limiter queue backed up behind a slow Redis does not hide or delay the answer. The connection
/// is kept between checks and replaced when it breaks; each call is bounded by its timeout
/// (hiredis socket timeouts) and runs on a small thread pool of its own.
final class RedisPinger: Sendable {
    /// Its own locator (the health check's timeout, not the limiter's), sharing nothing with
    /// the limiter's but the topology: behind Sentinel it pings whichever master the sentinels name.
    let locator: RedisLocator
    private let idle = Mutex<RedisLocator.Connection?>(nil)
    private let threads = OnDemandThreadPool(numberOfThreads: 2)

    init(locator: RedisLocator) {
        self.locator = locator
    }

    /// `PING` within the locator's timeout (finding the master behind Sentinel within its bound);
    /// for a cluster, `CLUSTER INFO` from the first node that answers, which must say
    /// `cluster_state:ok` (every slot served).
    func ping() async throws {
        let locator = locator
        try await threads.running.runIfActive {
            let kept = self.idle.withLock { kept -> RedisLocator.Connection? in
                defer { kept = nil }
                return kept
            }
            let made = try kept.flatMap { locator.isCurrent($0.generation) ? $0 : nil } ?? locator.connect()
            do {
                if case .cluster = locator.topology {
                    try Self.clusterState(made.connection)
                } else {
                    try made.connection.ping()
                }
            } catch {
                locator.failed(made.generation)
                throw error
            }
            if made.connection.isUsable { self.idle.withLock { if $0 == nil { $0 = made } } }
        }
    }

    /// Throws unless the node says `cluster_state:ok`.
    private static func clusterState(_ connection: RedisConnection) throws(RedisError) {
        let reply = try connection.command([Array("CLUSTER".utf8), Array("INFO".utf8)])
        guard case .string(let bytes) = reply else { throw .protocolError("CLUSTER INFO answered \(reply)") }
        let state = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("cluster_state:") }?.dropFirst("cluster_state:".count)
        guard let state, state == "ok" else {
            throw .clusterDown("the cluster's state is \(state.map { String($0) } ?? "not given") (a slot has no master)")
        }
    }
}
