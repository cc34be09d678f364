import CoreMetrics
import Foundation
import HTTPTypes
import Metrics
import Prometheus
import Synchronization

// swift-metrics' types; Prometheus has its own of the same names.
typealias MetricCounter = CoreMetrics.Counter
typealias MetricGauge = CoreMetrics.Gauge
typealias MetricTimer = CoreMetrics.Timer
typealias MetricMeter = CoreMetrics.Meter

/// Every metric Signet exports at `GET /metrics`, through swift-metrics with swift-prometheus as
/// the backend. Each application has its own registry (tests run several in one process), so
/// the metrics are made with an explicit factory rather than the global `MetricsSystem`.
///
/// Label values come from fixed sets only: route templates (never raw paths or ids), status
/// classes, known methods, token results, dependency names. Nothing a client sends becomes a
/// label value, so the number of series cannot grow with traffic.
public final class SignetMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    /// The outcome of one `POST /oauth/token`.
    public enum TokenResult: String, CaseIterable, Sendable {
        case issued
        /// Client authentication failed.
        case invalidClient = "invalid_client"
        /// A malformed scope, or none of the requested scopes is registered to the agent.
        case invalidScope = "invalid_scope"
        /// The agent is not active, or the policy (OPA) granted none of its eligible scopes.
        case policyDenied = "policy_denied"
        /// A malformed request (no or another grant type).
        case invalidRequest = "invalid_request"
        /// A dependency failed (PostgreSQL, OPA, the key ring): 503, no token.
        case unavailable
        /// Refused before the secret was checked, because one address had too many client
        /// lookups under way (503 and `Retry-After`): load shedding, which an unauthenticated
        /// party can cause, so kept apart from `unavailable`.
        case shed
    }

    private let inFlight: MetricMeter
    private let requests = Mutex<[RequestKey: MetricTimer]>([:])
    private let tokenResults: [TokenResult: MetricCounter]
    private let signing: MetricTimer
    private let limiterDecisions: [String: MetricCounter]
    private let redisLatency: MetricTimer
    private let acquireWait: MetricTimer
    /// Connections closed as they opened: their address held `HTTP_MAX_CONNECTIONS_PER_ADDRESS`.
    let connectionsRefusedPerAddress: MetricCounter
    /// Times a connection stopped being read: it had `HTTP_MAX_PIPELINED_REQUESTS` unanswered.
    let pipelinePaused: MetricCounter
    /// Connections reset because one write of the client carried more than `HTTP_MAX_PIPELINED_REQUESTS`.
    let pipelineOverflows: MetricCounter
    /// Connections closed because a response made no progress for `HTTP_WRITE_TIMEOUT_MS`.
    let writeTimeouts: MetricCounter
    /// Requests the limiter answered 429.
    let rateLimited: MetricCounter
    /// Connections closed because a request's body did not arrive within `HTTP_BODY_TIMEOUT_MS`.
    let bodyTimeouts: MetricCounter
    private let dependencyCalls = Mutex<[String: (latency: MetricTimer, errors: MetricCounter)]>([:])
    /// Values read at scrape time from the pool, the limiter and the health report.
    private let gauges = Mutex<[GaugeKey: MetricGauge]>([:])
    private let scrapedCounters = Mutex<[GaugeKey: (counter: MetricCounter, last: Int)]>([:])
    /// Every master named by the sentinels since start: the one in use is 1, the others 0.
    private let redisMasters = Mutex<Set<String>>([])

    struct RequestKey: Hashable {
        let route: String
        let method: String
        let statusClass: String
    }

    struct GaugeKey: Hashable {
        let name: String
        let labels: [String]
    }

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let fast: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        factory.defaultDurationHistogramBuckets = fast
        self.factory = factory
        inFlight = MetricMeter(label: "signet_http_requests_in_flight", factory: factory)
        tokenResults = Dictionary(
            uniqueKeysWithValues: TokenResult.allCases.map {
                ($0, MetricCounter(label: "signet_token_requests_total", dimensions: [("result", $0.rawValue)], factory: factory))
            })
        signing = MetricTimer(label: "signet_token_signing_duration_seconds", factory: factory)
        var decisions: [String: MetricCounter] = [:]
        for backend in ["redis", "memory"] {
            for result in ["allowed", "limited"] {
                decisions["\(backend) \(result)"] = MetricCounter(
                    label: "signet_rate_limit_decisions_total", dimensions: [("backend", backend), ("result", result)], factory: factory)
            }
        }
        limiterDecisions = decisions
        redisLatency = MetricTimer(label: "signet_redis_call_duration_seconds", factory: factory)
        acquireWait = MetricTimer(label: "signet_db_pool_acquire_wait_seconds", factory: factory)
        connectionsRefusedPerAddress = MetricCounter(
            label: "signet_http_connections_refused_total", dimensions: [("reason", "per_address")], factory: factory)
        pipelinePaused = MetricCounter(label: "signet_http_pipeline_paused_total", factory: factory)
        writeTimeouts = MetricCounter(label: "signet_http_write_timeouts_total", factory: factory)
        pipelineOverflows = MetricCounter(label: "signet_http_pipeline_overflows_total", factory: factory)
        rateLimited = MetricCounter(label: "signet_rate_limited_total", factory: factory)
        bodyTimeouts = MetricCounter(label: "signet_http_body_timeouts_total", factory: factory)
    }

    // MARK: Requests

    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// A request began: counted in flight; pass the instant to `requestEnded`.
    func requestStarted() -> ContinuousClock.Instant {
        inFlight.increment()
        return .now
    }

    func requestEnded(started: ContinuousClock.Instant, route: String?, method: HTTPRequest.Method, status: Int) {
        inFlight.decrement()
        let method = Self.knownMethods.contains(method.rawValue) ? method.rawValue : "other"
        // Hummingbird names an unmatched path "NotFound"; every template starts with "/".
        let route = route.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
        let key = RequestKey(route: route, method: method, statusClass: "\(min(max(status / 100, 1), 5))xx")
        let timer = requests.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = MetricTimer(
                label: "signet_http_request_duration_seconds",
                dimensions: [("route", key.route), ("method", key.method), ("status_class", key.statusClass)], factory: factory)
            timers[key] = timer
            return timer
        }
        timer.record(duration: ContinuousClock.now - started)
    }

    // MARK: Tokens, limiter, pool, dependencies

    func token(_ result: TokenResult) { tokenResults[result]?.increment() }

    func signed(in duration: Duration) { signing.record(duration: duration) }

    func limiterDecided(redis: Bool, allowed: Bool) {
        limiterDecisions["\(redis ? "redis" : "memory") \(allowed ? "allowed" : "limited")"]?.increment()
    }

    func redisCall(took duration: Duration) { redisLatency.record(duration: duration) }

    func poolAcquired(after wait: Duration) { acquireWait.record(duration: wait) }

    /// One call to Vault or OPA (`dependency` is `vault` or `opa`): its latency, and whether it failed.
    func dependencyCall(_ dependency: String, took duration: Duration, failed: Bool) {
        let metrics = dependencyCalls.withLock { calls in
            if let found = calls[dependency] { return found }
            let made = (
                latency: MetricTimer(
                    label: "signet_dependency_call_duration_seconds", dimensions: [("dependency", dependency)], factory: factory),
                errors: MetricCounter(
                    label: "signet_dependency_call_errors_total", dimensions: [("dependency", dependency)], factory: factory)
            )
            calls[dependency] = made
            return made
        }
        metrics.latency.record(duration: duration)
        if failed { metrics.errors.increment() }
    }

    // MARK: Scrape time

    /// Sets a gauge read at scrape time.
    func set(_ name: String, _ labels: [(String, String)] = [], to value: Double) {
        let key = GaugeKey(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        let gauge = gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = MetricGauge(label: name, dimensions: labels, factory: factory)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    /// Brings a counter kept elsewhere (the pool's totals since start) up to `total`.
    func count(_ name: String, _ labels: [(String, String)] = [], total: Int) {
        let key = GaugeKey(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        scrapedCounters.withLock { counters in
            let entry = counters[key] ?? (MetricCounter(label: name, dimensions: labels, factory: factory), 0)
            if total > entry.last { entry.counter.increment(by: Int64(total - entry.last)) }
            counters[key] = (entry.counter, max(entry.last, total))
        }
    }

    /// Behind Sentinel: `signet_redis_master{address}` is 1 for the master in use and 0 for every
    /// earlier one (a few per failover: the label's values are the sentinels' answers, never a
    /// client's), and the switches since start.
    func redisMaster(_ address: RedisAddress?, switches: Int) {
        let current = address.map { "\($0)" }
        let known = redisMasters.withLock { known in
            if let current { known.insert(current) }
            return known
        }
        for candidate in known { set("signet_redis_master", [("address", candidate)], to: candidate == current ? 1 : 0) }
        count("signet_redis_master_switches_total", total: switches)
    }

    /// With Redis Cluster: how many masters the slot map in use names, and how many times the map
    /// changed since start (a master's failover, a resharding).
    func redisCluster(masters: Int, changes: Int) {
        set("signet_redis_cluster_masters", to: Double(masters))
        count("signet_redis_cluster_map_changes_total", total: changes)
    }

    /// Makes this registry the process's `MetricsSystem` too, so metrics libraries make without an
    /// explicit factory are exported with the rest. Once per process.
    public func bootstrapProcessWide() {
        MetricsSystem.bootstrap(factory)
    }

    /// The Prometheus text exposition of every series.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}

extension MetricTimer {
    fileprivate func record(duration: Duration) { recordNanoseconds(duration.nanoseconds) }
}
