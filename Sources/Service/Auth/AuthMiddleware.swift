import Foundation
import HTTPTypes
import Hummingbird
import SignetJOSE
import SignetResourceServer

/// The authentication layer: works out the client's address (`TRUSTED_PROXIES`), then sets at most
/// one principal — the admin by its token, or a client by its credentials on `/oauth/*` and on its
/// own credential rotation — or records why the credentials failed. It never answers by itself:
/// the rate limiter runs next and counts the request against the principal, or against the
/// address when there is none; then a route or a guard (`RequireAdmin`, `RequireAdminOrOwnClient`)
/// decides.
///
/// An access token authenticates nothing here: every resource server, proxy and log it passed
/// through holds it. A bearer token that is not the admin's is not even verified (no signature
/// check, no query) and counts against its sender's address. The JWKS, the metadata and the
/// health routes authenticate nothing.
///
/// What the limiter refuses costs no work: while the address is over its budget (`AddressGate`)
/// no client is read from the database, and while a client's own budget is spent (`clientHolds`,
/// filled by the limiter's refusals) a request naming it is neither looked up nor checked and is
/// answered 429 by the limiter's middleware. An address may have at most
/// `AddressGate.concurrentWork` client lookups under way at once (a request past that waits
/// briefly for a slot, then is answered 503 with `Retry-After`); a dependency failing during
/// authentication is recorded (`.unavailable`) so the request is still counted before it is
/// answered 503.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let admin: AdminAuthenticator
    let clients: ClientCredentialsAuthenticator
    let trustedProxies: TrustedProxies
    let gate: AddressGate
    /// Client ids whose agent is over its budget, until the limiter said it may retry.
    let clientHolds: AddressGate
    /// `METRICS_TOKEN` and `HEALTH_DETAILED_TOKEN`: on the public listener, `/metrics` and
    /// `/health/detailed` answer only the principal `.operations` their token makes.
    let operations: OperationsTokens
    /// DPoP-bound access tokens on the token-authority route (credential rotation): the
    /// resource-server library's verifier, with Signet's own keys and liveness, taking no bearer
    /// token. Nil: no token is taken there.
    var tokens: TokenAuthority?
    /// The JWT-bearer grant's assertions from trusted issuers, on `/oauth/token`.
    var federation: FederationAuthenticator?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let address = trustedProxies.clientAddress(peer: context.remoteAddress, forwardedFor: request.headers[values: .xForwardedFor])
        context.clientAddress = address
        context.limiterAddress = address.map(TrustedProxies.limiterKey) ?? "unknown"
        switch context.routeClass {
        case .operations, .metrics:
            // An operations route: its own token or nothing (a failure counts against the address).
            if let bearer = request.bearerToken {
                let token = operations.token(for: context.routeClass)
                if token?.matches(bearer) == true { context.principal = .operations } else { context.authFailure = .invalidBearer }
            }
            return try await next(request, context)
        case .probe, .discovery:
            // Nothing to authenticate, and not worth a verification.
            return try await next(request, context)
        case .oauth, .tokenAuthority, .admin, .document, .unmatched:
            break
        }
        do {
            if context.routeClass == .tokenAuthority, let tokens, request.headers[.authorization]?.lowercased().hasPrefix("dpop ") == true {
                // The agent's budget spent: no verification for the limiter to refuse (the client id is
                // read unverified, only to find its hold).
                if let named = TokenAuthority.namedClient(request), let retryAfter = clientHolds.retryAfter(named) {
                    context.clientHeldFor = retryAfter
                    return try await next(request, context)
                }
                // Only while the address may cost work: a verification reads the database.
                guard gate.retryAfter(context.limiterAddress) == nil else {
                    context.authFailure = .notTried
                    return try await next(request, context)
                }
                switch try await tokens.authenticate(
                    request, admission: ClientDirectory.Admission(gate: gate, address: context.limiterAddress))
                {
                case .success(let principal): context.principal = principal
                case .failure(let challenge): context.authFailure = .tokenRefused(challenge)
                }
            } else if let bearer = request.bearerToken {
                context.principal = admin.isAdmin(bearer) ? .admin : nil
                if context.principal == nil { context.authFailure = .invalidBearer }
            } else if context.routeClass == .oauth, let federation, let form = context.form,
                form["grant_type"] == FederatedAssertion.grantType
            {
                guard request.headers[.authorization] == nil, form["client_secret"] == nil, form["client_assertion"] == nil else {
                    context.authFailure = .malformed(
                        OAuthError(.invalidRequest, "the jwt-bearer grant authenticates by its assertion: send no client credentials"))
                    return try await next(request, context)
                }
                // Only while the address may cost work: an assertion costs a signature check and a query.
                guard gate.retryAfter(context.limiterAddress) == nil else {
                    context.authFailure = .notTried
                    return try await next(request, context)
                }
                switch try await federation.authenticate(
                    form, holds: clientHolds, admission: ClientDirectory.Admission(gate: gate, address: context.limiterAddress))
                {
                case .authenticated(let client, let issuer): context.principal = .federated(client, issuer: issuer)
                case .held(let retryAfter): context.clientHeldFor = retryAfter
                case .failed(let failure): context.authFailure = failure
                }
            } else if context.routeClass.takesClientCredentials {
                let form = context.form ?? OAuthForm(fields: [:])
                // A client assertion is read once, here: its client may be held, and authentication needs it.
                let assertion = form["client_assertion"].flatMap { try? ClientAssertion($0) }
                let named =
                    ClientCredentials.namedClient(request, form: form)
                    ?? assertion.map(\.clientID).flatMap { CredentialHasher.isWellFormedClientID($0) ? $0 : nil }
                if let named, let retryAfter = clientHolds.retryAfter(named) {
                    // The agent's budget is spent: no lookup, no secret check for the limiter to refuse.
                    context.clientHeldFor = retryAfter
                    return try await next(request, context)
                }
                let mayWork = gate.retryAfter(context.limiterAddress) == nil
                let admission = ClientDirectory.Admission(gate: gate, address: context.limiterAddress)
                switch try await clients.authenticate(request, form: form, mayQuery: mayWork, admission: admission, assertion: assertion) {
                case .none: break
                case .authenticated(let principal): context.principal = principal
                case .failed(let failure): context.authFailure = failure
                }
            }
        } catch {
            context.principal = nil
            context.authFailure = .unavailable(error)
        }
        return try await next(request, context)
    }

}

