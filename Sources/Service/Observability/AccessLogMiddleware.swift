import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// One line per request at info (`ACCESS_LOG=false` turns them off): method, route template,
/// status, duration and principal kind, with the request id and the instance from the logger.
/// Placed after authentication, so it knows the principal, and before the limiter, so limited
/// requests are logged too. Never a raw path, query, header or credential.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let status: Int
        do {
            let response = try await next(request, context)
            status = response.status.code
            log(request, context, status: status, started: started)
            return response
        } catch {
            log(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, started: started)
            throw error
        }
    }

    func log(_ request: Request, _ context: Context, status: Int, started: ContinuousClock.Instant) {
        let principal: String =
            switch context.principal {
            case .admin: "admin"
            case .agent: "agent"
            case .client: "client"
            case nil: "none"
            }
        let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
        let method = SignetMetrics.knownMethods.contains(request.method.rawValue) ? request.method.rawValue : "other"
        context.logger.info(
            "request",
            metadata: [
                "method": .string(method), "route": .string(route), "status": .stringConvertible(status),
                "durationMs": .string(String(format: "%.2f", Double((ContinuousClock.now - started).nanosecondsValue) / 1e6)),
                "principal": .string(principal),
            ])
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
