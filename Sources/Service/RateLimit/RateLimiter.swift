import Logging
import ServiceLifecycle
import SignetJOSE
import SignetResourceServer
import Spec
import Synchronization

/// Decides whether a subject may make another request: in Redis, shared by every instance,
/// when `REDIS_RATE_LIMIT_ENABLED` (the default); in memory, per instance, when it is false
/// (no Redis connection is ever attempted then) and while Redis is failing.
///
/// One failed Redis call opens the circuit breaker: that decision and every queued one are made
/// in memory at once, one warning is logged, and `run()` probes Redis in the background; when it
/// answers, one info line is logged and Redis decides again.
public final class RateLimiter: Service, Sendable {
    private let redis: RedisWindow?
    private let memory: Mutex<SlidingWindow>
    /// The one-time values this instance saw while Redis was not deciding (`check`): bounded,
    /// refusing new values when full rather than forgetting one that could then be replayed, and
    /// kept through their window after Redis is back.
    private let replayMemory: MemoryReplayGuard
    private let breaker: Mutex<CircuitBreaker>
    private let logger: Logger
    /// Its monotonic side times the in-memory windows, the breaker and Redis calls.
    private let clock: SignetClock
    private let origin: ContinuousClock.Instant

    /// Each kind of subject's requests per window.
    public let budgets: RateLimitSubject.PerKind<Int>
    private let policies: RateLimitSubject.PerKind<String>

    public init(configuration: RateLimitConfiguration, logger: Logger, metrics: SignetMetrics? = nil, clock: SignetClock = .system) {
        self.metrics = metrics
        self.clock = clock
        origin = clock.monotonic()
        budgets = configuration.budgets
        let seconds = max(1, (configuration.windowMilliseconds + 999) / 1000)
        policies = RateLimitSubject.PerKind { [budgets] kind in "\(budgets[kind]);w=\(seconds)" }
        memory = Mutex(SlidingWindow(limit: configuration.maxRequests, windowMilliseconds: configuration.windowMilliseconds))
        replayMemory = MemoryReplayGuard(
            window: .milliseconds(Defaults.replayWindowMilliseconds), capacity: Self.replayMemoryCapacity, clock: clock.monotonic)
        breaker = Mutex(CircuitBreaker(probeInterval: configuration.probeInterval))
        redis = configuration.redis.map { RedisWindow(topology: $0, configuration: configuration, logger: logger) }
        self.logger = logger
    }

    /// Whether decisions are made in Redis right now (false: in memory).
    public var usesRedis: Bool { redis != nil && breaker.withLock { $0.allowsRequests } }
    /// Behind Sentinel: the master the limiter uses (the last one while none is confirmed) and
    /// how many times it changed since start. Nil for a single server, or without Redis.
    public var redisMaster: (address: RedisAddress?, switches: Int)? { redis?.locator?.master }
    /// With Redis Cluster: the masters of the slot map in use, and how many times it changed since
    /// start. Nil otherwise.
    public var redisCluster: (masters: [RedisAddress], changes: Int)? { redis?.cluster?.status }
    /// Redis is configured (`REDIS_RATE_LIMIT_ENABLED`), whether or not the breaker is open.
    public var configuredForRedis: Bool { redis != nil }
    /// Told of every decision and of every Redis call's latency (`SignetMetrics`).
    let metrics: SignetMetrics?

    /// The `RateLimit-Policy` header's value (draft 07) for a kind of subject:
    /// `<limit>;w=<window in whole seconds>`.
    public func policy(_ kind: RateLimitSubject.Kind) -> String { policies[kind] }

    public func decide(_ subject: RateLimitSubject) async -> RateLimitDecision {
        if let decision = await decideInRedis(subject) { return decision }
        let decision = decideInMemory(subject)
        metrics?.limiterDecided(redis: false, allowed: decision.allowed)
        return decision
    }

    /// Redis's decision; nil when Redis is not deciding (not configured, the breaker open) or
    /// failed this call (which opens the breaker).
    private func decideInRedis(_ subject: RateLimitSubject) async -> RateLimitDecision? {
        guard let redis, breaker.withLock({ $0.allowsRequests }) else { return nil }
        let started = clock.monotonic()
        do {
            let decision = try await redis.decide(subject)
            metrics?.redisCall(took: clock.monotonic() - started)
            metrics?.limiterDecided(redis: true, allowed: decision.allowed)
            return decision
        } catch {
            metrics?.redisCall(took: clock.monotonic() - started)
            let transition = breaker.withLock { $0.failed(now: clock.monotonic()) }
            if transition == .opened {
                logger.warning(LogLine.redisDown, metadata: ["error": "\(error)"])
                redis.failPending(error)
            }
            return nil
        }
    }