/// The operations tokens, by the route each opens on the public listener.
struct OperationsTokens: Sendable {
    let metrics: SecretToken?
    let health: SecretToken?

    init(metrics: String?, health: String?) {
        self.metrics = metrics.map(SecretToken.init)
        self.health = health.map(SecretToken.init)
    }

    /// The token of an operations route class (nil when none is configured: nothing opens it).
    func token(for route: RouteClass) -> SecretToken? {
        switch route {
        case .metrics: metrics
        case .operations: health
        default: nil
        }
    }
}

/// Reads the form of a `POST /oauth/*` (and of a rotation sent as a form) once, bounded, before
/// authentication (client credentials may be in it); the route reads the parsed copy. A body that is not a valid form is kept as an
/// error for the route to answer, after the limiter has counted the request.
struct FormBodyMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post else { return try await next(request, context) }
        let isForm = request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        guard context.routeClass == .oauth || (context.routeClass == .tokenAuthority && isForm) else {
            return try await next(request, context)
        }
        var request = request
        var context = context
        do {
            context.form = try await OAuthForm.read(&request, context: context)
        } catch let error as OAuthError {
            context.formError = error
        } catch {
            context.formError = OAuthError(.invalidRequest, "the body could not be read whole")
        }
        return try await next(request, context)
    }
}

/// The admin API: the admin principal, else 401.
struct RequireAdmin: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard case .admin = context.principal else {
            throw SignetError(
                .unauthorized, "unauthorized", "a valid admin bearer token is required",
                headers: [.wwwAuthenticate: #"Bearer realm="signet-admin""#])
        }
        return try await next(request, context)
    }
}

