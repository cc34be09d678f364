import Crypto
import Foundation

/// An ES256 signing key. Its `kid` is the RFC 7638 thumbprint of its public JWK, so every
/// instance derives the same id from the same key.
public struct SigningKey: Sendable {
    public let kid: String
    let privateKey: P256.Signing.PrivateKey
    /// The key new tokens are signed with; the others are published for verification only.
    public let isCurrent: Bool

    package init(privateKey: P256.Signing.PrivateKey, isCurrent: Bool) {
        self.privateKey = privateKey
        self.isCurrent = isCurrent
        kid = Self.thumbprint(privateKey.publicKey)
    }

    /// The public key as a JWK (RFC 7517/7518): what `/.well-known/jwks.json` lists.
    public var publicJWK: [String: String] {
        let (x, y) = Self.coordinates(privateKey.publicKey)
        return ["kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"]
    }

    static func coordinates(_ key: P256.Signing.PublicKey) -> (x: String, y: String) {
        // x963: 0x04 || X (32 bytes) || Y (32 bytes).
        let raw = key.x963Representation
        return (Data(raw[1...32]).base64URL, Data(raw[33...64]).base64URL)
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order, base64url.
    static func thumbprint(_ key: P256.Signing.PublicKey) -> String {
        let (x, y) = coordinates(key)
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
        return Data(SHA256.hash(data: Data(canonical.utf8))).base64URL
    }
}
