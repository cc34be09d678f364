import HTTPTypes
import Hummingbird

/// Gives every request one id: the client's `X-Request-Id` when it is sane (1–128 characters of
/// `[A-Za-z0-9._-]`), else the one Hummingbird already made (`context.id`). It is the
/// `hb.request.id` of every log line of the request and goes back in the response, with
/// `Signet-Instance` naming the process that answered, and `X-Content-Type-Options: nosniff`. The logger's metadata is only rewritten
/// when the client sent an id: that write costs, and most requests need none.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = SignetRequestContext
    let instanceID: String

    public init(instanceID: String) {
        self.instanceID = instanceID
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let given = request.headers[.requestID], Self.isAcceptable(given) {
            context.logger[metadataKey: "hb.request.id"] = .string(given)
        }
        var response = try await next(request, context)
        response.headers[.requestID] = context.id
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
    static let signetInstance = HTTPField.Name("Signet-Instance")!
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let pragma = HTTPField.Name("Pragma")!
}
