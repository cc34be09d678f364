import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// One line per request at info (`ACCESS_LOG=false` turns them off; 429s and the health and
/// metrics routes, whatever the method, at debug): method, route template, status, duration from the request's arrival,
/// and principal kind, with the request id and the instance from the logger.
/// Placed after authentication, so it knows the principal, and before the limiter, so limited
/// requests are logged too. Never a raw path, query, header or credential.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            log(request, context, status: response.status.code)
            return response
        } catch {
            log(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500)
            throw error
        }
    }

    func log(_ request: Request, _ context: Context, status: Int) {
        // A flood must not become a flood of lines: limited answers, health checks and scrapes
        // are logged at debug.
        let level: Logger.Level = status == 429 || context.quietInAccessLog ? .debug : .info
        guard context.logger.logLevel <= level else { return }
        let principal: String =
            switch context.principal {
            case .admin: "admin"
            case .client: "client"
            case .federated: "federated"
            case .operations: "operations"
            case nil: "none"
            }
        let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
        let method = SignetMetrics.knownMethods.contains(request.method.rawValue) ? request.method.rawValue : "other"
        context.logger.log(
            level: level, "request",
            metadata: [
                "method": .string(method), "route": .string(route), "status": .stringConvertible(status),
                "durationMs": .string(String(format: "%.2f", (ContinuousClock.now - context.receivedAt).fractionalMilliseconds)),
                "principal": .string(principal),
            ])
    }
}
