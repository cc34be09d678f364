import Foundation

/// A JWS in compact serialisation (RFC 7515 §7.1), parsed but not yet trusted: its header and
/// claims as JSON objects, and what its signature covers.
public struct CompactJWS {
    public let header: [String: Any]
    public let claims: [String: Any]
    let signingInput: [UInt8]
    let signature: [UInt8]

    /// The longest JWS read (assertions and proofs are a few hundred bytes; an RSA-4096 one
    /// about 1.5 KB).
    public static let maxBytes = 4096

    public init(_ token: String) throws(JOSEError) {
        guard token.utf8.count <= Self.maxBytes else { throw JOSEError("the JWT is longer than \(Self.maxBytes) bytes") }
        // Split on the bytes: a String's split walks characters, which cost more than the signature.
        let bytes = Array(token.utf8)
        let dot = UInt8(ascii: ".")
        guard let first = bytes.firstIndex(of: dot), let second = bytes[(first + 1)...].firstIndex(of: dot),
            !bytes[(second + 1)...].contains(dot)
        else { throw JOSEError("not a compact JWS (three base64url parts)") }
        guard let headerBytes = Base64URL.decode(bytes: bytes[..<first]),
            let claimBytes = Base64URL.decode(bytes: bytes[(first + 1)..<second]),
            let signature = Base64URL.decode(bytes: bytes[(second + 1)...])
        else { throw JOSEError("a part of the JWT is not base64url") }
        guard let header = (try? JSONSerialization.jsonObject(with: Data(headerBytes))) as? [String: Any] else {
            throw JOSEError("the JWT header is not a JSON object")
        }
        guard let claims = (try? JSONSerialization.jsonObject(with: Data(claimBytes))) as? [String: Any] else {
            throw JOSEError("the JWT claims are not a JSON object")
        }
        self.header = header
        self.claims = claims
        self.signature = signature
        signingInput = Array(bytes[..<second])
    }

    /// The header's `alg` when it is one Signet verifies; `none`, the HMAC algorithms and
    /// anything unknown are refused.
    public func algorithm(allowed: Set<JWSAlgorithm> = Set(JWSAlgorithm.allCases)) throws(JOSEError) -> JWSAlgorithm {
        guard let name = header["alg"] as? String else { throw JOSEError("the JWT header has no alg") }
        guard let algorithm = JWSAlgorithm(rawValue: name), allowed.contains(algorithm) else {
            throw JOSEError(
                "alg \(name.prefix(16)) is not accepted (\(allowed.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        guard header["crit"] == nil else { throw JOSEError("no critical header extension is understood") }
        return algorithm
    }

    /// Whether the signature is `key`'s under `algorithm` (which must fit the key, and the key's
    /// registered `alg` when it has one).
    public func isSigned(by key: PublicJWK, algorithm: JWSAlgorithm) -> Bool {
        guard algorithm.fits(key.key), key.algorithm.map({ $0 == algorithm }) ?? true else { return false }
        return algorithm.verify(signature, over: signingInput, with: key.key)
    }

    /// A string claim or header member.
    public func string(_ name: String) -> String? { claims[name] as? String }

    /// A NumericDate claim (RFC 7519 §2), whole seconds; nil when absent or not a number.
    public func seconds(_ name: String) -> Int64? {
        let value: Double
        switch claims[name] {
        case is Bool: return nil
        case let whole as Int: value = Double(whole)
        case let fraction as Double: value = fraction
        default: return nil
        }
        guard value.isFinite, abs(value) < 1e12 else { return nil }
        return Int64(value.rounded(.down))
    }

    /// `aud` as a list (a string is a list of one); nil when it is neither.
    public var audience: [String]? {
        if let one = claims["aud"] as? String { return [one] }
        if let many = claims["aud"] as? [Any] {
            let strings = many.compactMap { $0 as? String }
            return strings.count == many.count ? strings : nil
        }
        return nil
    }
}
