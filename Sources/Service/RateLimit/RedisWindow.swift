import Crypto
import Foundation
import Logging
import NIOPosix
import Synchronization

/// The sliding window in Redis: one Lua script per decision over a sorted set `<prefix>rl:{<key>}`
/// (the subject's fixed-size key)
/// (the hash tag keeps a subject on one Redis Cluster slot), time from Redis `TIME`, so every
/// instance shares one clock and one count.
///
/// Decisions go through the Redis client layer: `RedisPipeliner` queues them and sends what
/// queued up during a round trip as the next pipeline (one worker and connection in the steady
/// state), `RedisScript` runs the script with `NOSCRIPT` recovery. This type keeps only the
/// limiting: the script, the keys, grouping a batch by subject, and reading the decisions.
/// Every call is bounded by the connection timeout (`REDIS_TIMEOUT_MS`).
final class RedisWindow: Sendable {
    /// Decides n requests of one subject at one instant, in order: trim entries older than the
    /// window, count, add a unique member for each request while below the limit (rejected
    /// requests are not counted), expire the key with the window. ARGV: window, limit, n, and a
    /// prefix unique to this call (member i is the prefix followed by i). Returns {how many of
    /// the n were allowed (the first ones), the count before them, milliseconds until the oldest
    /// leaves}. With n = 1 this is the classic one-decision script; n > 1 is the same as n calls
    /// at the same Redis `TIME`.
    static let script = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
        local before = redis.call('ZCARD', KEYS[1])
        local allowed = math.max(0, math.min(tonumber(ARGV[3]), limit - before))
        if allowed > 0 then
          local entries = {}
          local score = tostring(now)
          for i = 1, allowed do
            entries[2 * i - 1] = score
            entries[2 * i] = ARGV[4] .. i
          end
          redis.call('ZADD', KEYS[1], unpack(entries))
        end
        redis.call('PEXPIRE', KEYS[1], window)
        local reset = 0
        local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        if oldest[2] then reset = tonumber(oldest[2]) + window - now end
        return {allowed, before, reset}
        """
    static let windowScript = RedisScript(script)

    typealias Pipeliner = RedisPipeliner<RateLimitSubject, RateLimitDecision>

    /// One pipeline to the server or the master behind Sentinel; one per master of a cluster.
    private enum Route: Sendable {
        case direct(Pipeliner)
        case cluster(ClusterRouter)
    }

    private let route: Route
    /// The most decisions one pipeline carries.
    static let batchLimit = 512

    init(topology: RedisTopology, configuration: RateLimitConfiguration, logger: Logger, maxWorkers: Int = 2) {
        let calls = Calls(configuration: configuration)
        if case .cluster(let nodes) = topology {
            route = .cluster(
                ClusterRouter(
                    nodes: nodes, timeout: configuration.redisTimeout, logger: logger, key: calls.key
                ) { address in
                    Pipeliner(
                        locator: RedisLocator(
                            topology: .server(nodes.endpoint(of: address)), timeout: configuration.redisTimeout, logger: logger),
                        maxWorkers: maxWorkers, batchLimit: Self.batchLimit
                    ) { batch, connection in
                        try calls.evaluate(batch, on: connection)
                    }
                } asking: { subject, connection in
                    try calls.evaluate([subject], on: connection, asking: true)[0].get()
                })
        } else {
            let locator = RedisLocator(topology: topology, timeout: configuration.redisTimeout, logger: logger)
            route = .direct(
                Pipeliner(locator: locator, maxWorkers: maxWorkers, batchLimit: Self.batchLimit) { batch, connection in
                    try calls.evaluate(batch, on: connection)
                })
        }
    }

    /// Where decisions go for a single server or behind Sentinel; nil for a cluster.
    var locator: RedisLocator? {
        if case .direct(let pipeliner) = route { pipeliner.locator } else { nil }
    }

    /// The cluster's router; nil otherwise.
    var cluster: ClusterRouter? {
        if case .cluster(let router) = route { router } else { nil }
    }

    /// Decides for `subject` in Redis; throws when Redis does not answer in time.
    func decide(_ subject: RateLimitSubject) async throws -> RateLimitDecision {
        switch route {
        case .direct(let pipeliner): try await pipeliner.submit(subject)
        case .cluster(let router): try await router.decide(subject)
        }
    }

    /// Fails every queued decision now (the breaker opened): they are decided in memory.
    func failPending(_ error: any Error) {
        switch route {
        case .direct(let pipeliner): pipeliner.failPending(error)
        case .cluster(let router): router.failPending(error)
        }
    }

    /// The breaker's probe: a fresh connection and `PING`, off the workers; for a cluster, a
    /// fresh slot map and every master answering.
    func probe() async throws {
        switch route {
        case .direct(let pipeliner): try await pipeliner.probe()
        case .cluster(let router): try await router.probe()
        }
    }

    /// Behind Sentinel: follows `+switch-master` on a thread of its own until stopped (it ends
    /// within the watch's poll interval). Nothing for a single server or a cluster.
    func watchSwitches() -> SwitchWatch {
        let watch = SwitchWatch()
        guard let locator, case .sentinel = locator.topology else { return watch }
        let thread = Thread { locator.watchSwitches { !watch.isStopped } }
        thread.name = "signet-sentinel-watch"
        thread.start()
        return watch
    }

    /// Stops a `watchSwitches` thread.
    final class SwitchWatch: Sendable {
        private let stopped = Atomic(false)
        var isStopped: Bool { stopped.load(ordering: .relaxed) }
        func stop() { stopped.store(true, ordering: .relaxed) }
    }
}

/// Building the script calls of a batch and reading their replies: the limiter's side of a
/// pipeline, run on a worker thread.
private final class Calls: Sendable {
    let keyStart: [UInt8]
    let windowArguments: RateLimitSubject.PerKind<[UInt8]>
    let budgets: RateLimitSubject.PerKind<Int>
    let limitArguments: RateLimitSubject.PerKind<[UInt8]>
    /// This process's random prefix of the members it adds, so no two calls share a member.
    let memberPrefix = Array(Encoding.base64URL(Encoding.randomBytes(6)).utf8) + [UInt8(ascii: ":")]
    let sequence = Atomic<UInt64>(0)

    init(configuration: RateLimitConfiguration) {
        keyStart = Array("\(configuration.keyPrefix)rl:{".utf8)
        let windows = configuration.windows
        windowArguments = RateLimitSubject.PerKind { Array(String(windows[$0]).utf8) }
        let budgets = configuration.budgets
        self.budgets = budgets
        limitArguments = RateLimitSubject.PerKind { Array(String(budgets[$0]).utf8) }
    }
    /// One pipeline of EVALSHA, one per subject in the batch (requests of the same subject are
    /// decided by one call, in arrival order); on NOSCRIPT (after a restart or `SCRIPT FLUSH`) the
    /// script is loaded and those calls are sent once more.
    /// `asking`: each call preceded by `ASKING` (a cluster's slot being migrated to this node).
    func evaluate(
        _ batch: [RateLimitSubject], on connection: RedisConnection, asking: Bool = false
    ) throws -> [Result<RateLimitDecision, any Error>] {
        var groups: [[Int]] = []
        var groupOfSubject: [RateLimitSubject: Int] = [:]
        for (index, subject) in batch.enumerated() {
            if let group = groupOfSubject[subject] {
                groups[group].append(index)
            } else {
                groupOfSubject[subject] = groups.count
                groups.append([index])
            }
        }
        let commands = groups.map { evalsha(subject: batch[$0[0]], requests: $0.count) }
        let replies = try RedisWindow.windowScript.run(commands, on: connection, asking: asking)
        var results = [Result<RateLimitDecision, any Error>](repeating: .failure(RedisError.protocolError("no reply")), count: batch.count)
        for (group, reply) in zip(groups, replies) {
            let limit = budgets[batch[group[0]].kind]
            for (position, decision) in decisions(reply, requests: group.count, limit: limit).enumerated() {
                results[group[position]] = decision
            }
        }
        return results
    }

    /// EVALSHA for `requests` requests of one subject; the members it adds are unique to this
    /// call (this process's random prefix and a call number).
    /// `<prefix>rl:{<subject key>}`: the braces are the cluster hash tag, so a subject's key has one
    /// slot (`REDIS_KEY_PREFIX` holds no brace with a cluster).
    func key(_ subject: RateLimitSubject) -> [UInt8] {
        var key = keyStart
        key.append(contentsOf: subject.key.utf8)
        key.append(UInt8(ascii: "}"))
        return key
    }

    private func evalsha(subject: RateLimitSubject, requests: Int) -> [[UInt8]] {
        let key = key(subject)
        let call = sequence.wrappingAdd(1, ordering: .relaxed).newValue
        let members = memberPrefix + String(call).utf8 + [UInt8(ascii: ":")]
        return RedisWindow.windowScript.call(
            keys: [key],
            arguments: [windowArguments[subject.kind], limitArguments[subject.kind], Array(String(requests).utf8), members])
    }

    /// The decisions of `requests` requests of one subject from one script reply: the first
    /// `allowed` are allowed, each seeing the count its own request makes.
    private func decisions(_ reply: RedisReply, requests: Int, limit: Int) -> [Result<RateLimitDecision, any Error>] {
        if case .error(let message) = reply, let redirect = RedisRedirect(error: message) {
            return Array(repeating: .failure(RedisError.redirected(redirect)), count: requests)
        }
        guard case .array(let values) = reply, values.count == 3, case .integer(let allowed) = values[0],
            case .integer(let before) = values[1], case .integer(let reset) = values[2]
        else {
            return Array(repeating: .failure(RedisError.protocolError("rate-limit script answered \(reply)")), count: requests)
        }
        return (0..<requests).map { position in
            let isAllowed = position < Int(allowed)
            let counted = Int(before) + min(position + 1, Int(allowed))
            return .success(
                RateLimitDecision(allowed: isAllowed, limit: limit, remaining: max(0, limit - counted), resetMilliseconds: reset)
            )
        }
    }
}
