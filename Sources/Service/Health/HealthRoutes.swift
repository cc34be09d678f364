import Crypto
import Foundation
import Hummingbird
import Synchronization

/// `GET /health/live` answers without touching a dependency; `GET /health/ready` answers 200
/// when the database answered the latest bounded round of checks (Vault's state is shown, not
/// required: the keys are in memory);
/// `GET /health/detailed` reports every dependency (DESIGN.md §Health): on the operations
/// listener to anyone who reaches it, on the public one only with `HEALTH_DETAILED_TOKEN`.
struct HealthRoutes {
    let monitor: HealthMonitor
    /// Once set (SIGTERM), readiness answers 503 whatever the checks say.
    let drain: DrainState
    /// Whether the last readiness answer was ready: readiness logs when that changes, not per
    /// request (a balancer polling an instance whose database is down is not a flood of lines).
    /// Copies (the operations listener's) share it.
    private let wasReady = ReadinessMemory()

    init(monitor: HealthMonitor, drain: DrainState) {
        self.monitor = monitor
        self.drain = drain
    }

    /// - Parameter detailedGuard: who may read `/health/detailed` on this listener
    ///   (`RequireOperations` on the public one; nil on the operations listener: whoever reaches it).
    func add(to group: RouterGroup<SignetRequestContext>, detailedGuard: RequireOperations?) {
        group.get("live") { _, _ in
            try jsonResponse(["status": "ok"])
        }
        group.get("ready") { _, context in
            try await ready(context: context)
        }
        let detailed = group.group("detailed")
        if let detailedGuard { detailed.add(middleware: detailedGuard) }
        detailed.get { _, _ in try await self.detailed() }
    }

    private struct Readiness: Encodable {
        let status: String
        let database: String
        let vault: String?
        let latencyMs: Int64
    }

    func ready(context: SignetRequestContext) async throws -> Response {
        if drain.isDraining {
            // At once, without waiting for a round of checks.
            return try jsonResponse(["status": "draining"], status: .serviceUnavailable, headers: [.cacheControl: "no-store"])
        }
        let (ready, report) = await monitor.readiness()
        let readiness = Readiness(
            status: ready ? "ready" : "not_ready",
            database: report.database.status.rawValue,
            vault: report.vault?.status.rawValue,
            latencyMs: max(report.database.latencyMs, report.vault?.latencyMs ?? 0)
        )
        if wasReady.last.exchange(ready, ordering: .relaxed) != ready {
            if ready {
                context.logger.info("readiness: the database answers again", metadata: ["latencyMs": "\(report.database.latencyMs)"])
            } else {
                context.logger.warning(
                    "readiness: the database is unreachable", metadata: ["latencyMs": "\(report.database.latencyMs)"])
            }
        }
        guard ready else {
            return try jsonResponse(readiness, status: .serviceUnavailable, headers: [.cacheControl: "no-store", .retryAfter: "1"])
        }
        return try jsonResponse(readiness, headers: [.cacheControl: "no-store"])
    }

    func detailed() async throws -> Response {
        let report = await monitor.report()
        var headers: HTTPFields = [.cacheControl: "no-store"]
        if report.httpStatus == 503 { headers[.retryAfter] = "1" }
        return try jsonResponse(report, status: HTTPResponse.Status(code: report.httpStatus), headers: headers)
    }
}

/// The last readiness answer, shared by every copy of the routes.
final class ReadinessMemory: Sendable {
    let last = Atomic<Bool>(true)
}

/// The guard of an operations route (`/metrics`, `/health/detailed`) on the public listener: only
/// the principal `.operations` that the route's token makes (`AuthMiddleware`; a failed token
/// counts against the address); without a token configured the route is not served there. The
/// operations listener (`OPS_HOST`:`OPS_PORT`) has no guard: whoever reaches it may read them.
struct RequireOperations: RouterMiddleware {
    typealias Context = SignetRequestContext
    /// The variable that holds the route's token.
    let variable: String
    let tokenConfigured: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if case .operations = context.principal { return try await next(request, context) }
        guard tokenConfigured else {
            throw SignetError.notFound("served on the operations listener (OPS_HOST, OPS_PORT); set \(variable) to serve it here too")
        }
        throw SignetError(
            .unauthorized, "unauthorized", "a valid \(variable) bearer token is required",
            headers: [.wwwAuthenticate: #"Bearer realm="signet-operations""#])
    }
}
