import Logging
import Synchronization

/// The limiter's Redis Cluster client: each decision goes to the master of its key's slot, through
/// one pipeline per master (`RedisPipeliner`, as for a single server). The slot map comes from
/// `CLUSTER SLOTS` (the rules are `SlotMap`'s and `RedisCluster`'s); this shell keeps it, the
/// pipelines and the redirections:
/// - no map, or no master for a slot: the map is read (from the masters known, then the seeds);
/// - `MOVED`: the map is read again and the decision sent once more, to the node `MOVED` named
///   if the new map names it a master (else it fails: the breaker decides);
/// - `ASK` (a slot migrating): the decision is sent once to the node named, behind `ASKING`, on a
///   connection of its own, `askLimit` at once at most;
/// - every map read drops the pipelines of nodes that serve no slot, failing what they queued;
/// - the breaker's probe reads the map again and needs every master to answer `PING`, so after a
///   master's failover (its replica promoted) decisions return to Redis on the new map.
///
/// Reading the map asks nodes one after another, on a thread of its own, within three times
/// `REDIS_TIMEOUT_MS` in all; concurrent reads share one. The breaker is the cluster's: while one
/// master is unreachable every decision is made in memory, until the map names a master for
/// each slot again.
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
    /// Map reads, on threads of their own: a backlog of redirections never delays them.
    private let mapThreads = OnDemandThreadPool(numberOfThreads: 1)
    /// `ASK` redirections, each on a connection of its own, `askLimit` at once at most; past it a
    /// decision fails at once (the breaker decides in memory) rather than queue.
    private let askThreads = OnDemandThreadPool(numberOfThreads: 2)
    private let asksInFlight = Mutex(0)
    static let askLimit = 16
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

    /// One decision: one call through the pipeline of its slot's master, bounded as any
    /// pipelined call. Past that (no map yet, a redirection) the rest is bounded by four times
    /// `REDIS_TIMEOUT_MS` in all (a `MOVED` costs a map read and a second call); past it the
    /// breaker decides.
    func decide(_ subject: RateLimitSubject) async throws -> RateLimitDecision {
        let slot = RedisCluster.slot(of: key(subject))
        guard let master = state.withLock({ $0.map?.master(of: slot) }) else {
            return try await bounded { try await self.follow(nil, subject, slot: slot) }
        }
        do {
            return try await pipeliner(master).submit(subject)
        } catch RedisError.redirected(let redirect) {
            return try await bounded { try await self.follow(redirect, subject, slot: slot) }
        }
    }

    private func bounded(_ work: @escaping @Sendable () async throws -> RateLimitDecision) async throws -> RateLimitDecision {
        switch await withDeadline(timeout * 4, work) {
        case .success(let decision): return decision
        case .failure(let error): throw error
        case .timedOut: throw RedisError.io("no decision from the cluster within \(timeout * 4)")
        }
    }

    /// The slow path: no map yet (read it, then send to the slot's master), or a redirection.
    private func follow(_ redirect: RedisRedirect?, _ subject: RateLimitSubject, slot: Int) async throws -> RateLimitDecision {
        switch redirect {
        case nil:
            try await readMap()
            guard let master = state.withLock({ $0.map?.master(of: slot) }) else {
                throw RedisError.clusterDown("no master serves slot \(slot)")
            }
            return try await pipeliner(master).submit(subject)
        case .moved(_, let address):
            // Once more, and only to a master of the map read again: a node never makes the
            // limiter connect (and log in) where the cluster's own map does not lead.
            try? await readMap()
            guard state.withLock({ $0.map?.masters.contains(address) ?? false }) else {
                throw RedisError.clusterDown("MOVED named \(address), which the slot map read again does not name as a master")
            }
            return try await pipeliner(address).submit(subject)
        case .ask(_, let address):
            // A one-off connection (the importing node may serve no slot yet, so it may be in no
            // map), bounded in number.
            let admitted = asksInFlight.withLock { count -> Bool in
                guard count < Self.askLimit else { return false }
                count += 1
                return true
            }
            guard admitted else { throw RedisError.io("more than \(Self.askLimit) ASK redirections at once") }
            defer { asksInFlight.withLock { $0 -= 1 } }
            let endpoint = nodes.endpoint(of: address)
            let timeout = timeout
            let asking = asking
            return try await askThreads.running.runIfActive {
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
        let map = try await mapThreads.running.runIfActive { try Self.fetch(from: asked, nodes: nodes, timeout: timeout) }
        let (changed, dropped) = state.withLock { state -> (Bool, [Pipeliner]) in
            let changed = state.map.map { $0 != map } ?? false
            if changed { state.changes += 1 }
            state.map = map
            // Pipelines to nodes that serve no slot (a failed master, an address a MOVED named)
            // are dropped on every read; their threads end with them.
            let masters = Set(map.masters)
            let dropped = state.pipeliners.filter { !masters.contains($0.key) }.map(\.value)
            state.pipeliners = state.pipeliners.filter { masters.contains($0.key) }
            return (changed, dropped)
        }
        // Decisions still queued for a dropped node fail now (decided in memory), not after its timeout.
        for pipeliner in dropped { pipeliner.failPending(RedisError.clusterDown("the node left the slot map")) }
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
                // Each node within what is left of the read's bound (at least 100 ms).
                let left = max(.milliseconds(100), min(timeout, deadline - ContinuousClock.now))
                let connection = try RedisConnection.connect(nodes.endpoint(of: candidate), timeout: left)
                let reply = try connection.command([Array("CLUSTER".utf8), Array("SLOTS".utf8)])
                guard let map = SlotMap(clusterSlots: reply), !map.masters.isEmpty else {
                    failures.append("\(candidate): CLUSTER SLOTS answered \(String(describing: reply).prefix(200))")
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
