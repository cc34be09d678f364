import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small HTTP client for checks: one call, the status, headers and body as text.
public enum HTTP {
    /// One client for the process (never shut down, like `HTTPClient.shared`), allowing enough
    /// parallel connections per host to hold a whole pool busy.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: String

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        /// The body as a JSON object (empty when it is not one).
        public var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    public static func request(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            if !request.headers.contains(name: "Content-Type") { request.headers.add(name: "Content-Type", value: "application/json") }
        }
        let seconds = timeout.components.seconds
        let response = try await client.execute(request, timeout: .seconds(max(1, seconds)))
        let buffer = try await response.body.collect(upTo: 4 * 1024 * 1024)
        return Response(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            body: String(buffer: buffer)
        )
    }

    /// A request with `Authorization: Bearer <token>`.
    public static func admin(
        _ method: HTTPMethod,
        _ url: String,
        token: String,
        body: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Response {
        try await request(method, url, headers: [("Authorization", "Bearer \(token)")], body: body, timeout: timeout)
    }
}
