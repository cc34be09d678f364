import Foundation
import Hummingbird

/// An error a client sees: a status, a stable machine code and a human sentence, as JSON
/// `{"error": code, "error_description": text}`. Never carries a secret, a stack or SQL.
public struct SignetError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public let headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static func badRequest(_ message: String) -> SignetError {
        SignetError(.badRequest, "invalid_request", message)
    }

    public static func notFound(_ message: String) -> SignetError {
        SignetError(.notFound, "not_found", message)
    }

    public static func conflict(_ message: String) -> SignetError {
        SignetError(.conflict, "conflict", message)
    }

    /// 503 with `Retry-After`: a dependency is unavailable or the pool is exhausted.
    public static func unavailable(_ message: String, retryAfterSeconds: Int = 1) -> SignetError {
        SignetError(.serviceUnavailable, "temporarily_unavailable", message, headers: [.retryAfter: "\(retryAfterSeconds)"])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.jsonResponse(status: status, code: code, message: message, headers: headers)
    }

    static func jsonResponse(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) -> Response {
        let body = ErrorBody(error: code, error_description: message)
        let data = (try? responseEncoder.encode(body)) ?? Data(#"{"error":"server_error"}"#.utf8)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private struct ErrorBody: Encodable {
        let error: String
        let error_description: String
    }
}
