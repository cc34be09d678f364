import Hummingbird
import Spec

/// The request context of every Signet route: Hummingbird's core context plus the request id
/// that `RequestIDMiddleware` assigns.
public struct SignetRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The `/oauth/token` form, when the rate limiter already parsed it to find the client.
    var oauthForm: OAuthForm?
    /// The claims of the request's bearer token once the rate limiter has checked its signature,
    /// so an authentication middleware does not check it again.
    var bearerClaims: AccessTokenClaims?
    /// Who the request authenticated as, once an authentication middleware has run.
    public var principal: Principal?

    /// The peer's IP address, for rate limiting anonymous requests.
    public let remoteAddress: String?

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// JSON bodies larger than this are refused with 413 before they are parsed.
    public var maxUploadSize: Int { Limits.maxRequestBodyBytes }
}
