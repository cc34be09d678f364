import JWTKit

/// The claims of a Signet access token (RFC 9068). Times are whole seconds since the epoch.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var iss: String
    public var sub: String
    public var aud: String
    public var client_id: String
    public var scope: String
    public var iat: Int64
    public var exp: Int64
    public var jti: String

    /// Checks nothing by itself: expiry, issuer and revocation are checked by the caller against
    /// an injected clock and the database.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The scopes as a list.
    public var scopes: [String] { scope.split(separator: " ").map(String.init) }
}
