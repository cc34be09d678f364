import Hummingbird
import Logging
import Synchronization

/// Turns every error into a JSON error response, so no client ever sees an empty or HTML body.
///
/// `SignetError`s render as they are; Hummingbird's own errors (unknown route, body too large)
/// keep their status with a generic code; database failures become 503 with `Retry-After`;
/// anything else is logged and answered 500 `server_error` without detail.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The routes, to answer 405 with `Allow` (not 404) for a path served under other methods.
    let routes: RouteTable?

    public init(routes: RouteTable? = nil) {
        self.routes = routes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any SignetErrorConvertible {
            return error.signetError.jsonResponse
        } catch let error as DatabaseError {
            return Self.response(for: error, logger: context.logger)
        } catch let error as VaultError {
            context.logger.error("Vault unavailable", metadata: ["error": "\(error)"])
            return SignetError.unavailable("the secret store is unavailable").jsonResponse
        } catch let error as any HTTPResponseError {
            if error.status == .notFound, let allowed = routes?.methods(for: request.uri.path), !allowed.isEmpty {
                var response = SignetError(
                    .methodNotAllowed, "method_not_allowed",
                    "\(request.method) is not allowed here; allowed: \(allowed.joined(separator: ", "))"
                ).jsonResponse
                response.headers[.allow] = allowed.joined(separator: ", ")
                return response
            }
            let status = error.status
            let message = status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : status.reasonPhrase
            return SignetError(status, Self.code(for: status), message).jsonResponse
        } catch is CancellationError {
            return SignetError.unavailable("the request was cancelled").jsonResponse
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            return SignetError(.internalServerError, "server_error", "internal error").jsonResponse
        }
    }

    static func response(for error: DatabaseError, logger: Logger) -> Response {
        switch error {
        case .poolTimeout:
            // The pool already logged one line with its numbers.
            return SignetError.unavailable("the database is busy; retry shortly").jsonResponse
        case .poolShutDown:
            return SignetError.unavailable("the service is shutting down").jsonResponse
        case .invalidParameter(let message):
            return SignetError.badRequest(message).jsonResponse
        case .timedOut:
            logger.warning("database did not answer in time", metadata: ["error": "\(error)"])
            return SignetError.unavailable("the database did not answer in time").jsonResponse
        case .connectionFailed, .connectionLost:
            logger.error("database unavailable", metadata: ["error": "\(error)"])
            return SignetError.unavailable("the database is unavailable").jsonResponse
        case .server(let state, _, _) where state == "22P05" || state == "22021":
            // A NUL (`\u0000` in JSON) or a byte sequence PostgreSQL cannot store: the client's value.
            return SignetError.badRequest("a value contains a character that cannot be stored (such as NUL)").jsonResponse
        case .server(let state, _, _) where state == "25006":
            // The server refused a write: a standby (a failover under way, or one a connection
            // saw only now), or a primary set read-only.
            logger.error("database refuses writes (read-only)", metadata: ["error": "\(error)"])
            return SignetError.unavailable("the database refuses writes for now (read-only or switching over); retry shortly")
                .jsonResponse
        case .server(let state, _, _) where state == "57014" || state.hasPrefix("08") || state.hasPrefix("57P"):
            logger.error("database statement failed", metadata: ["error": "\(error)"])
            return SignetError.unavailable("the database did not answer in time").jsonResponse
        case .server, .unexpectedResult:
            logger.error("database error", metadata: ["error": "\(error)"])
            return SignetError(.internalServerError, "server_error", "internal error").jsonResponse
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contentTooLarge: "request_too_large"
        case .unauthorized: "unauthorized"
        case .serviceUnavailable: "temporarily_unavailable"
        default: status.code < 500 ? "invalid_request" : "server_error"
        }
    }
}

/// A domain error that knows the client-facing error it becomes.
public protocol SignetErrorConvertible: Error {
    var signetError: SignetError { get }
}

extension SignetError: SignetErrorConvertible {
    public var signetError: SignetError { self }
    var jsonResponse: Response { Self.jsonResponse(status: status, code: code, message: message, headers: headers) }
}

/// The router's route templates, filled once the routes are registered: which methods serve a
/// path (`{name}` matches any one segment).
public final class RouteTable: Sendable {
    private let routes = Mutex<[(method: String, segments: [Substring])]>([])

    public init() {}

    func register(_ list: [(method: String, path: String)]) {
        routes.withLock { $0 = list.map { ($0.method, $0.path.split(separator: "/")) } }
    }

    static func isParameter(_ segment: Substring) -> Bool { segment.hasPrefix("{") || segment.hasPrefix(":") }

    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        let matching = routes.withLock { routes in
            routes.filter { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { template, segment in
                        Self.isParameter(template) || template == segment
                    }
            }
        }
        // As the router does: a literal segment wins over a parameter (`.../credentials/rotate`
        // is not `.../credentials/{cid}`).
        let literals = { (route: (method: String, segments: [Substring])) in route.segments.count { !Self.isParameter($0) } }
        guard let most = matching.map(literals).max() else { return [] }
        return Array(Set(matching.filter { literals($0) == most }.map(\.method))).sorted()
    }
}
