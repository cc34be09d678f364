import Hummingbird
import Spec

/// The request context of every Signet route: Hummingbird's core context plus the request id
/// that `RequestIDMiddleware` assigns.
public struct SignetRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// What the route is to the layers in front of it, set first (`RouteClassMiddleware`).
    public var routeClass = RouteClass.unmatched
    /// What the limiter counts the request as: its route class, or for a method its route does not
    /// serve, the class of a probe or discovery route its path is.
    var budgetClass = RouteClass.unmatched
    /// The request is to a health or metrics route (whatever its method): its access-log line is
    /// at debug.
    var quietInAccessLog = false
    /// The form of a `POST /oauth/*`, read once by `FormBodyMiddleware`; `formError` when the
    /// body was not a valid form.
    var form: OAuthForm?
    var formError: OAuthError?
    /// Who the request authenticated as, set by `AuthMiddleware` (and narrowed by a guard).
    public var principal: Principal?
    /// Why the credentials the request carried did not authenticate.
    var authFailure: AuthFailure?
    /// Set instead of a principal when the request named a client whose budget is spent: whole
    /// seconds until it may retry. The limiter's middleware answers 429 without asking.
    var clientHeldFor: Int?
    /// The client's own `X-Request-Id`, when it sent a sane one; the server's id is `id`.
    public var clientRequestID: String?
    /// The client's address: the socket's peer, or what a trusted proxy forwarded.
    public var clientAddress: String?
    /// What the limiter counts requests without a principal against: the client's address, an
    /// IPv6 one as its /64 (`TrustedProxies.limiterKey`).
    var limiterAddress = "unknown"
    /// When the first middleware saw the request (the access log's duration starts here).
    var receivedAt = ContinuousClock.now

    /// The socket peer's IP address.
    public let remoteAddress: String?

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// JSON bodies larger than this are refused with 413 before they are parsed.
    public var maxUploadSize: Int { Limits.maxRequestBodyBytes }

    /// The parsed form of a `POST /oauth/*`, or its error.
    func oauthForm() throws -> OAuthForm {
        if let formError { throw formError }
        guard let form else { throw OAuthError(.invalidRequest, "the body must be application/x-www-form-urlencoded") }
        return form
    }
}
