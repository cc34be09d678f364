import HTTPTypes
import Hummingbird

/// The authentication layer: works out the client's address (`TRUSTED_PROXIES`), then sets at most
/// one principal — the admin, an agent by its access token, or a client by its credentials on
/// `/oauth/*` — or records why the credentials failed. It never answers by itself: the rate
/// limiter runs next and counts the request against the principal, or against the address when
/// there is none; then a route or a guard (`RequireAdmin`, `RequireAdminOrScope`) decides.
///
/// While the address is over its budget (`AddressGate`), nothing that costs a signature
/// verification or a database query is tried.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let admin: AdminAuthenticator
    let accessTokens: AccessTokenAuthenticator
    let clients: ClientCredentialsAuthenticator
    let trustedProxies: TrustedProxies
    let gate: AddressGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.clientAddress = trustedProxies.clientAddress(
            peer: context.remoteAddress, forwardedFor: request.headers[values: .xForwardedFor])
        let path = request.uri.path
        guard !path.hasPrefix("/health/"), path != "/metrics" else { return try await next(request, context) }
        let mayWork = gate.retryAfter(context.limiterAddress) == nil
        if let bearer = request.bearerToken {
            if admin.isAdmin(bearer) {
                context.principal = .admin
            } else if !mayWork {
                context.authFailure = .notTried
            } else if let claims = await accessTokens.authenticate(bearer) {
                context.principal = .agent(claims)
            } else {
                context.authFailure = .invalidBearer
            }
        } else if path.hasPrefix("/oauth/") {
            switch try await clients.authenticate(request, form: context.form ?? OAuthForm(fields: [:]), mayQuery: mayWork) {
            case .none: break
            case .authenticated(let principal): context.principal = principal
            case .failed(let failure): context.authFailure = failure
            }
        }
        return try await next(request, context)
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

/// Routes an agent may call on its own authority: the admin, or an access token that is still
/// live (its credential not revoked or expired, its agent active and not re-activated since,
/// its scopes narrowed to the agent's current ones) and carries `scope`. 401 otherwise (403 for a
/// live token without the scope). The principal is replaced by the live claims.
struct RequireAdminOrScope: RouterMiddleware {
    typealias Context = SignetRequestContext
    let tokens: TokenService
    let scope: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        switch context.principal {
        case .admin:
            break
        case .agent(let claims):
            guard let live = try await tokens.liveClaims(claims) else { throw Self.unauthorized }
            guard live.scopes.contains(scope) else {
                throw SignetError(
                    .forbidden, "insufficient_scope", "the token lacks scope \(scope)",
                    headers: [.wwwAuthenticate: #"Bearer error="insufficient_scope", scope="\#(scope)""#])
            }
            context.principal = .agent(live)
        case .client, nil:
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
