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
        /// RFC 8707 §2: a resource the client may not ask for, or not an absolute URI.
        case invalidTarget = "invalid_target"
        /// RFC 9449 §5: a DPoP proof missing, invalid, or replayed.
        case invalidDPoPProof = "invalid_dpop_proof"
        /// RFC 9449 §8: the proof must carry the server's nonce (given in `DPoP-Nonce`).
        case useDPoPNonce = "use_dpop_nonce"
    }

    public let code: Code
    public let description: String
    /// The client tried HTTP Basic: a 401 must say `WWW-Authenticate: Basic`.
    public let basicAttempted: Bool
    /// An `invalid_scope` because the policy refused scopes the agent holds (counted as
    /// `policy_denied` in `signet_token_requests_total`); the answer is the same.
    public var deniedByPolicy = false
    /// Extra headers of the answer (`DPoP-Nonce`).
    public var headers: HTTPFields = [:]

    public init(_ code: Code, _ description: String, basicAttempted: Bool = false) {
        self.code = code
        self.description = description
        self.basicAttempted = basicAttempted
    }

    private var withPragma: HTTPFields {
        var fields = headers
        fields[.pragma] = "no-cache"
        return fields
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
            SignetError(.badRequest, code.rawValue, description, headers: withPragma)
        }
    }
}
