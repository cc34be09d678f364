import Crypto
import Foundation
import NIOPosix
import Synchronization

/// The sliding window in Redis: one Lua script per decision over a sorted set `<prefix>rl:{subject}`
/// (the hash tag keeps a subject on one Redis Cluster slot), time from Redis `TIME`, so every
/// instance shares one clock and one count.
///
/// Decisions are queued; a worker thread sends everything queued as one pipeline, and what
/// queues up during that round trip as the next: under load one round trip decides many
/// requests. One worker (one connection) is the steady state; a second starts only when a full
/// pipeline per busy worker is waiting. Every call is bounded by the connection timeout
/// (`REDIS_TIMEOUT_MS`).
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
    static let scriptSHA = Encoding.hex(Insecure.SHA1.hash(data: Data(script.utf8)))

    private struct Pending {
        let subject: String
        /// Resumed exactly once: by the worker that sends it, or by `failPending`, each of which
        /// first removes it from the queue under the lock.
        let continuation: UnsafeContinuation<RateLimitDecision, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var busyWorkers = 0
        /// Whether the first worker's thread is sending; it is kept for the first worker, so the
        /// steady state runs on one warm thread.
        var firstBusy = false
        var idle: [RedisConnection] = []
    }

    let endpoint: RedisEndpoint
    let timeout: Duration
    let limit: Int
    /// At most this many connections (and worker threads) send pipelines at once.
    private let maxWorkers: Int
    /// The first worker's thread.
    private let firstThread: NIOThreadPool
    /// Further workers' threads, and the breaker's probe.
    private let threadPool: NIOThreadPool
    private let state = Mutex(State())
    private let sequence = Atomic<UInt64>(0)
    private let memberPrefix = Array(Encoding.base64URL(Encoding.randomBytes(6)).utf8) + [UInt8(ascii: ":")]
    private let keyStart: [UInt8]
    private let evalshaStart = [Array("EVALSHA".utf8), Array(scriptSHA.utf8), Array("1".utf8)]
    private let windowArgument: [UInt8]
    private let limitArgument: [UInt8]
    /// The most decisions one pipeline carries.
    static let batchLimit = 512

    init(endpoint: RedisEndpoint, configuration: RateLimitConfiguration, maxWorkers: Int = 2) {
        self.endpoint = endpoint
        timeout = configuration.redisTimeout
        limit = configuration.maxRequests
        self.maxWorkers = maxWorkers
        keyStart = Array("\(configuration.keyPrefix)rl:{".utf8)
        windowArgument = Array(String(configuration.windowMilliseconds).utf8)
        limitArgument = Array(String(configuration.maxRequests).utf8)
        // The first worker has a thread of its own; the pool holds the others and the probe's.
        firstThread = NIOThreadPool(numberOfThreads: 1)
        firstThread.start()
        threadPool = NIOThreadPool(numberOfThreads: maxWorkers)
        threadPool.start()
    }

    deinit {
        firstThread.shutdownGracefully { _ in }
        threadPool.shutdownGracefully { _ in }
    }

    /// Decides for `subject` in Redis; throws when Redis does not answer in time.
    func decide(_ subject: String) async throws -> RateLimitDecision {
        return try await withUnsafeThrowingContinuation { continuation in
            let start: (worker: Bool, onFirstThread: Bool) = state.withLock { state in
                state.pending.append(Pending(subject: subject, continuation: continuation))
                guard Self.startsWorker(busy: state.busyWorkers, queued: state.pending.count, maxWorkers: maxWorkers) else {
                    return (false, false)
                }
                state.busyWorkers += 1
                let onFirstThread = !state.firstBusy
                state.firstBusy = true
                return (true, onFirstThread)
            }
            if start.worker {
                (start.onFirstThread ? firstThread : threadPool).submit { _ in self.drain(onFirstThread: start.onFirstThread) }
            }
        }
    }

    /// Whether a decision just queued starts another worker. One connection pipelines everything
    /// queued while its round trip is under way (bigger batches cost Redis and this process less
    /// per decision than two connections sending half-size ones); another starts only when the
    /// queue holds more than a full pipeline per busy worker.
    static func startsWorker(busy: Int, queued: Int, maxWorkers: Int) -> Bool {
        busy == 0 || (busy < maxWorkers && queued > busy * batchLimit)
    }

    /// Fails every queued decision now (the breaker opened): they are decided in memory.
    func failPending(_ error: any Error) {
        let pending = state.withLock { state in
            let pending = state.pending
            state.pending.removeAll()
            return pending
        }
        for item in pending { item.continuation.resume(throwing: error) }
    }

    /// A fresh connection and `PING`, off the workers: the breaker's probe.
    func probe() async throws {
        let endpoint = endpoint
        let timeout = timeout
        try await threadPool.runIfActive {
            let connection = try RedisConnection.connect(endpoint, timeout: timeout)
            guard case .status("PONG") = try connection.command([Array("PING".utf8)]) else {
                throw RedisError.protocolError("PING did not answer PONG")
            }
        }
    }

    // MARK: Workers

    /// Runs on a pool thread: sends what is queued, in batches, until the queue is empty.
    private func drain(onFirstThread: Bool) {
        var connection = state.withLock { $0.idle.popLast() }
        while true {
            let batch: [Pending] = state.withLock { state in
                let batch = Array(state.pending.prefix(Self.batchLimit))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty {
                    state.busyWorkers -= 1
                    if onFirstThread { state.firstBusy = false }
                    if let connection, connection.isUsable { state.idle.append(connection) }
                }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                if connection?.isUsable != true { connection = try RedisConnection.connect(endpoint, timeout: timeout) }
                let decisions = try evaluate(batch, on: connection!)
                for (item, decision) in zip(batch, decisions) { item.continuation.resume(with: decision) }
            } catch {
                connection = nil
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
    }

    /// One pipeline of EVALSHA, one per subject in the batch (requests of the same subject are
    /// decided by one call, in arrival order); on NOSCRIPT (after a restart or `SCRIPT FLUSH`) the
    /// script is loaded and those calls are sent once more.
    private func evaluate(_ batch: [Pending], on connection: RedisConnection) throws -> [Result<RateLimitDecision, any Error>] {
        var groups: [[Int]] = []
        var groupOfSubject: [String: Int] = [:]
        for (index, item) in batch.enumerated() {
            if let group = groupOfSubject[item.subject] {
                groups[group].append(index)
            } else {
                groupOfSubject[item.subject] = groups.count
                groups.append([index])
            }
        }
        let commands = groups.map { evalsha(subject: batch[$0[0]].subject, requests: $0.count) }
        var replies = try connection.pipeline(commands)
        let missing = replies.indices.filter { if case .error(let message) = replies[$0] { message.hasPrefix("NOSCRIPT") } else { false } }
        if !missing.isEmpty {
            let retried = try connection.pipeline(
                [[Array("SCRIPT".utf8), Array("LOAD".utf8), Array(Self.script.utf8)]] + missing.map { commands[$0] })
            if case .error(let message) = retried[0] { throw RedisError.protocolError("SCRIPT LOAD failed: \(message)") }
            for (index, reply) in zip(missing, retried.dropFirst()) { replies[index] = reply }
        }
        var results = [Result<RateLimitDecision, any Error>](repeating: .failure(RedisError.protocolError("no reply")), count: batch.count)
        for (group, reply) in zip(groups, replies) {
            for (position, decision) in decisions(reply, requests: group.count).enumerated() { results[group[position]] = decision }
        }
        return results
    }

    /// EVALSHA for `requests` requests of one subject; the members it adds are unique to this
    /// call (this process's random prefix and a call number).
    private func evalsha(subject: String, requests: Int) -> [[UInt8]] {
        var key = keyStart
        key.append(contentsOf: subject.utf8)
        key.append(UInt8(ascii: "}"))
        let call = sequence.wrappingAdd(1, ordering: .relaxed).newValue
        let members = memberPrefix + String(call).utf8 + [UInt8(ascii: ":")]
        return evalshaStart + [key, windowArgument, limitArgument, Array(String(requests).utf8), members]
    }

    /// The decisions of `requests` requests of one subject from one script reply: the first
    /// `allowed` are allowed, each seeing the count its own request makes.
    private func decisions(_ reply: RedisReply, requests: Int) -> [Result<RateLimitDecision, any Error>] {
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
