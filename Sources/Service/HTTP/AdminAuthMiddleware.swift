import Crypto
import Foundation
import Hummingbird

/// Guards the admin API: `Authorization: Bearer <SIGNET_ADMIN_TOKEN>`, compared in constant
/// time (both sides hashed to SHA-256 first, so neither the length nor a prefix leaks).
/// Anything else is 401 with `WWW-Authenticate: Bearer`.
public struct AdminAuthMiddleware: RouterMiddleware {
    public typealias Context = SignetRequestContext
    private let expectedDigest: SHA256Digest
    /// The admin's rate-limit subject: `admin:` and 16 hex digits of a hash of the token (its own
    /// hash, not the one compared against), so a Redis key never holds the token, and a new
    /// token starts a new count.
    let rateLimitSubject: String

    public init(adminToken: String) {
        expectedDigest = SHA256.hash(data: Data(adminToken.utf8))
        let subjectDigest = SHA256.hash(data: Data("signet rate-limit subject\u{0}\(adminToken)".utf8))
        rateLimitSubject = "admin:" + Encoding.hex(subjectDigest.prefix(8))
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearerToken(request), Self.constantTimeEquals(SHA256.hash(data: Data(token.utf8)), expectedDigest) else {
            throw SignetError(
                .unauthorized,
                "unauthorized",
                "a valid admin bearer token is required",
                headers: [.wwwAuthenticate: #"Bearer realm="signet-admin""#]
            )
        }
        var context = context
        context.principal = .admin
        return try await next(request, context)
    }

    /// Whether `token` is the admin token (constant time).
    func isAdmin(_ token: String) -> Bool {
        Self.constantTimeEquals(SHA256.hash(data: Data(token.utf8)), expectedDigest)
    }

    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    static func constantTimeEquals(_ lhs: SHA256Digest, _ rhs: SHA256Digest) -> Bool {
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
        return difference == 0
    }
}
