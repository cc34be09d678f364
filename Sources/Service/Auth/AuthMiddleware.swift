import HTTPTypes
import Hummingbird

/// The authentication layer: works out the client's address (`TRUSTED_PROXIES`), then sets at most
/// one principal — the admin, an agent by its access token, or a client by its credentials on
/// `/oauth/*` — or records why the credentials failed. It never answers by itself: the rate
/// limiter runs next and counts the request against the principal, or against the address when
/// there is none; then a route or a guard (`RequireAdmin`, `RequireAdminOrScope`) decides.
///
/// An access token is a principal only on the routes that act on its authority (credential
/// rotation): there the authenticator checks it without the database, then its liveness is read
/// (`TokenService.liveClaims`), so a revoked, suspended or descoped token counts against its
/// sender's address, never against the agent's quota. Anywhere else a bearer token that is not
/// the admin's is not even verified: those routes do not take it. The JWKS, the metadata and the
/// health routes authenticate nothing.
///
/// While the address is over its budget (`AddressGate`), nothing that costs a signature
/// verification or a database query is tried, and an address may have at most
/// `AddressGate.concurrentWork` client lookups under way at once (a request past that is answered
/// 503 with `Retry-After` and counts against the address); a dependency failing during authentication is
/// recorded (`.unavailable`) so the request is still counted before it is answered 503.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let admin: AdminAuthenticator
    let accessTokens: AccessTokenAuthenticator
    let clients: ClientCredentialsAuthenticator
    let tokens: TokenService
    let trustedProxies: TrustedProxies
    let gate: AddressGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let address = trustedProxies.clientAddress(peer: context.remoteAddress, forwardedFor: request.headers[values: .xForwardedFor])
        context.clientAddress = address
        context.limiterAddress = address.map(TrustedProxies.limiterKey) ?? "unknown"
        let path = request.uri.path
        guard !Self.authenticatesNothing(path) else { return try await next(request, context) }
        let mayWork = gate.retryAfter(context.limiterAddress) == nil
        do {
            if let bearer = request.bearerToken {
                if admin.isAdmin(bearer) {
                    context.principal = .admin
                } else if !Self.takesAccessTokens(path) {
                    context.authFailure = .invalidBearer
                } else if !mayWork {
                    context.authFailure = .notTried
                } else if let claims = await accessTokens.authenticate(bearer), let live = try await tokens.liveClaims(claims) {
                    context.principal = .agent(live)
                } else {
                    context.authFailure = .invalidBearer
                }
            } else if path.hasPrefix("/oauth/") {
                let admission = ClientDirectory.Admission(gate: gate, address: context.limiterAddress)
                switch try await clients.authenticate(
                    request, form: context.form ?? OAuthForm(fields: [:]), mayQuery: mayWork, admission: admission)
                {
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

    /// Routes that need no principal and are not worth a verification: discovery and health.
    static func authenticatesNothing(_ path: String) -> Bool {
        path.hasPrefix("/health/") || path == "/metrics" || path.hasPrefix("/.well-known/")
    }

    /// Routes an agent may call with its access token: `/v1/agents/{id}/credentials/rotate`.
    static func takesAccessTokens(_ path: String) -> Bool {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return segments.count == 5 && segments[0] == "v1" && segments[1] == "agents" && segments[3] == "credentials"
            && segments[4] == "rotate"
    }
}

/// Reads the form of a `POST /oauth/*` once, bounded, before authentication (client credentials
/// may be in it); the route reads the parsed copy. A body that is not a valid form is kept as an
/// error for the route to answer, after the limiter has counted the request.
struct FormBodyMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post, request.uri.path.hasPrefix("/oauth/") else { return try await next(request, context) }
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

/// Routes an agent may call on its own authority: the admin, or a live access token (checked by
/// `AuthMiddleware`) that carries `scope`. 401 otherwise (403 for a live token without the scope).
struct RequireAdminOrScope: RouterMiddleware {
    typealias Context = SignetRequestContext
    let scope: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch context.principal {
        case .admin:
            break
        case .agent(let claims):
            // Already found live by the authentication layer.
            guard claims.scopes.contains(scope) else {
                throw SignetError(
                    .forbidden, "insufficient_scope", "the token lacks scope \(scope)",
                    headers: [.wwwAuthenticate: #"Bearer error="insufficient_scope", scope="\#(scope)""#])
            }
        case .client, nil:
            if case .unavailable(let error) = context.authFailure { throw error }
            throw Self.unauthorized
        }
        return try await next(request, context)
    }

    static let unauthorized = SignetError(
        .unauthorized,
        "unauthorized",
        "the admin token or a live agent access token is required",
        headers: [.wwwAuthenticate: #"Bearer realm="signet""#]
    )
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