    private func decideInMemory(_ subject: RateLimitSubject) -> RateLimitDecision {
        let now = (clock.monotonic() - origin).milliseconds
        let limit = budgets[subject.kind]
        return memory.withLock { $0.decide(subject.key, limit: limit, now: now) }
    }

    /// Probes Redis while the breaker is open; behind Sentinel, follows `+switch-master` too.
    public func run() async throws {
        guard let redis else {
            // Nothing to probe; a service that returns early would stop the whole group.
            try? await gracefulShutdown()
            return
        }
        let interval = breaker.withLock { $0.probeInterval }
        let watching = redis.watchSwitches()
        defer { watching.stop() }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval / 2)
                guard self.breaker.withLock({ $0.probeDue(now: self.clock.monotonic()) }) else { continue }
                do {
                    try await redis.probe()
                    if case .closed(let after) = self.breaker.withLock({ $0.succeeded(now: self.clock.monotonic()) }) {
                        self.logger.info(LogLine.redisBack, metadata: ["outageMs": "\(after.milliseconds)"])
                    }
                } catch {
                    // Still down: the breaker stays open; nothing more to log.
                }
            }
        }
    }
}

extension RateLimiter: ReplayGuard {
    /// The most one-time values an instance remembers while Redis is not deciding (within the
    /// replay window): about 30 MB; past it, secretless requests are answered 503 until some expire.
    public static let replayMemoryCapacity = 200_000

    /// A one-time value is allowed once per replay window: in Redis, shared by every instance,
    /// with the limiter's script and breaker (a value this instance saw while Redis was not
    /// deciding stays refused here after it decides again). While Redis is not deciding, only this
    /// instance's memory knows (docs/secretless.md says what that allows).
    public func check(_ value: String) async -> ReplayCheck {
        let subject = RateLimitSubject(.replay, value)
        if let decision = await decideInRedis(subject) {
            return decision.allowed && !replayMemory.contains(subject.key) ? .first : .seen
        }
        return await replayMemory.check(subject.key)
    }
}

/// The limiter's settings (`RATE_LIMIT_*`, `REDIS_*`).
public struct RateLimitConfiguration: Sendable, Equatable {
    public var maxRequests: Int
    public var windowMilliseconds: Int64
    /// Nil: in memory only (`REDIS_RATE_LIMIT_ENABLED=false`).
    public var redis: RedisTopology?
    public var redisTimeout: Duration
    /// Prepended to every Redis key (`REDIS_KEY_PREFIX`), so deployments or tests sharing a
    /// Redis do not share counts.
    public var keyPrefix: String
    public var probeInterval: Duration
    /// Per source address, for requests without a valid principal (`RATE_LIMIT_ADDRESS_MAX_REQUESTS`).
    public var addressMaxRequests: Int
    /// The admin principal's (`RATE_LIMIT_ADMIN_MAX_REQUESTS`).
    public var adminMaxRequests: Int
    /// Per source address, for the JWKS and the metadata (`RATE_LIMIT_DISCOVERY_MAX_REQUESTS`).
    public var discoveryMaxRequests: Int

    public init(
        maxRequests: Int,
        windowMilliseconds: Int64,
        redis: RedisTopology?,
        redisTimeout: Duration,
        keyPrefix: String = "signet:",
        probeInterval: Duration = .milliseconds(500),
        addressMaxRequests: Int = Defaults.rateLimitAddressMaxRequests,
        adminMaxRequests: Int = Defaults.rateLimitAdminMaxRequests,
        discoveryMaxRequests: Int = Defaults.rateLimitDiscoveryMaxRequests
    ) {
        self.addressMaxRequests = addressMaxRequests
        self.adminMaxRequests = adminMaxRequests
        self.discoveryMaxRequests = discoveryMaxRequests
        self.maxRequests = maxRequests
        self.windowMilliseconds = windowMilliseconds
        self.redis = redis
        self.redisTimeout = redisTimeout
        self.keyPrefix = keyPrefix
        self.probeInterval = probeInterval
    }
}
