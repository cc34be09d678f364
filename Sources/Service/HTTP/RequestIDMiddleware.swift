import HTTPTypes
import Hummingbird

/// Every request has the server's own id (`context.id`, Hummingbird's): the `hb.request.id` of
/// every log line of the request, the `request_id` of its audit rows, and `Signet-Request-Id` in
/// the response. A client's `X-Request-Id`, when it is sane (1–128 characters of
/// `[A-Za-z0-9._-]`), is kept apart, never in its place: `client.request.id` in the log lines,
/// `client_request_id` in the audit rows, and echoed as the response's `X-Request-Id` (the
/// server's id when the client sent none). A client cannot choose the id an operator traces.
/// The response also names the process that answered (`Signet-Instance`) and carries
/// `X-Content-Type-Options: nosniff`. The logger's metadata is only written when the client sent
/// an id: that write costs, and most requests need none.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = SignetRequestContext
    let instanceID: String

    public init(instanceID: String) {
        self.instanceID = instanceID
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let given = request.headers[.requestID], Self.isAcceptable(given) {
            context.clientRequestID = given
            context.logger[metadataKey: "client.request.id"] = .string(given)
        }
        var response = try await next(request, context)
        response.headers[.requestID] = context.clientRequestID ?? context.id
        response.headers[.signetRequestID] = context.id
        response.headers[.signetInstance] = instanceID
        // No response is ever to be sniffed into something it does not say it is.
        response.headers[.contentTypeOptions] = "nosniff"
        return response
    }

    static func isAcceptable(_ value: String) -> Bool {
        (1...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F
            }
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let signetRequestID = HTTPField.Name("Signet-Request-Id")!
    static let signetInstance = HTTPField.Name("Signet-Instance")!
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let pragma = HTTPField.Name("Pragma")!
}