/// Routes an agent may call on its own registration (its credential rotation): the admin, or the
/// agent itself by its client credentials (`client_secret_basic`, or `client_id` and
/// `client_secret` in a form body), active and registered with `scope`. An access token is never
/// enough: 401 for anything else, 403 for a client acting on another agent or lacking the scope.
struct RequireAdminOrOwnClient: RouterMiddleware {
    typealias Context = SignetRequestContext
    let scope: String
    /// Counts a wrong secret for a known client in the audit trail, as `/oauth/token` does.
    let tokens: TokenService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch context.principal {
        case .admin:
            break
        case .federated:
            throw Self.unauthorized
        case .client(let client, _):
            guard client.status == .active else {
                throw SignetError(.forbidden, "forbidden", "the agent is \(client.status.rawValue)")
            }
            guard let id = context.parameters.get("id"), AgentStore.normalisedID(id) == AgentStore.normalisedID(client.agentID) else {
                throw SignetError(.forbidden, "forbidden", "an agent may act only on its own registration")
            }
            guard client.scopes.contains(scope) else {
                throw SignetError(.forbidden, "insufficient_scope", "the agent is not registered with scope \(scope)")
            }
        case nil, .operations:
            if case .unavailable(let error) = context.authFailure { throw error }
            if case .malformed(let error) = context.authFailure {
                throw SignetError(.badRequest, "invalid_request", error.description, headers: Self.challenge)
            }
            if case .tokenRefused(let challenge) = context.authFailure { throw challenge.signetError }
            if case .invalidClient(let method, let known?, let reason) = context.authFailure {
                await tokens.deny(
                    known, reason: TokenService.denialReason(method: method, reason: reason) + " on rotation",
                    audit: context.audit(actor: "client:\(known.clientID)"), logger: context.logger)
            }
            throw Self.unauthorized
        }
        return try await next(request, context)
    }

    static let challenge: HTTPFields = {
        var fields: HTTPFields = [.wwwAuthenticate: #"Basic realm="signet", charset="UTF-8""#]
        fields.append(HTTPField(name: .wwwAuthenticate, value: #"DPoP algs="ES256 EdDSA""#))
        return fields
    }()

    static let unauthorized = SignetError(
        .unauthorized,
        "unauthorized",
        "the admin token, or the agent's own client credentials (HTTP Basic, client_id and client_secret in a form, or a client"
            + " assertion), or its DPoP-bound access token with a proof (Authorization: DPoP) are required; a bearer token is not accepted",
        headers: challenge
    )
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// DPoP-bound access tokens on Signet's token-authority route (RFC 9449 §7): verified by the
/// resource-server library (`AccessTokenVerifier`: Signet's keys, its audience, no bearer token,
/// the proof's `ath`, its `jti` through the replay guard, liveness from the database), for a
/// token carrying `scope`; the principal is then the token's client with the credential it was
/// minted with.
struct TokenAuthority: Sendable {
    let verifier: AccessTokenVerifier
    let directory: ClientDirectory
    let issuer: String
    let scope: String
    let now: @Sendable () -> Date

    /// The client id a DPoP token names, unverified: only to find a hold on its agent.
    static func namedClient(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.count > 5,
            let named = (try? CompactJWS(String(header.dropFirst(5)).trimmingCharacters(in: .whitespaces)))?.string("client_id"),
            CredentialHasher.isWellFormedClientID(named)
        else { return nil }
        return named
    }

    func authenticate(_ request: Request, admission: ClientDirectory.Admission) async throws -> Result<Principal, Challenge> {
        let token: VerifiedAccessToken
        do {
            token = try await verifier.verify(
                authorization: request.headers[.authorization], dpop: request.headers[values: .dpop], method: request.method.rawValue,
                url: issuer + request.uri.path, requiredScopes: [scope])
        } catch {
            return .failure(error)
        }
        let client: ClientRecord?
        do {
            client = try await directory.lookup(token.clientID, admission: admission).record
        } catch is ClientDirectory.LookupRefused {
            throw SignetError.unavailable("too many client lookups from this address at once; retry shortly")
        }
        guard let client, client.agentID == token.subject,
            let credential = client.credentials.first(where: { $0.id == token.credentialID && $0.isLive(at: now()) })
        else {
            return .failure(verifier.challenge(401, "invalid_token", "the token's credential is no longer live", scheme: "DPoP"))
        }
        return .success(.client(client, credential))
    }
}

extension Challenge {
    /// The answer: its status, the OAuth error and the challenges.
    var signetError: SignetError {
        var headers = HTTPFields()
        for value in wwwAuthenticate { headers.append(HTTPField(name: .wwwAuthenticate, value: value)) }
        if let dpopNonce { headers[.dpopNonce] = dpopNonce }
        let status: HTTPResponse.Status =
            switch status {
            case 400: .badRequest
            case 403: .forbidden
            case 503: .serviceUnavailable
            default: .unauthorized
            }
        return SignetError(status, error ?? "unauthorized", description, headers: headers)
    }
}
