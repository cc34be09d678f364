import Foundation
import JWTKit
import Spec

/// The claims of a Signet access token (RFC 9068), plus `credential_id`, the credential the token
/// was minted with, and `generation`, the agent's token generation when it was issued: revoking
/// that credential, or a suspension or a removed scope (which bump the generation), ends the token
/// at once on Signet's endpoints.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var iss: String
    public var sub: String
    public var aud: String
    public var client_id: String
    public var scope: String
    public var iat: Int64
    public var exp: Int64
    public var jti: String
    /// Absent in tokens minted before tokens were bound to their credential.
    public var credential_id: String?
    /// Absent in those tokens too: generation 0.
    public var generation: Int?
    /// Not set by Signet; checked when present.
    public var nbf: Int64?

    public init(
        iss: String, sub: String, aud: String, client_id: String, scope: String, iat: Int64, exp: Int64, jti: String,
        credential_id: String? = nil, generation: Int? = nil, nbf: Int64? = nil
    ) {
        self.generation = generation
        self.iss = iss
        self.sub = sub
        self.aud = aud
        self.client_id = client_id
        self.scope = scope
        self.iat = iat
        self.exp = exp
        self.jti = jti
        self.credential_id = credential_id
        self.nbf = nbf
    }

    /// Checks nothing by itself: times, issuer and audience are checked by `isCurrent` against an
    /// injected clock, revocation and liveness against the database.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The scopes as a list.
    public var scopes: [String] { scope.split(separator: " ").map(String.init) }

    /// Whether the token is for `issuer` and `audience` and valid at `now`: not expired, not
    /// before its `nbf`, not issued in the future (each with `Spec.Defaults.clockSkewSeconds` of
    /// slack for the clocks of other instances, none for `exp`).
    public func isCurrent(issuer: String, audience: String, at now: Date) -> Bool {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let skew = Int64(Defaults.clockSkewSeconds)
        return iss == issuer && aud == audience && exp > seconds && iat <= seconds + skew && (nbf ?? .min) <= seconds + skew
    }
}
