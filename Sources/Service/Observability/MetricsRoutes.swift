import HTTPTypes
import Hummingbird
import NIOCore

/// Times every request by route template, method and status class, and counts those in flight.
/// First in the chain, so limited and refused requests count too. A path no route matches is
/// `unmatched`: a raw path never becomes a label.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let metrics: SignetMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = metrics.requestStarted()
        var context = context
        context.receivedAt = started
        do {
            let response = try await next(request, context)
            metrics.requestEnded(
                started: started, route: context.endpointPath, method: request.method, status: response.status.code)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.requestEnded(started: started, route: context.endpointPath, method: request.method, status: status)
            throw error
        }
    }
}

/// `GET /metrics`: the Prometheus text format, on the operations listener to whoever reaches it,
/// on the public listener only for `Authorization: Bearer <METRICS_TOKEN>` (`RequireOperations`;
/// a failed token counts against the address). The pool, limiter and health gauges are read at
/// scrape time.
struct MetricsRoutes {
    let metrics: SignetMetrics
    let pool: ConnectionPool
    let limiter: RateLimiter
    let health: HealthMonitor

    /// - Parameter guard: `RequireOperations` on the public listener; nil on the operations one.
    func add(to router: Router<SignetRequestContext>, guard routeGuard: RequireOperations?) {
        let group = router.group("metrics")
        if let routeGuard { group.add(middleware: routeGuard) }
        group.get { _, _ in
            await collect()
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }

    func collect() async {
        let stats = pool.statistics
        metrics.set("signet_db_pool_connections", [("state", "total")], to: Double(stats.total))
        metrics.set("signet_db_pool_connections", [("state", "leased")], to: Double(stats.leased))
        metrics.set("signet_db_pool_connections", [("state", "idle")], to: Double(stats.idle))
        metrics.set("signet_db_pool_connections", [("state", "connecting")], to: Double(stats.connecting))
        metrics.set("signet_db_pool_waiting", to: Double(stats.waiting))
        metrics.set("signet_db_pool_max", to: Double(pool.configuration.maximumConnections))
        metrics.count("signet_db_pool_acquire_timeouts_total", total: stats.acquireTimeouts)
        metrics.count("signet_db_pool_connections_opened_total", total: stats.connectionsOpened)
        metrics.count("signet_db_pool_connections_closed_total", total: stats.connectionsClosed)
        metrics.count("signet_db_pool_connect_failures_total", total: stats.connectFailures)

        let backend = limiter.usesRedis ? "redis" : "memory"
        for candidate in ["redis", "memory"] {
            metrics.set("signet_rate_limit_backend", [("backend", candidate)], to: candidate == backend ? 1 : 0)
        }
        metrics.set("signet_rate_limit_breaker_open", to: limiter.configuredForRedis && !limiter.usesRedis ? 1 : 0)
        if let master = limiter.redisMaster { metrics.redisMaster(master.address, switches: master.switches) }
        if let cluster = limiter.redisCluster { metrics.redisCluster(masters: cluster.masters.count, changes: cluster.changes) }

        let report = await health.report()
        let dependencies: [(String, DependencyHealth?)] = [
            ("database", report.database), ("redis", report.redis), ("vault", report.vault), ("opa", report.opa),
            ("credential_cache", report.credentialCache),
        ]
        for (name, dependency) in dependencies {
            guard let dependency else { continue }
            for status in DependencyHealth.Status.allCases {
                metrics.set(
                    "signet_health_check_status", [("dependency", name), ("status", status.rawValue)],
                    to: dependency.status == status ? 1 : 0)
            }
            metrics.set("signet_health_check_latency_seconds", [("dependency", name)], to: Double(dependency.latencyMs) / 1000)
        }
        for status in ["healthy", "degraded", "unhealthy"] {
            metrics.set("signet_health_status", [("status", status)], to: report.status == status ? 1 : 0)
        }
    }
}
