import Hummingbird

/// The errors of RFC 6749 §5.2 (and RFC 7009 §2.2.1), rendered as
/// `{"error": code, "error_description": text}` with `Cache-Control: no-store`.
public struct OAuthError: Error, SignetErrorConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidRequest = "invalid_request"
        case invalidClient = "invalid_client"
        case invalidGrant = "invalid_grant"
        case unauthorizedClient = "unauthorized_client"
        case unsupportedGrantType = "unsupported_grant_type"
        case invalidScope = "invalid_scope"
        case unsupportedTokenType = "unsupported_token_type"
    }

    public let code: Code
    public let description: String
    /// The client tried HTTP Basic: a 401 must say `WWW-Authenticate: Basic`.
    public let basicAttempted: Bool
    /// An `invalid_scope` because the policy refused scopes the agent holds (counted as
    /// `policy_denied` in `signet_token_requests_total`); the answer is the same.
    public var deniedByPolicy = false

    public init(_ code: Code, _ description: String, basicAttempted: Bool = false) {
        self.code = code
        self.description = description
        self.basicAttempted = basicAttempted
    }

    public var signetError: SignetError {
        switch code {
        case .invalidClient:
            SignetError(
                .unauthorized,
                code.rawValue,
                description,
                headers: basicAttempted
                    ? [.wwwAuthenticate: #"Basic realm="signet", charset="UTF-8""#, .pragma: "no-cache"] : [.pragma: "no-cache"]
            )
        default:
            SignetError(.badRequest, code.rawValue, description, headers: [.pragma: "no-cache"])
        }
    }
}
