import Crypto
import Foundation

/// Why a DPoP proof was refused (RFC 9449 §5, §7.1, §8).
public enum DPoPProofError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `invalid_dpop_proof`: the reason, safe to show the client.
    case invalid(String)
    /// `use_dpop_nonce`: the proof must carry the server's current nonce.
    case nonceRequired

    public var description: String {
        switch self {
        case .invalid(let reason): "the DPoP proof is invalid: \(reason)"
        case .nonceRequired: "the DPoP proof must carry the server's nonce (DPoP-Nonce)"
        }
    }

    /// The OAuth error code.
    public var code: String {
        switch self {
        case .invalid: "invalid_dpop_proof"
        case .nonceRequired: "use_dpop_nonce"
        }
    }
}

/// A DPoP proof (RFC 9449 §4), checked by pure rules, the instant passed in: a JWS of `typ`
/// `dpop+jwt`, ES256 or EdDSA, signed by the public key in its own header (`jwk`, nothing
/// private), for this request's method and URL, issued within the clock skew, with a `jti`
/// (the caller checks it was not seen before, `replayKey`), the server's nonce when one is
/// required, and `ath` when it goes with an access token.
public struct DPoPProof: Sendable {
    public let key: PublicJWK
    /// The key's RFC 7638 thumbprint: a bound token's `cnf.jkt`.
    public let thumbprint: String
    /// `jti`, with the key it belongs to: what a replay guard remembers.
    public let replayKey: String

    public static let algorithms: Set<JWSAlgorithm> = [.es256, .eddsa]

    /// - Parameters:
    ///   - method: the request's method (`htm`).
    ///   - url: the request's URL as the server names it, without query or fragment (`htu`).
    ///   - accessToken: the token the proof goes with (`ath` must be its SHA-256), or nil at the
    ///     token endpoint (no `ath` then).
    ///   - skew: how far `iat` may be from `now`, either way, in seconds.
    ///   - nonceIsValid: nil when no nonce is required; else whether a nonce is current.
    public init(
        _ proof: String, method: String, url: String, accessToken: String? = nil, at now: Date, skew: Int64,
        nonceIsValid: ((String) -> Bool)? = nil
    ) throws(DPoPProofError) {
        let jws: CompactJWS
        let algorithm: JWSAlgorithm
        do {
            jws = try CompactJWS(proof)
            algorithm = try jws.algorithm(allowed: Self.algorithms)
        } catch {
            throw .invalid(error.description)
        }
        guard (jws.header["typ"] as? String)?.lowercased() == "dpop+jwt" else { throw .invalid("typ must be dpop+jwt") }
        guard let jwk = jws.header["jwk"] as? [String: Any] else { throw .invalid("the header must carry the public key (jwk)") }
        do {
            key = try PublicJWK(jwk, requireKid: false)
        } catch {
            throw .invalid(error.description)
        }
        guard jws.isSigned(by: key, algorithm: algorithm) else { throw .invalid("the signature does not verify with its jwk") }
        guard jws.string("htm") == method else { throw .invalid("htm must be \(method)") }
        // The URL exactly as named is the common case; only another spelling is normalised.
        guard let htu = jws.string("htu"), htu == url || Self.sameURL(htu, url) else { throw .invalid("htu must be \(url)") }
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        guard let issued = jws.seconds("iat") else { throw .invalid("iat is required") }
        guard abs(issued - seconds) <= skew else { throw .invalid("iat is more than \(skew) seconds from now") }
        guard let jti = jws.string("jti"), !jti.isEmpty, jti.utf8.count <= 256 else {
            throw .invalid("jti is required (at most 256 bytes)")
        }
        if let accessToken {
            guard let ath = jws.string("ath"), ath == Self.accessTokenHash(accessToken) else {
                throw .invalid("ath must be the access token's SHA-256")
            }
        }
        thumbprint = key.thumbprint
        if let nonceIsValid {
            guard let nonce = jws.string("nonce"), nonceIsValid(nonce) else { throw .nonceRequired }
        }
        replayKey = "dpop\u{0}\(thumbprint)\u{0}\(jti)"
    }

    /// `ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2).
    public static func accessTokenHash(_ token: String) -> String {
        Base64URL.encode(SHA256.hash(data: Array(token.utf8)))
    }

    /// Whether two URLs are the same once normalised (RFC 9449 §4.3, RFC 3986 §6): scheme and host
    /// compared without case, a default port dropped, query and fragment ignored.
    public static func sameURL(_ left: String, _ right: String) -> Bool {
        guard let left = normalised(left), let right = normalised(right) else { return false }
        return left == right
    }

    static func normalised(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        let port = components.port.flatMap { (scheme == "https" && $0 == 443) || (scheme == "http" && $0 == 80) ? nil : $0 }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return "\(scheme)://\(host)\(port.map { ":\($0)" } ?? "")\(path)"
    }
}

/// Server nonces for DPoP proofs (RFC 9449 §8): stateless, so every instance accepts every
/// instance's nonce. A nonce is a time step (`step`) and an HMAC of it under a key every instance
/// derives from a shared key; the current step's and the previous one's are accepted.
public struct DPoPNonces: Sendable {
    private let key: SymmetricKey
    public let step: Int64

    public init(sharedKey: SymmetricKey, stepSeconds: Int64 = 60) {
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: sharedKey, info: Array("signet dpop nonce v1".utf8), outputByteCount: 32)
        step = stepSeconds
    }

    public func nonce(at now: Date) -> String {
        nonce(forStep: Int64(now.timeIntervalSince1970.rounded(.down)) / step)
    }

    public func isValid(_ nonce: String, at now: Date) -> Bool {
        let current = Int64(now.timeIntervalSince1970.rounded(.down)) / step
        return Self.equal(nonce, self.nonce(forStep: current)) || Self.equal(nonce, self.nonce(forStep: current - 1))
    }

    /// Constant time in the content (the lengths are public).
    private static func equal(_ left: String, _ right: String) -> Bool {
        let left = Array(left.utf8)
        let right = Array(right.utf8)
        guard left.count == right.count else { return false }
        return zip(left, right).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    private func nonce(forStep value: Int64) -> String {
        var bytes = withUnsafeBytes(of: value.bigEndian) { Array($0) }
        bytes += HMAC<SHA256>.authenticationCode(for: bytes, using: key).prefix(16)
        return Base64URL.encode(bytes)
    }
}

/// What a replay guard says of a one-time value.
public enum ReplayCheck: Sendable, Equatable {
    /// Not seen within the window: now remembered.
    case first
    /// Seen before: a replay.
    case seen
    /// The guard cannot remember more now: refuse, but as unavailable, not as a replay.
    case full
}

/// Remembers one-time values (a client assertion's `jti`, a DPoP proof's): the first use of one
/// is `.first`, every later use within the guard's window `.seen`.
public protocol ReplayGuard: Sendable {
    func check(_ value: String) async -> ReplayCheck
}
