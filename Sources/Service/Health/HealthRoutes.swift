import Crypto
import Foundation
import Hummingbird

/// `GET /health/live` answers without touching a dependency; `GET /health/ready` answers 200
/// when the database answered the latest bounded round of checks (Vault's state is shown, not
/// required: the keys are in memory);
/// `GET /health/detailed` reports every dependency (DESIGN.md §Health).
struct HealthRoutes {
    let monitor: HealthMonitor
    /// `HEALTH_DETAILED_TOKEN`: when set, `/health/detailed` requires it as a bearer token.
    let detailedToken: SecretToken?
    /// Once set (SIGTERM), readiness answers 503 whatever the checks say.
    let drain: DrainState

    init(monitor: HealthMonitor, detailedToken: String?, drain: DrainState) {
        self.monitor = monitor
        self.detailedToken = detailedToken.map(SecretToken.init)
        self.drain = drain
    }

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.get("live") { _, _ in
            try jsonResponse(["status": "ok"])
        }
        group.get("ready") { _, context in
            try await ready(context: context)
        }
        group.get("detailed") { request, _ in
            try await detailed(request)
        }
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
        guard ready else {
            context.logger.warning(
                "readiness: the database is unreachable", metadata: ["latencyMs": "\(report.database.latencyMs)"]
            )
            return try jsonResponse(readiness, status: .serviceUnavailable, headers: [.cacheControl: "no-store", .retryAfter: "1"])
        }
        return try jsonResponse(readiness, headers: [.cacheControl: "no-store"])
    }

    func detailed(_ request: Request) async throws -> Response {
        if let detailedToken {
            guard let token = request.bearerToken, detailedToken.matches(token) else {
                throw SignetError(
                    .unauthorized, "unauthorized", "a valid health bearer token is required",
                    headers: [.wwwAuthenticate: #"Bearer realm="signet-health""#])
            }
        }
        let report = await monitor.report()
        var headers: HTTPFields = [.cacheControl: "no-store"]
        if report.httpStatus == 503 { headers[.retryAfter] = "1" }
        return try jsonResponse(report, status: HTTPResponse.Status(code: report.httpStatus), headers: headers)
    }
}
