import HTTPTypes
import Hummingbird
import Metrics

/// Limits every API route (everything but `/health/*` and `/metrics`) per subject, and puts
/// `RateLimit-Policy` and `RateLimit` (IETF ratelimit-headers draft 07 syntax) on every response
/// of those routes; a rejection is 429 with `Retry-After` and a JSON error.
///
/// The subject is the most specific identity the request proves or names: the client id on
/// `/oauth/token` (HTTP Basic user or `client_id` field), the agent of a validly signed bearer
/// access token, the admin (its token hashed), else the client's IP address.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let limiter: RateLimiter
    let keyRing: KeyRing
    let admin: AdminAuthMiddleware

    static let rejected = Counter(label: "signet_rate_limited_total")

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard !path.hasPrefix("/health/"), path != "/metrics" else { return try await next(request, context) }
        var request = request
        var context = context
        let subject: String
        do {
            subject = try await self.subject(of: &request, context: &context)
        } catch {
            // The body could not be read whole (too large, or the client went away): it is
            // half-consumed, so it must not reach a route that would read it again.
            return OAuthError(.invalidRequest, "the body is larger than \(OAuthForm.maxBytes) bytes or incomplete").signetError.jsonResponse
        }
        let decision = await limiter.decide(subject)
        var response: Response
        if decision.allowed {
            response = try await next(request, context)
        } else {
            // Counted, and logged only at debug: a flood of rejected requests must not become a
            // flood of log lines.
            Self.rejected.increment()
            context.logger.debug("rate limited", metadata: ["subject.kind": "\(subject.prefix { $0 != ":" })"])
            response =
                SignetError(
                    .tooManyRequests,
                    "rate_limited",
                    "too many requests; retry after \(decision.retryAfterSeconds) s",
                    headers: [.retryAfter: String(decision.retryAfterSeconds)]
                ).jsonResponse
        }
        response.headers[.rateLimitPolicy] = limiter.policy
        response.headers[.rateLimit] =
            "limit=\(decision.limit), remaining=\(decision.remaining), reset=\((decision.resetMilliseconds + 999) / 1000)"
        return response
    }

    /// The subject. What it had to work out is left in the context: the claims of a validly
    /// signed bearer token, and on `/oauth/token` the parsed form.
    func subject(of request: inout Request, context: inout Context) async throws -> String {
        // A client id that is not of the shape Signet issues never names a subject: its
        // requests count against the address, so junk (a NUL, padding) cannot mint fresh keys.
        if let basic = try? ClientCredentials.basicCredentials(request), CredentialHasher.isWellFormedClientID(basic.clientID) {
            return "client:\(basic.clientID)"
        }
        if let bearer = AdminAuthMiddleware.bearerToken(request) {
            if admin.isAdmin(bearer) { return admin.rateLimitSubject }
            if let claims = await keyRing.verify(bearer) {
                context.bearerClaims = claims
                return "agent:\(claims.sub)"
            }
        }
        if request.uri.path == "/oauth/token",
            request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        {
            // Collected once here; the route reads the collected copy. A failure is thrown, never
            // ignored: a half-read body must not be read again.
            let buffer = try await request.collectBody(upTo: OAuthForm.maxBytes)
            if let form = try? OAuthForm.parse(Array(buffer.readableBytesView)) {
                context.oauthForm = form
                if let id = form["client_id"], CredentialHasher.isWellFormedClientID(id) { return "client:\(id)" }
            }
        }
        return "ip:\(context.remoteAddress ?? "unknown")"
    }
}

extension HTTPField.Name {
    static let rateLimitPolicy = HTTPField.Name("RateLimit-Policy")!
    static let rateLimit = HTTPField.Name("RateLimit")!
}
