import Foundation
import SignetJOSE
import Spec

/// A `private_key_jwt` client assertion (RFC 7523 §2.2 and §3, OIDC Core §9), read from the form
/// but not yet trusted. The rules are pure, the instant passed in: `init` reads the client it
/// names, `credential(of:at:)` finds the live credential whose key signed it, `check(audiences:at:)`
/// checks its claims; the replay check is the caller's (`ReplayGuard`, keyed by `replayKey`).
struct ClientAssertion {
    static let type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    let jws: CompactJWS
    let algorithm: JWSAlgorithm
    /// `iss`, which must equal `sub`: the client the assertion authenticates.
    let clientID: String

    /// Reads the assertion: a compact JWS with an accepted `alg` (no `none`, no HMAC) whose `iss`
    /// and `sub` are one client id.
    init(_ token: String) throws(JOSEError) {
        jws = try CompactJWS(token)
        algorithm = try jws.algorithm()
        guard let issuer = jws.string("iss"), let subject = jws.string("sub") else {
            throw JOSEError("the client assertion needs iss and sub (the client id)")
        }
        guard issuer == subject else { throw JOSEError("the client assertion's iss and sub must both be the client id") }
        clientID = subject
    }

    /// The live credential of `client` whose key signed the assertion: the key its `kid` names
    /// (at most one per credential), or, without a `kid`, the one key of the client's live
    /// credentials when there is exactly one. Nil when none did: at most two signatures are
    /// checked, whatever the client registered and whoever sends the assertion.
    func credential(of client: ClientRecord, at now: Date) -> ClientRecord.Credential? {
        let live = client.credentials.reversed().filter { $0.isLive(at: now) && $0.keys != nil }
        guard let kid = jws.header["kid"] as? String else {
            guard live.count == 1, let keys = live[0].keys, keys.keys.count == 1 else { return nil }
            return jws.isSigned(by: keys.keys[0], algorithm: algorithm) ? live[0] : nil
        }
        for credential in live {
            if let key = credential.keys?.key(kid: kid), jws.isSigned(by: key, algorithm: algorithm) { return credential }
        }
        return nil
    }

    /// The claims' rules: `aud` names one of `audiences` (the issuer, the token endpoint, the
    /// endpoint called); `exp` is present, in the future and at most
    /// `Defaults.clientAssertionMaxLifetimeSeconds` (plus the skew) ahead; `nbf` and `iat`, when
    /// present, not in the future beyond the skew; `jti` present. Returns the replay key.
    func check(audiences: [String], at now: Date) throws(JOSEError) -> String {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let skew = Int64(Defaults.clockSkewSeconds)
        guard let audience = jws.audience, audience.contains(where: audiences.contains) else {
            throw JOSEError("the client assertion's aud must name this issuer or its token endpoint")
        }
        guard let expiry = jws.seconds("exp") else { throw JOSEError("the client assertion has no exp") }
        guard expiry > seconds else { throw JOSEError("the client assertion has expired") }
        guard expiry <= seconds + Int64(Defaults.clientAssertionMaxLifetimeSeconds) + skew else {
            throw JOSEError("the client assertion's exp is more than \(Defaults.clientAssertionMaxLifetimeSeconds) seconds ahead")
        }
        for claim in ["nbf", "iat"] where jws.claims[claim] != nil {
            guard let value = jws.seconds(claim) else { throw JOSEError("the client assertion's \(claim) is not a number") }
            guard value <= seconds + skew else { throw JOSEError("the client assertion's \(claim) is in the future") }
        }
        guard let jti = jws.string("jti"), !jti.isEmpty, jti.utf8.count <= 256 else {
            throw JOSEError("the client assertion needs a jti (at most 256 bytes)")
        }
        return "assertion\u{0}\(clientID)\u{0}\(jti)"
    }
}
