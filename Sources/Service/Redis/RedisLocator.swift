import Foundation
import Logging
import Synchronization

/// Where the limiter's and the health check's Redis connections go. A single server
/// (`REDIS_URL`) is always the same endpoint. Behind Sentinel the master is whatever the
/// sentinels name, confirmed with `ROLE` on every new connection; the rules of what is known
/// are `SentinelState`'s, this shell does the I/O (blocking hiredis calls, on the caller's
/// thread, never an event loop):
/// - `connect()` connects to the known master, or asks the sentinels (the one that answered last
///   first) when none is known;
/// - `failed(_:)`, called when a call on a connection fails (refused, timed out, `READONLY`),
///   forgets that master, so the next connection asks again;
/// - `watchSwitches(while:)` subscribes to a sentinel's `+switch-master` and moves to the new
///   master the moment one is announced.
///
/// Asking the sentinels costs at most three `REDIS_TIMEOUT_MS` of sentinels not answering, then
/// the master's connect and `ROLE`, each bounded by it too.
final class RedisLocator: Sendable {
    /// A connection, and the master generation it was made for (always 0 for a single server).
    struct Connection: Sendable {
        let connection: RedisConnection
        let generation: UInt64
    }

    let topology: RedisTopology
    let timeout: Duration
    private let state: Mutex<SentinelState>
    private let logger: Logger

    init(topology: RedisTopology, timeout: Duration, logger: Logger) {
        self.topology = topology
        self.timeout = timeout
        self.logger = logger
        switch topology {
        case .server: state = Mutex(SentinelState(masterName: "", sentinelCount: 0))
        case .cluster(let nodes): state = Mutex(SentinelState(masterName: "", sentinelCount: nodes.seeds.count))
        case .sentinel(let sentinels):
            state = Mutex(SentinelState(masterName: sentinels.masterName, sentinelCount: sentinels.sentinels.count))
        }
    }

    /// The master in use behind Sentinel (the last confirmed one while none is), and how many
    /// times it changed since start; nil for a single server.
    var master: (address: RedisAddress?, switches: Int)? {
        guard case .sentinel = topology else { return nil }
        return state.withLock { ($0.master ?? $0.lastMaster, $0.switches) }
    }

    /// A new connection to the server, to the master behind Sentinel, or to the first node of a
    /// cluster that answers (the one that answered last first).
    func connect() throws(RedisError) -> Connection {
        switch topology {
        case .server(let endpoint):
            return Connection(connection: try RedisConnection.connect(endpoint, timeout: timeout), generation: 0)
        case .cluster(let nodes):
            // Bounded as a discovery behind Sentinel: three nodes' worth of timeout in all.
            let deadline = ContinuousClock.now + timeout * 3
            var failures: [String] = []
            for index in state.withLock({ $0.askingOrder }) {
                guard ContinuousClock.now < deadline else { break }
                do {
                    let left = max(.milliseconds(100), min(timeout, deadline - ContinuousClock.now))
                    let connection = try RedisConnection.connect(nodes.endpoint(of: nodes.seeds[index]), timeout: left)
                    state.withLock { $0.answered(by: index) }
                    return Connection(connection: connection, generation: 0)
                } catch {
                    failures.append("\(nodes.seeds[index]): \(error)")
                }
            }
            throw .connectionFailed("no node of REDIS_CLUSTER_NODES answered (\(failures.joined(separator: "; ")))")
        case .sentinel(let sentinels):
            let known = state.withLock { state in state.master.map { ($0, state.generation) } }
            guard let (address, generation) = known else { return try discover(sentinels) }
            do {
                return Connection(connection: try connectToMaster(address, of: sentinels), generation: generation)
            } catch {
                failed(generation)
                throw error
            }
        }
    }

    /// A call on a connection of `generation` failed: behind Sentinel, its master is forgotten
    /// (unless it changed since), so the next connection asks the sentinels.
    func failed(_ generation: UInt64) {
        guard case .sentinel = topology else { return }
        state.withLock { $0.failed(generation: generation) }
    }

    /// Whether a connection of `generation` may be used again (false once the master changed).
    func isCurrent(_ generation: UInt64) -> Bool {
        guard case .sentinel = topology else { return true }
        return state.withLock { $0.isCurrent(generation) }
    }

