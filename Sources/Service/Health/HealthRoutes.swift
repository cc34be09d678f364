import Hummingbird

/// `GET /health/live` answers without touching a dependency; `GET /health/ready` answers 200
/// only when a pooled `SELECT 1` returns within `HEALTH_CHECK_TIMEOUT_MS`.
struct HealthRoutes {
    let pool: ConnectionPool
    let timeout: Duration

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.get("live") { _, _ in
            try jsonResponse(["status": "ok"])
        }
        group.get("ready") { _, context in
            try await ready(context: context)
        }
    }

    private struct Readiness: Encodable {
        let status: String
        let database: String
        let latencyMs: Int64
    }

    func ready(context: SignetRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let outcome = await withTimeout(timeout) {
            try await pool.withConnection { connection in
                _ = try connection.query("SELECT 1")
            }
        }
        let latency = (ContinuousClock.now - started).milliseconds
        switch outcome {
        case .success:
            return try jsonResponse(
                Readiness(status: "ready", database: "healthy", latencyMs: latency), headers: [.cacheControl: "no-store"])
        case .timedOut:
            context.logger.warning("readiness: database did not answer in time", metadata: ["latencyMs": "\(latency)"])
        case .failure(let error):
            context.logger.warning("readiness: database check failed", metadata: ["error": "\(error)"])
        }
        return try jsonResponse(
            Readiness(status: "not_ready", database: "unreachable", latencyMs: latency),
            status: .serviceUnavailable,
            headers: [.cacheControl: "no-store", .retryAfter: "1"]
        )
    }
}
