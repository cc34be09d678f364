import HTTPTypes
import Hummingbird
import Spec

/// Refuses, before anything reads them, a request target longer than `Limits.maxURLBytes` (414)
/// and headers larger than `Limits.maxHeaderBytes` in all (431), each with a JSON error. What NIO's
/// parser refuses first (a header block it cannot hold) never reaches a route either.
struct RequestLimitsMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.description.utf8.count > Limits.maxURLBytes {
            return SignetError(.uriTooLong, "invalid_request", "the request target is longer than \(Limits.maxURLBytes) bytes")
                .jsonResponse
        }
        var headerBytes = 0
        for field in request.headers { headerBytes += field.name.rawName.utf8.count + field.value.utf8.count }
        if headerBytes > Limits.maxHeaderBytes {
            return SignetError(
                .requestHeaderFieldsTooLarge, "invalid_request", "the headers are larger than \(Limits.maxHeaderBytes) bytes in all"
            ).jsonResponse
        }
        return try await next(request, context)
    }
}
