import Logging
import Synchronization

/// The limiter's Redis Cluster client: each decision goes to the master of its key's slot, through
/// one pipeline per master (`RedisPipeliner`, as for a single server). The slot map comes from
/// `CLUSTER SLOTS` (the rules are `SlotMap`'s and `RedisCluster`'s); this shell keeps it, the
/// pipelines and the redirections:
/// - no map, or no master for a slot: the map is read (from the masters known, then the seeds);
/// - `MOVED`: the map is read again and the decision sent once more, to the node `MOVED` named;
/// - `ASK` (a slot migrating): the decision is sent once to the node named, behind `ASKING`;
/// - the breaker's probe reads the map again and needs every master to answer `PING`, so after a
///   master's failover (its replica promoted) decisions return to Redis on the new map.
///
/// Reading the map asks nodes one after another, each bounded by `REDIS_TIMEOUT_MS`, three of
/// them at most when none answers; concurrent reads share one.
final class ClusterRouter: Sendable {
    typealias Pipeliner = RedisPipeliner<RateLimitSubject, RateLimitDecision>

    private struct State {
        var map: SlotMap?
        var pipeliners: [RedisAddress: Pipeliner] = [:]
        var reading: Task<Void, any Error>?
        /// Maps read that differed from the one before (the first is not counted).
        var changes = 0
    }

    let nodes: RedisClusterNodes
    let timeout: Duration
    private let key: @Sendable (RateLimitSubject) -> [UInt8]
    private let makePipeliner: @Sendable (RedisAddress) -> Pipeliner
    private let asking: @Sendable (RateLimitSubject, RedisConnection) throws -> RateLimitDecision
    private let state = Mutex(State())
    private let threads = OnDemandThreadPool(numberOfThreads: 2)
    private let logger: Logger

    init(
        nodes: RedisClusterNodes, timeout: Duration, logger: Logger, key: @escaping @Sendable (RateLimitSubject) -> [UInt8],
        pipeliner: @escaping @Sendable (RedisAddress) -> Pipeliner,
        asking: @escaping @Sendable (RateLimitSubject, RedisConnection) throws -> RateLimitDecision
    ) {
        self.nodes = nodes
        self.timeout = timeout
        self.logger = logger
        self.key = key
        makePipeliner = pipeliner
        self.asking = asking
    }

    /// The masters of the current map, and how many times the map changed since start.
    var status: (masters: [RedisAddress], changes: Int) {
        state.withLock { ($0.map?.masters ?? [], $0.changes) }
    }

    func decide(_ subject: RateLimitSubject) async throws -> RateLimitDecision {
        let slot = RedisCluster.slot(of: key(subject))
        let master = try await master(of: slot)
        do {
            return try await pipeliner(master).submit(subject)
        } catch RedisError.redirected(.moved(_, let address)) {
            try? await readMap()
            return try await pipeliner(address).submit(subject)
        } catch RedisError.redirected(.ask(_, let address)) {
            let endpoint = nodes.endpoint(of: address)
            let timeout = timeout
            let asking = asking
            return try await threads.running.runIfActive {
                try asking(subject, try RedisConnection.connect(endpoint, timeout: timeout))
            }
        }
    }

    /// Fails every queued decision of every master now (the breaker opened).
    func failPending(_ error: any Error) {
        for pipeliner in state.withLock({ Array($0.pipeliners.values) }) { pipeliner.failPending(error) }
    }

    /// The breaker's probe: a fresh map that serves every slot, and `PING` answered by each master.
    func probe() async throws {
        try await readMap()
        guard let map = state.withLock({ $0.map }), map.coversEverySlot else {
            throw RedisError.clusterDown("the slot map leaves a slot without a master")
        }
        for master in map.masters { try await pipeliner(master).probe() }
    }

    private func master(of slot: Int) async throws -> RedisAddress {
        if let master = state.withLock({ $0.map?.master(of: slot) }) { return master }
        try await readMap()
        guard let master = state.withLock({ $0.map?.master(of: slot) }) else {
            throw RedisError.clusterDown("no master serves slot \(slot)")
        }
        return master
    }

    private func pipeliner(_ address: RedisAddress) -> Pipeliner {
        state.withLock { state in
            if let pipeliner = state.pipeliners[address] { return pipeliner }
            let pipeliner = makePipeliner(address)
            state.pipeliners[address] = pipeliner
            return pipeliner
        }
    }

    /// Reads the slot map, or waits for the read already under way.
    func readMap() async throws {
        let reading = state.withLock { state -> Task<Void, any Error> in
            if let reading = state.reading { return reading }
            let reading = Task { try await self.fetchAndApply() }
            state.reading = reading
            return reading
        }
        try await reading.value
    }

    private func fetchAndApply() async throws {
        defer { state.withLock { $0.reading = nil } }
        let known = state.withLock { $0.map?.masters ?? [] }
        var candidates = known
        for seed in nodes.seeds where !candidates.contains(seed) { candidates.append(seed) }
        let nodes = nodes
        let timeout = timeout
        let asked = candidates
        let map = try await threads.running.runIfActive { try Self.fetch(from: asked, nodes: nodes, timeout: timeout) }
        let changed = state.withLock { state -> Bool in
            defer { state.map = map }
            guard let before = state.map, before != map else { return false }
            state.changes += 1
            // Pipelines to nodes that serve no slot any more are dropped (their threads end with them).
            let masters = Set(map.masters)
            state.pipeliners = state.pipeliners.filter { masters.contains($0.key) }
            return true
        }
        if changed {
            logger.warning(
                LogLine.redisClusterMapChanged, metadata: ["masters": "\(map.masters.map(\.description).joined(separator: ","))"])
        }
    }

    /// `CLUSTER SLOTS` from the first candidate whose map serves every slot; else the first map
    /// any answered. Gives up after three candidates' worth of `timeout` without an answer.
    private static func fetch(from candidates: [RedisAddress], nodes: RedisClusterNodes, timeout: Duration) throws -> SlotMap {
        let deadline = ContinuousClock.now + timeout * 3
        var partial: SlotMap?
        var failures: [String] = []
        for candidate in candidates {
            guard ContinuousClock.now < deadline || partial == nil && failures.isEmpty else { break }
            do {
                let connection = try RedisConnection.connect(nodes.endpoint(of: candidate), timeout: timeout)
                let reply = try connection.command([Array("CLUSTER".utf8), Array("SLOTS".utf8)])
                guard let map = SlotMap(clusterSlots: reply), !map.masters.isEmpty else {
                    failures.append("\(candidate): CLUSTER SLOTS answered \(reply)")
                    continue
                }
                if map.coversEverySlot { return map }
                partial = partial ?? map
            } catch {
                failures.append("\(candidate): \(error)")
            }
        }
        if let partial { return partial }
        throw RedisError.connectionFailed("no node of the cluster gave its slot map (\(failures.joined(separator: "; ")))")
    }
}
