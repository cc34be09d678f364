import HTTPTypes
import Hummingbird

/// Limits every route but liveness, readiness and the operations routes opened by their token
/// (a failed or missing operations token counts against the address), after authentication, and
/// puts `RateLimit-Policy` and `RateLimit` (IETF ratelimit-headers draft 07 syntax) on every
/// response of those routes; a rejection is 429 with `Retry-After` and a JSON error.
///
/// Whose budget a request spends is decided by what it proved, never by what it named:
/// - an agent (by its client credentials): its own (`RATE_LIMIT_MAX_REQUESTS`); once that is
///   spent, its client id is held in `clientHolds` until its retry time, and a request naming it
///   is answered here before it is looked up or checked (`AuthMiddleware`);
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
    let clientHolds: AddressGate

    let metrics: SignetMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Liveness and readiness are cheap and the balancer's; an operations token is the operator's.
        if context.budgetClass == .probe { return try await next(request, context) }
        if case .operations = context.principal { return try await next(request, context) }
        let subject = context.clientHeldFor == nil ? self.subject(context) : RateLimitSubject(.agent, "held")
        let decision: RateLimitDecision
        if let retryAfter = context.clientHeldFor {
            decision = RateLimitDecision(
                allowed: false, limit: limiter.budgets[.agent], remaining: 0, resetMilliseconds: Int64(retryAfter) * 1000)
        } else if subject.kind == .address, let retryAfter = gate.retryAfter(context.limiterAddress) {
            decision = RateLimitDecision(
                allowed: false, limit: limiter.budgets[.address], remaining: 0, resetMilliseconds: Int64(retryAfter) * 1000)
        } else {
            decision = await limiter.decide(subject)
            if !decision.allowed {
                switch context.principal {
                case .client(let client, _), .federated(let client, _):
                    clientHolds.block(client.clientID, milliseconds: decision.resetMilliseconds)
                case nil where subject.kind == .address: gate.block(context.limiterAddress, milliseconds: decision.resetMilliseconds)
                default: break
                }
            }
        }
        var response: Response
        if decision.allowed {
            response = try await next(request, context)
        } else {
            // Counted, and logged only at debug: a flood of rejected requests must not become a
            // flood of log lines.
            metrics.rateLimited.increment()
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

    func subject(_ context: Context) -> RateLimitSubject {
        if context.budgetClass == .discovery { return RateLimitSubject(.discovery, context.limiterAddress) }
        switch context.principal {
        case .admin: return admin.subject
        case .client(let client, _), .federated(let client, _): return client.rateLimitSubject
        case nil, .operations: return RateLimitSubject(.address, context.limiterAddress)
        }
    }
}

extension HTTPField.Name {
    static let rateLimitPolicy = HTTPField.Name("RateLimit-Policy")!
    static let rateLimit = HTTPField.Name("RateLimit")!
}
