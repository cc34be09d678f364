import Hummingbird

/// What a route is to the layers in front of it (authentication, the form reader, the limiter,
/// the access log): each switches on its class, never on a path. `RouteClassMiddleware`, first in
/// the chain, looks the request's route template and method up in the table beside the route
/// registrations (`Routes.classes`) and stores the class in the request context.
public enum RouteClass: String, Sendable, CaseIterable {
    /// `/health/live` and `/health/ready`: the balancer's; open, cheap, neither authenticated nor
    /// limited.
    case probe
    /// `/health/detailed`: open on the operations listener; on the public one only with
    /// `HEALTH_DETAILED_TOKEN` (the principal `.operations`).
    case operations
    /// `/metrics`: open on the operations listener; on the public one only with `METRICS_TOKEN`.
    case metrics
    /// The JWKS and the authorization server metadata: open, on the address's discovery budget.
    case discovery
    /// `/oauth/*`: a form body; the client's credentials (HTTP Basic or the form) or the admin token.
    case oauth
    /// What an agent does on its own registration at the token authority (its credential
    /// rotation): its client credentials (HTTP Basic, or a form) or the admin token.
    case tokenAuthority
    /// The admin API under `/v1`: the admin token.
    case admin
    /// Open documents (`/openapi.yaml`): a bearer is checked when sent, as on the admin API.
    case document
    /// No route serves this method and path: the router answers 404 or 405.
    case unmatched

    /// Whether a client authenticates here with its client credentials (not only a bearer).
    var takesClientCredentials: Bool { self == .oauth || self == .tokenAuthority }

    /// Logged at debug only (a flood of scrapes or health checks is not a flood of lines).
    var quietInAccessLog: Bool { self == .probe || self == .operations || self == .metrics }
}

/// The route classes by method and route template; a route missing here is `.unmatched` (a test
/// checks that every registered route has a class). A method the template is not served under
/// (answered 405) authenticates nothing and is `.unmatched`, except on the routes that are free or
/// have a budget of their own whatever is asked (`.probe`, `.discovery`): `HEAD /health/live` is
/// as free as `GET`.
public struct RouteClasses: Sendable {
    let table: [String: RouteClass]
    let byTemplate: [String: RouteClass]

    public init(_ table: [String: RouteClass]) {
        self.table = table
        var byTemplate: [String: RouteClass] = [:]
        var mixed: Set<String> = []
        for (route, routeClass) in table {
            guard let space = route.firstIndex(of: " ") else { continue }
            let template = String(route[route.index(after: space)...])
            if let known = byTemplate[template], known != routeClass { mixed.insert(template) }
            byTemplate[template] = routeClass
        }
        for template in mixed { byTemplate[template] = .unmatched }
        self.byTemplate = byTemplate
    }

    /// Every "METHOD template" with a class.
    public var routes: Set<String> { Set(table.keys) }

    public func of(method: String, template: String?) -> RouteClass {
        guard let template else { return .unmatched }
        if let exact = table["\(method) \(template)"] { return exact }
        let route = byTemplate[template] ?? .unmatched
        return route == .probe || route == .discovery ? route : .unmatched
    }

    /// The class of the template, whatever the method (for how loudly a request is logged).
    public func of(template: String?) -> RouteClass {
        template.flatMap { byTemplate[$0] } ?? .unmatched
    }
}

/// First in the chain: stores the request's route class in its context. A request for a method
/// its route does not serve has no template from the router; its path is matched against the
/// registered templates (`RouteTable`), so it is still that route's.
struct RouteClassMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let classes: RouteClasses
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let template = context.endpointPath ?? routes.template(for: request.uri.path)
        context.routeClass = classes.of(method: request.method.rawValue, template: template)
        context.quietInAccessLog = classes.of(template: template).quietInAccessLog
        return try await next(request, context)
    }
}
