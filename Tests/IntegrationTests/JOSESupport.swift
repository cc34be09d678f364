import Crypto
import Foundation
import SignetJOSE

/// A client's key pair for assertions and DPoP proofs: P-256 or Ed25519, signing compact JWS the
/// way a client library does (independent of Signet's verifier, which only ever verifies).
struct TestKey {
    enum Pair {
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    let pair: Pair
    let kid: String

    static func p256(kid: String = "k-\(UUID().uuidString.prefix(8))") -> TestKey { TestKey(pair: .p256(.init()), kid: kid) }
    static func ed25519(kid: String = "k-\(UUID().uuidString.prefix(8))") -> TestKey { TestKey(pair: .ed25519(.init()), kid: kid) }

    var algorithm: String {
        switch pair {
        case .p256: "ES256"
        case .ed25519: "EdDSA"
        }
    }

    /// The public JWK, without `kid`.
    var publicMembers: [String: String] {
        switch pair {
        case .p256(let key):
            let raw = Array(key.publicKey.rawRepresentation)
            return ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(raw[0..<32]), "y": Base64URL.encode(raw[32..<64])]
        case .ed25519(let key):
            return ["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(key.publicKey.rawRepresentation)]
        }
    }

    var publicJWK: [String: String] { publicMembers.merging(["kid": kid]) { a, _ in a } }

    /// `{"keys":[...]}` with this key.
    var jwksJSON: String { Self.json(["keys": [publicJWK]]) }

    /// The RFC 7638 thumbprint, computed here from its definition.
    var thumbprint: String {
        let canonical = "{" + publicMembers.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
        return Base64URL.encode(SHA256.hash(data: Array(canonical.utf8)))
    }

    func sign(header: [String: Any], claims: [String: Any]) -> String {
        let input = Base64URL.encode(Array(Self.json(header).utf8)) + "." + Base64URL.encode(Array(Self.json(claims).utf8))
        let signature: [UInt8]
        switch pair {
        case .p256(let key): signature = Array(try! key.signature(for: Array(input.utf8)).rawRepresentation)
        case .ed25519(let key): signature = Array(try! key.signature(for: Array(input.utf8)))
        }
        return input + "." + Base64URL.encode(signature)
    }

    /// A client assertion for `clientID` (RFC 7523), with claims changed or removed by `edit`.
    func assertion(
        clientID: String, audience: String = "https://signet.test/oauth/token", now: Date = Date(),
        header edits: [String: Any?] = [:], _ edit: [String: Any?] = [:]
    ) -> String {
        var claims: [String: Any] = [
            "iss": clientID, "sub": clientID, "aud": audience, "exp": Int(now.timeIntervalSince1970) + 60,
            "iat": Int(now.timeIntervalSince1970), "jti": UUID().uuidString,
        ]
        for (name, value) in edit { claims[name] = value }
        var header: [String: Any] = ["alg": algorithm, "typ": "JWT", "kid": kid]
        for (name, value) in edits { header[name] = value }
        return sign(header: header, claims: claims)
    }

    /// A DPoP proof for `method` and `url` (RFC 9449 §4.2), with claims changed by `edit`.
    func proof(
        method: String = "POST", url: String = "https://signet.test/oauth/token", now: Date = Date(), header edits: [String: Any?] = [:],
        _ edit: [String: Any?] = [:]
    ) -> String {
        var claims: [String: Any] = ["htm": method, "htu": url, "iat": Int(now.timeIntervalSince1970), "jti": UUID().uuidString]
        for (name, value) in edit { claims[name] = value }
        var header: [String: Any] = ["alg": algorithm, "typ": "dpop+jwt", "jwk": publicMembers]
        for (name, value) in edits { header[name] = value }
        return sign(header: header, claims: claims)
    }

    static func json(_ object: Any) -> String {
        String(
            decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}

/// An unsigned token (`alg: none`) and an HMAC one keyed with public bytes: the two classic
/// algorithm-confusion forgeries.
enum Forgery {
    static func none(claims: [String: Any], header: [String: Any] = [:]) -> String {
        let fullHeader = header.merging(["alg": "none"]) { _, new in new }
        return Base64URL.encode(Array(TestKey.json(fullHeader).utf8)) + "." + Base64URL.encode(Array(TestKey.json(claims).utf8)) + "."
    }

    static func hs256(claims: [String: Any], header: [String: Any], key: String) -> String {
        let fullHeader = header.merging(["alg": "HS256"]) { _, new in new }
        let input = Base64URL.encode(Array(TestKey.json(fullHeader).utf8)) + "." + Base64URL.encode(Array(TestKey.json(claims).utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(key.utf8)))
        return input + "." + Base64URL.encode(Array(mac))
    }
}

/// The claims of a compact JWS, unverified (the test reads what Signet signed).
func jwtClaims(_ token: String) -> [String: Any] {
    let parts = token.split(separator: ".")
    guard parts.count >= 2, let bytes = Base64URL.decode(parts[1]) else { return [:] }
    return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
}
