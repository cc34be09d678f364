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
/// checks that every registered route has a class).
public struct RouteClasses: Sendable {
    let table: [String: RouteClass]
    /// The class of each template whose methods all share one.
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

    /// The class of a route the router matched (method and template).
    public func of(method: String, template: String?) -> RouteClass {
        template.flatMap { table["\(method) \($0)"] } ?? .unmatched
    }

    /// The class of a template, or of a path the router matched to no route when it is exactly a
    /// template (`HEAD /health/live`: a method the route does not serve), whatever the method.
    public func of(template: String) -> RouteClass {
        byTemplate[template] ?? .unmatched
    }
}

/// First in the chain: stores the request's route class in its context, and what the limiter
/// counts it as. The router gives no template for a method a route does not serve (answered
/// 405): such a request authenticates nothing (`.unmatched`), but when its path is exactly a
/// probe's or a discovery route's it is as free, or on the same budget, as that route
/// (`budgetClass`). This is the one place a path is looked at.
struct RouteClassMiddleware: RouterMiddleware {
    typealias Context = SignetRequestContext
    let classes: RouteClasses

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.routeClass = classes.of(method: request.method.rawValue, template: context.endpointPath)
        let reached = classes.of(template: context.endpointPath ?? request.uri.path)
        context.budgetClass =
            context.routeClass != .unmatched ? context.routeClass : (reached == .probe || reached == .discovery ? reached : .unmatched)
        context.quietInAccessLog = reached.quietInAccessLog
        return try await next(request, context)
    }
}
