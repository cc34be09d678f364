import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SignetResourceServer
import Spec

/// Every route of the public listener and its class: what the layers in front of the routes
/// (authentication, the form reader, the limiter, the access log) need to know of it. A route
/// registered in `buildRouter` without an entry here is `.unmatched` to them, and a test fails.
public let publicRouteClasses = RouteClasses([
    "GET /health/live": .probe,
    "GET /health/ready": .probe,
    "GET /health/detailed": .operations,
    "GET /metrics": .metrics,
    "GET /.well-known/jwks.json": .discovery,
    "GET /.well-known/oauth-authorization-server": .discovery,
    "POST /oauth/token": .oauth,
    "POST /oauth/introspect": .oauth,
    "POST /oauth/revoke": .oauth,
    "POST /v1/agents/{id}/credentials/rotate": .tokenAuthority,
    "GET /openapi.yaml": .document,
    "POST /v1/agents": .admin,
    "GET /v1/agents": .admin,
    "GET /v1/agents/{id}": .admin,
    "PATCH /v1/agents/{id}": .admin,
    "DELETE /v1/agents/{id}": .admin,
    "GET /v1/agents/{id}/credentials": .admin,
    "DELETE /v1/agents/{id}/credentials/{cid}": .admin,
    "POST /v1/keys/rotate": .admin,
    "GET /v1/audit": .admin,
    "POST /v1/trusted-issuers": .admin,
    "GET /v1/trusted-issuers": .admin,
    "DELETE /v1/trusted-issuers/{id}": .admin,
])

/// The public listener's router. In order: the route class; request metrics; the request id;
/// request limits; the OAuth form read once; authentication (one principal, or none); the access
/// log; the limiter (keyed on the principal, or on the address); errors of the routes as JSON, so
/// they carry the limiter's headers. The form and authentication layers never throw: what fails
/// there is kept in the context and answered by the route once the limiter has counted it.
public func buildRouter(services: Services, configuration: SignetConfiguration) -> Router<SignetRequestContext> {
    let pool = services.pool
    let admin = AdminAuthenticator(adminToken: configuration.adminToken)
    let router = Router(context: SignetRequestContext.self)
    let routeTable = RouteTable()
    router.add(middleware: RouteClassMiddleware(classes: publicRouteClasses))
    router.add(middleware: MetricsMiddleware(metrics: services.metrics))
    router.add(middleware: RequestIDMiddleware(instanceID: configuration.instanceID))
    router.add(middleware: RequestLimitsMiddleware())
    router.add(middleware: FormBodyMiddleware())
    router.add(
        middleware: AuthMiddleware(
            admin: admin,
            clients: ClientCredentialsAuthenticator(
                directory: services.directory, now: services.now, replay: services.limiter, issuer: configuration.issuer),
            trustedProxies: configuration.trustedProxies,
            gate: services.addressGate,
            clientHolds: services.clientHolds,
            operations: OperationsTokens(metrics: configuration.metricsToken, health: configuration.healthDetailedToken),
            tokens: services.tokenAuthority(configuration),
            federation: FederationAuthenticator(
                issuers: services.trustedIssuers, directory: services.directory, pool: pool, replay: services.limiter,
                now: services.now)
        ))
    if configuration.accessLog { router.add(middleware: AccessLogMiddleware()) }
    router.add(
        middleware: RateLimitMiddleware(
            limiter: services.limiter, admin: admin, gate: services.addressGate, clientHolds: services.clientHolds,
            metrics: services.metrics))
    router.add(middleware: ErrorMiddleware(routes: routeTable))

    services.healthRoutes.add(
        to: router.group("health"),
        detailedGuard: RequireOperations(variable: "HEALTH_DETAILED_TOKEN", tokenConfigured: configuration.healthDetailedToken != nil))
    services.metricsRoutes.add(
        to: router, guard: RequireOperations(variable: "METRICS_TOKEN", tokenConfigured: configuration.metricsToken != nil))
    OAuthRoutes(tokens: services.tokens, issuer: configuration.issuer).add(to: router)
    router.get("/openapi.yaml") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
    }

    // The stores announce each client they change, after commit, to this instance's cache.
    let changed: @Sendable (String) -> Void = { [directory = services.directory] in directory.invalidate(clientID: $0) }
    var credentialStore = CredentialStore(pool: pool, hasher: services.hasher, now: services.now)
    credentialStore.changed = changed
    var agentStore = AgentStore(pool: pool, hasher: services.hasher)
    agentStore.changed = changed
    let credentials = CredentialRoutes(store: credentialStore)
    let adminAPI = router.group("v1").add(middleware: RequireAdmin())
    AgentRoutes(store: agentStore).add(to: adminAPI.group("agents"))
    credentials.addAdminRoutes(to: adminAPI.group("agents/{id}/credentials"))
    KeyRoutes(store: services.secrets, keyRing: services.keyRing, tokenTTL: configuration.tokenTTL).add(to: adminAPI.group("keys"))
    AuditRoutes(pool: pool).add(to: adminAPI.group("audit"))
    var issuerStore = TrustedIssuerStore(pool: pool)
    issuerStore.changed = { [issuers = services.trustedIssuers] in issuers.invalidate() }
    TrustedIssuerRoutes(store: issuerStore, allowHTTP: configuration.trustedIssuerAllowHTTP).add(
        to: adminAPI.group("trusted-issuers"))
    credentials.addRotateRoute(
        to: router.group("v1/agents/{id}/credentials/rotate").add(
            middleware: RequireAdminOrOwnClient(scope: Scopes.credentialsRotate, tokens: services.tokens))
    )

    let routes = router.routes.map { (method: $0.method.rawValue, path: $0.path.description) }
    routeTable.register(routes)
    services.onRoutes?(routes)
    return router
}

/// The operations listener's router (`OPS_HOST`:`OPS_PORT`, loopback by default): `/health/*` and
/// `/metrics` without tokens, for the scraper and the balancer's checks; nothing else. No limiter
/// and no authentication: it must not be reachable from where the public listener is.
func buildOperationsRouter(services: Services, configuration: SignetConfiguration) -> Router<SignetRequestContext> {
    let router = Router(context: SignetRequestContext.self)
    router.add(middleware: RequestIDMiddleware(instanceID: configuration.instanceID))
    // The same routes (one readiness memory: a change is logged once), open here.
    services.healthRoutes.add(to: router.group("health"), detailedGuard: nil)
    services.metricsRoutes.add(to: router, guard: nil)
    return router
}

extension Services {
    /// The token-authority route's DPoP-bound tokens (`TokenAuthority`).
    func tokenAuthority(_ configuration: SignetConfiguration) -> TokenAuthority {
        var settings = AccessTokenVerifier.Settings(
            issuer: configuration.issuer, audience: configuration.tokenAudience, acceptsBearer: false)
        settings.clockSkewSeconds = Int64(Defaults.clockSkewSeconds)
        let verifier = AccessTokenVerifier(
            settings: settings, keys: keyRing, replay: limiter, liveness: tokens, nonces: tokens.dpopNonces, now: now)
        return TokenAuthority(
            verifier: verifier, directory: directory, issuer: configuration.issuer, scope: Scopes.credentialsRotate, now: now)
    }

    var metricsRoutes: MetricsRoutes { MetricsRoutes(metrics: metrics, pool: pool, limiter: limiter, health: health) }
}
