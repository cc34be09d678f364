import HTTPTypes
import Hummingbird
import Metrics

/// Limits every API route (everything but `/health/*` and `/metrics`), after authentication, and
/// puts `RateLimit-Policy` and `RateLimit` (IETF ratelimit-headers draft 07 syntax) on every
/// response of those routes; a rejection is 429 with `Retry-After` and a JSON error.
///
/// Whose budget a request spends is decided by what it proved, never by what it named:
/// - an agent (client credentials or access token): its own (`RATE_LIMIT_MAX_REQUESTS`);
/// - the admin token: the admin's (`RATE_LIMIT_ADMIN_MAX_REQUESTS`);
/// - no principal, failed authentication included: its source address's
///   (`RATE_LIMIT_ADDRESS_MAX_REQUESTS`); once that is spent, the address is held in the
///   `AddressGate` until its retry time and its unauthenticated requests are answered here;
/// - the JWKS and the metadata: the source address's discovery budget
///   (`RATE_LIMIT_DISCOVERY_MAX_REQUESTS`), whoever asks.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let limiter: RateLimiter
    let admin: AdminAuthenticator
    let gate: AddressGate

    static let rejected = Counter(label: "signet_rate_limited_total")

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard !path.hasPrefix("/health/"), path != "/metrics" else { return try await next(request, context) }
        let subject = self.subject(path: path, context: context)
        let decision: RateLimitDecision
        if subject.kind == .address, let retryAfter = gate.retryAfter(context.limiterAddress) {
            decision = RateLimitDecision(
                allowed: false, limit: limiter.budgets[.address], remaining: 0, resetMilliseconds: Int64(retryAfter) * 1000)
        } else {
            decision = await limiter.decide(subject)
            if !decision.allowed, subject.kind == .address {
                gate.block(context.limiterAddress, milliseconds: decision.resetMilliseconds)
            }
        }
        var response: Response
        if decision.allowed {
            response = try await next(request, context)
        } else {
            // Counted, and logged only at debug: a flood of rejected requests must not become a
            // flood of log lines.
            Self.rejected.increment()
            context.logger.debug("rate limited", metadata: ["subject.kind": "\(subject.kind)"])
            response =
                SignetError(
                    .tooManyRequests,
                    "rate_limited",
                    "too many requests; retry after \(decision.retryAfterSeconds) s",
                    headers: [.retryAfter: String(decision.retryAfterSeconds)]
                ).jsonResponse
        }
        response.headers[.rateLimitPolicy] = limiter.policy(subject.kind)
        response.headers[.rateLimit] =
            "limit=\(decision.limit), remaining=\(decision.remaining), reset=\((decision.resetMilliseconds + 999) / 1000)"
        return response
    }

    func subject(path: String, context: Context) -> RateLimitSubject {
        if path == "/.well-known/jwks.json" || path == "/.well-known/oauth-authorization-server" {
            return RateLimitSubject(.discovery, context.limiterAddress)
        }
        switch context.principal {
        case .admin: return admin.subject
        case .agent(let claims): return RateLimitSubject(.agent, claims.sub)
        case .client(let client, _): return client.rateLimitSubject
        case nil: return RateLimitSubject(.address, context.limiterAddress)
        }
    }
}

extension HTTPField.Name {
    static let rateLimitPolicy = HTTPField.Name("RateLimit-Policy")!
    static let rateLimit = HTTPField.Name("RateLimit")!
}