    /// Behind Sentinel: subscribes to `+switch-master` on one sentinel after another and follows
    /// each switch of this master at once; returns soon after `shouldGoOn` turns false (each wait
    /// for a message is bounded by `pollInterval`, after which it subscribes again). Blocking: run
    /// on a thread of its own. Returns at once for a single server.
    func watchSwitches(pollInterval: Duration = .seconds(2), while shouldGoOn: () -> Bool) {
        guard case .sentinel(let sentinels) = topology else { return }
        var turn = 0
        while shouldGoOn() {
            let index = state.withLock { $0.askingOrder[turn % sentinels.sentinels.count] }
            turn += 1
            do {
                let connection = try RedisConnection.connect(sentinels.endpoint(ofSentinel: sentinels.sentinels[index]), timeout: timeout)
                _ = try connection.command([Array("SUBSCRIBE".utf8), Array("+switch-master".utf8)])
                connection.setTimeout(pollInterval)
                turn -= 1  // this sentinel answers: subscribe to it again after the poll
                while shouldGoOn() {
                    guard case .array(let parts) = try connection.nextPushed(), parts.count == 3,
                        case .string(let payload) = parts[2],
                        let message = SwitchMaster(payload: String(decoding: payload, as: UTF8.self))
                    else { continue }
                    let previous = state.withLock { $0.master ?? $0.lastMaster }
                    if state.withLock({ $0.switched(message) }), previous != message.new {
                        logger.warning(
                            LogLine.redisMasterSwitched,
                            metadata: ["master": "\(message.new)", "previous": "\(message.old)", "via": "+switch-master"])
                    }
                }
            } catch {
                // A poll with no message ends in a read timeout (the connection is then unusable):
                // subscribe again. A sentinel that does not answer: the next one, after a pause.
                if case .connectionFailed = error { Thread.sleep(forTimeInterval: 0.2) }
            }
        }
    }

    private func discover(_ sentinels: RedisSentinels) throws(RedisError) -> Connection {
        let deadline = ContinuousClock.now + timeout * 3
        var failures: [String] = []
        for index in state.withLock({ $0.askingOrder }) {
            guard ContinuousClock.now < deadline else { break }
            let sentinel = sentinels.sentinels[index]
            do {
                let address = try askSentinel(sentinel, of: sentinels)
                let connection = try connectToMaster(address, of: sentinels)
                let (previous, confirmed) = state.withLock { state in
                    (state.lastMaster, state.confirmed(address, bySentinel: index))
                }
                if confirmed.changed {
                    logger.warning(
                        LogLine.redisMasterSwitched, metadata: ["master": "\(address)", "previous": "\(previous.map { "\($0)" } ?? "")"])
                } else if previous == nil {
                    logger.info(LogLine.redisMasterFound, metadata: ["master": "\(address)", "sentinel": "\(sentinel)"])
                }
                return Connection(connection: connection, generation: confirmed.generation)
            } catch {
                failures.append("\(sentinel): \(error)")
            }
        }
        throw .connectionFailed("no sentinel named a reachable master \"\(sentinels.masterName)\" (\(failures.joined(separator: "; ")))")
    }

    /// `SENTINEL get-master-addr-by-name`.
    private func askSentinel(_ sentinel: RedisAddress, of sentinels: RedisSentinels) throws(RedisError) -> RedisAddress {
        let connection = try RedisConnection.connect(sentinels.endpoint(ofSentinel: sentinel), timeout: timeout)
        let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", sentinels.masterName].map { Array($0.utf8) })
        guard case .array(let parts) = reply, parts.count == 2, case .string(let host) = parts[0], case .string(let port) = parts[1],
            let number = Int(String(decoding: port, as: UTF8.self))
        else {
            throw .protocolError("the sentinel does not know master \"\(sentinels.masterName)\" (\(reply))")
        }
        return RedisAddress(host: String(decoding: host, as: UTF8.self), port: number)
    }

    /// A connection to `address`, confirmed a master by `ROLE` (a demoted master or a stale
    /// answer is refused, never used).
    private func connectToMaster(_ address: RedisAddress, of sentinels: RedisSentinels) throws(RedisError) -> RedisConnection {
        let connection = try RedisConnection.connect(sentinels.endpoint(of: address), timeout: timeout)
        let reply = try connection.command([Array("ROLE".utf8)])
        guard case .array(let parts) = reply, case .string(let role) = parts.first else {
            throw .protocolError("ROLE answered \(reply)")
        }
        let name = String(decoding: role, as: UTF8.self)
        guard name == "master" else { throw .readOnly("\(address) is a \(name), not the master") }
        return connection
    }
}
