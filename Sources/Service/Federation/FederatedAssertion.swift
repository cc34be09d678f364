import Foundation
import SignetJOSE
import Spec

/// An assertion of the JWT-bearer grant (RFC 7523 §2.1 and §3) from a trusted issuer, read from
/// the form but not yet trusted. The rules are pure, the instant passed in: `init` reads the
/// issuer and the key it names, `check(audience:at:)` checks the claims a `private_key_jwt`
/// assertion is checked for, against the audience the issuer was registered with. The replay
/// check is the caller's (`ReplayGuard`, keyed by `replayKey`).
///
/// A platform's token (a SPIFFE JWT-SVID, a Kubernetes service-account token) may live longer
/// than the replay window, so the window is kept by freshness instead: `iat` is required and at
/// most `Defaults.clientAssertionMaxLifetimeSeconds` (plus the skew) old, and each `jti` is taken
/// once. An assertion accepted once is remembered for as long as it could be accepted again.
struct FederatedAssertion {
    static let grantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    /// The furthest `exp` an assertion may name: a day.
    static let maxExpirySeconds: Int64 = 86_400

    let jws: CompactJWS
    let algorithm: JWSAlgorithm
    let issuer: String
    let subject: String
    /// The key it names (`kid`), if any.
    let kid: String?

    init(_ token: String) throws(JOSEError) {
        jws = try CompactJWS(token)
        algorithm = try jws.algorithm()
        guard let issuer = jws.string("iss"), !issuer.isEmpty, let subject = jws.string("sub"), !subject.isEmpty else {
            throw JOSEError("the assertion needs iss and sub")
        }
        self.issuer = issuer
        self.subject = subject
        kid = jws.header["kid"] as? String
    }

    /// The key of `keys` that signed it: the one its `kid` names, or the only one when it names
    /// none. At most one signature check.
    func signingKey(in keys: [PublicJWK]) -> PublicJWK? {
        let candidate: PublicJWK? =
            if let kid { keys.first { $0.kid == kid } } else { keys.count == 1 ? keys[0] : nil }
        guard let candidate, jws.isSigned(by: candidate, algorithm: algorithm) else { return nil }
        return candidate
    }

    /// The claims' rules: `aud` names `audience`; `exp` present, in the future, at most a day
    /// ahead; `iat` present, not in the future beyond the skew, and fresh; `nbf`, when present, not
    /// in the future beyond the skew; `jti` present. Returns the replay key.
    func check(audience: String, at now: Date) throws(JOSEError) -> String {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let skew = Int64(Defaults.clockSkewSeconds)
        guard let audiences = jws.audience, audiences.contains(audience) else {
            throw JOSEError("the assertion's aud must name \(audience.prefix(128))")
        }
        guard let expiry = jws.seconds("exp") else { throw JOSEError("the assertion has no exp") }
        guard expiry > seconds else { throw JOSEError("the assertion has expired") }
        guard expiry <= seconds + Self.maxExpirySeconds else { throw JOSEError("the assertion's exp is more than a day ahead") }
        guard let issuedAt = jws.seconds("iat") else { throw JOSEError("the assertion has no iat") }
        guard issuedAt <= seconds + skew else { throw JOSEError("the assertion's iat is in the future") }
        guard issuedAt >= seconds - Int64(Defaults.clientAssertionMaxLifetimeSeconds) - skew else {
            throw JOSEError(
                "the assertion was issued more than \(Defaults.clientAssertionMaxLifetimeSeconds) seconds ago: ask for a fresh one")
        }
        if jws.claims["nbf"] != nil {
            guard let notBefore = jws.seconds("nbf") else { throw JOSEError("the assertion's nbf is not a number") }
            guard notBefore <= seconds + skew else { throw JOSEError("the assertion is not valid yet (nbf)") }
        }
        guard let jti = jws.string("jti"), !jti.isEmpty, jti.utf8.count <= 256 else {
            throw JOSEError("the assertion needs a jti (at most 256 bytes)")
        }
        return "federated\u{0}\(issuer)\u{0}\(jti)"
    }
}
