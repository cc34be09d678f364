import HTTPTypes
import Hummingbird

/// Gives every request an id: the client's `X-Request-Id` when it is sane (1–128 characters of
/// `[A-Za-z0-9._-]`), else a new random one. The id goes into every log line of the request and
/// back in the response, with `Signet-Instance` naming the process that answered.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = SignetRequestContext
    let instanceID: String

    public init(instanceID: String) {
        self.instanceID = instanceID
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = request.headers[.requestID].flatMap { Self.isAcceptable($0) ? $0 : nil } ?? Self.newID()
        context.requestID = requestID
        context.logger[metadataKey: "request.id"] = .string(requestID)
        var response = try await next(request, context)
        response.headers[.requestID] = requestID
        response.headers[.signetInstance] = instanceID
        return response
    }

    static func isAcceptable(_ value: String) -> Bool {
        (1...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F
            }
    }

    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next()
        let low = generator.next()
        return String(high, radix: 16).leftPadded(16) + String(low, radix: 16).leftPadded(16)
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-Id")!
    static let signetInstance = HTTPField.Name("Signet-Instance")!
    static let pragma = HTTPField.Name("Pragma")!
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
