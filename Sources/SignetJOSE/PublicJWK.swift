import Crypto
import CryptoExtras
import Foundation

/// Why a key, a JWS or its claims were refused: a message safe to show the client (it never
/// echoes a key's value).
public struct JOSEError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }
}

/// A public JSON Web Key (RFC 7517) Signet verifies signatures with: EC P-256 or P-384, Ed25519,
/// or RSA of at least 2048 bits. A private part, a symmetric key, another curve or a short RSA
/// modulus is refused when the key is read, so nothing past `init` can meet one.
public struct PublicJWK: Sendable {
    public enum Key: Sendable {
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
        case rsa(_RSA.Signing.PublicKey, bits: Int)
    }

    public let key: Key
    public let kid: String?
    /// The `alg` the key was registered for, if any: a JWS must then use it.
    public let algorithm: JWSAlgorithm?
    /// The members RFC 7638 hashes (`kty` and the public parameters), as given.
    public let requiredMembers: [String: String]

    /// Members a public key never has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
    static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
    static let knownMembers: Set<String> = [
        "kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "x5c", "x5t", "x5t#S256", "x5u", "ext",
    ]
    public static let minimumRSABits = 2048
    /// Larger keys cost more to verify than they protect: an RSA-8192 verification is four
    /// RSA-4096 ones, spent before anyone is authenticated.
    public static let maximumRSABits = 4096

    /// Reads a key from its JSON object. `requireKid`: registered keys need one (a JWS names
    /// its key by it).
    public init(_ object: [String: Any], requireKid: Bool) throws(JOSEError) {
        if let member = Self.privateMembers.first(where: { object[$0] != nil }) {
            throw JOSEError(
                member == "k"
                    ? "a symmetric key (\"k\") is not accepted: register public keys only"
                    : "the key carries a private part (\"\(member)\"): register the public key only")
        }
        if let unknown = object.keys.sorted().first(where: { !Self.knownMembers.contains($0) }) {
            throw JOSEError("unknown key member \"\(unknown.prefix(32))\"")
        }
        func string(_ name: String) throws(JOSEError) -> String? {
            guard let value = object[name] else { return nil }
            guard let text = value as? String, !text.isEmpty, text.utf8.count <= 2048 else {
                throw JOSEError("key member \"\(name)\" must be a non-empty string")
            }
            return text
        }
        func bytes(_ name: String) throws(JOSEError) -> (text: String, bytes: [UInt8]) {
            guard let text = try string(name) else { throw JOSEError("the key lacks \"\(name)\"") }
            guard let decoded = Base64URL.decode(text) else { throw JOSEError("key member \"\(name)\" is not base64url") }
            return (text, decoded)
        }
        kid = try string("kid")
        if requireKid, kid == nil { throw JOSEError("every key needs a \"kid\"") }
        if let kid, kid.utf8.count > 128 { throw JOSEError("a kid must be at most 128 bytes") }
        if let use = try string("use"), use != "sig" { throw JOSEError("a key's \"use\" must be \"sig\"") }
        let alg = try string("alg")
        let algorithm = try alg.map { name throws(JOSEError) -> JWSAlgorithm in
            guard let algorithm = JWSAlgorithm(rawValue: name) else {
                throw JOSEError(
                    "algorithm \(name.prefix(16)) is not accepted (\(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return algorithm
        }
        self.algorithm = algorithm
        guard let kty = try string("kty") else { throw JOSEError("the key lacks \"kty\"") }
        switch kty {
        case "EC":
            let crv = try string("crv")
            let x = try bytes("x")
            let y = try bytes("y")
            requiredMembers = ["kty": kty, "crv": crv ?? "", "x": x.text, "y": y.text]
            do {
                switch crv {
                case "P-256":
                    guard x.bytes.count == 32, y.bytes.count == 32 else { throw JOSEError("a P-256 key's x and y are 32 bytes each") }
                    key = .p256(try P256.Signing.PublicKey(x963Representation: [0x04] + x.bytes + y.bytes))
                case "P-384":
                    guard x.bytes.count == 48, y.bytes.count == 48 else { throw JOSEError("a P-384 key's x and y are 48 bytes each") }
                    key = .p384(try P384.Signing.PublicKey(x963Representation: [0x04] + x.bytes + y.bytes))
                default:
                    throw JOSEError("EC keys must be on P-256 or P-384")
                }
            } catch let error as JOSEError {
                throw error
            } catch {
                throw JOSEError("the EC key is not a point on its curve")
            }
        case "OKP":
            guard try string("crv") == "Ed25519" else { throw JOSEError("OKP keys must be Ed25519") }
            let x = try bytes("x")
            guard x.bytes.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x.bytes) else {
                throw JOSEError("an Ed25519 key's x is 32 bytes")
            }
            self.key = .ed25519(key)
            requiredMembers = ["kty": kty, "crv": "Ed25519", "x": x.text]
        case "RSA":
            let n = try bytes("n")
            let e = try bytes("e")
            let modulus = n.bytes.drop(while: { $0 == 0 })
            let bits = modulus.count * 8 - (modulus.first.map { $0.leadingZeroBitCount } ?? 8)
            guard bits >= Self.minimumRSABits else {
                throw JOSEError("RSA keys must be at least \(Self.minimumRSABits) bits (this one is \(bits))")
            }
            guard bits <= Self.maximumRSABits else { throw JOSEError("RSA keys must be at most \(Self.maximumRSABits) bits") }
            guard let key = try? _RSA.Signing.PublicKey(n: n.bytes, e: e.bytes) else { throw JOSEError("the RSA key is malformed") }
            self.key = .rsa(key, bits: bits)
            requiredMembers = ["kty": kty, "n": n.text, "e": e.text]
        case "oct":
            throw JOSEError("a symmetric key (kty \"oct\") is not accepted: register public keys only")
        default:
            throw JOSEError("kty must be EC, OKP or RSA")
        }
        if let algorithm, !algorithm.fits(key) { throw JOSEError("alg \(algorithm.rawValue) does not fit a \(kty) key") }
    }

    /// The JWK thumbprint (RFC 7638): SHA-256 over the required members in lexicographic order,
    /// no white space, base64url.
    public var thumbprint: String {
        let canonical =
            "{" + requiredMembers.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
        return Base64URL.encode(Array(SHA256.hash(data: Array(canonical.utf8))))
    }

    /// The key as a JSON object: its required members, `kid` and `alg` when given.
    public var jsonObject: [String: String] {
        var object = requiredMembers
        if let kid { object["kid"] = kid }
        if let algorithm { object["alg"] = algorithm.rawValue }
        return object
    }
}

/// The signature algorithms Signet verifies. `none` and the HMAC algorithms are not among them:
/// a JWS naming one is refused before any key is looked at.
public enum JWSAlgorithm: String, CaseIterable, Sendable {
    case es256 = "ES256"
    case es384 = "ES384"
    case eddsa = "EdDSA"
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"

    /// Whether a key of this type signs with this algorithm.
    public func fits(_ key: PublicJWK.Key) -> Bool {
        switch (self, key) {
        case (.es256, .p256), (.es384, .p384), (.eddsa, .ed25519): true
        case (.rs256, .rsa), (.rs384, .rsa), (.rs512, .rsa), (.ps256, .rsa), (.ps384, .rsa), (.ps512, .rsa): true
        default: false
        }
    }

    /// Whether `signature` over `input` is valid for `key` under this algorithm; false for a key
    /// of another type.
    func verify(_ signature: [UInt8], over input: [UInt8], with key: PublicJWK.Key) -> Bool {
        switch (self, key) {
        case (.es256, .p256(let key)):
            guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(signature, for: input)
        case (.es384, .p384(let key)):
            guard let signature = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(signature, for: input)
        case (.eddsa, .ed25519(let key)):
            return key.isValidSignature(signature, for: input)
        case (_, .rsa(let key, _)):
            let signature = _RSA.Signing.RSASignature(rawRepresentation: signature)
            switch self {
            case .rs256: return key.isValidSignature(signature, for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5)
            case .rs384: return key.isValidSignature(signature, for: SHA384.hash(data: input), padding: .insecurePKCS1v1_5)
            case .rs512: return key.isValidSignature(signature, for: SHA512.hash(data: input), padding: .insecurePKCS1v1_5)
            case .ps256: return key.isValidSignature(signature, for: SHA256.hash(data: input), padding: .PSS)
            case .ps384: return key.isValidSignature(signature, for: SHA384.hash(data: input), padding: .PSS)
            case .ps512: return key.isValidSignature(signature, for: SHA512.hash(data: input), padding: .PSS)
            default: return false
            }
        default:
            return false
        }
    }
}

/// A JWK Set as registered: 1 to `maxKeys` public keys, each with a distinct `kid`.
public struct PublicJWKSet: Sendable {
    public let keys: [PublicJWK]
    public static let maxKeys = 8

    /// Reads `{"keys": [...]}`.
    public init(_ object: [String: Any]) throws(JOSEError) {
        if let unknown = object.keys.sorted().first(where: { $0 != "keys" }) {
            throw JOSEError("unknown key set member \"\(unknown.prefix(32))\"; a key set is {\"keys\": [...]}")
        }
        guard let items = object["keys"] as? [Any] else { throw JOSEError("a key set is {\"keys\": [...]}") }
        guard (1...Self.maxKeys).contains(items.count) else { throw JOSEError("a key set holds 1 to \(Self.maxKeys) keys") }
        var keys: [PublicJWK] = []
        var kids: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let object = item as? [String: Any] else { throw JOSEError("key \(index) is not a JSON object") }
            let key: PublicJWK
            do {
                key = try PublicJWK(object, requireKid: true)
            } catch {
                throw JOSEError("key \(index): \(error.description)")
            }
            guard kids.insert(key.kid ?? "").inserted else { throw JOSEError("two keys share the kid \"\(key.kid ?? "")\"") }
            keys.append(key)
        }
        self.keys = keys
    }

    /// Reads a stored key set's JSON text.
    public init(json: String) throws(JOSEError) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
            throw JOSEError("the key set is not a JSON object")
        }
        try self.init(object)
    }

    /// `{"keys": [...]}` with each key's public members only, keys sorted: what is stored.
    public var json: String {
        let object = ["keys": keys.map(\.jsonObject)]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The key named `kid`.
    public func key(kid: String) -> PublicJWK? { keys.first { $0.kid == kid } }
}

/// Base64url without padding (RFC 7515 §2), byte by byte: on the path of every assertion and
/// proof, where Foundation's string replacements cost more than the signature check.
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// Each byte's 6-bit value, 0xFF for bytes outside the alphabet.
    static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let input = Array(bytes)
        var output: [UInt8] = []
        output.reserveCapacity((input.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= input.count {
            let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(alphabet[Int(value >> 6 & 63)])
            output.append(alphabet[Int(value & 63)])
            index += 3
        }
        let rest = input.count - index
        if rest > 0 {
            let value = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            if rest == 2 { output.append(alphabet[Int(value >> 6 & 63)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Nil for anything but base64url characters (padding refused too), and for a length no
    /// encoding has (one character left over).
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        decode(bytes: text.utf8)
    }

    /// The same, from the encoded bytes.
    public static func decode(bytes: some Collection<UInt8>) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in bytes {
            let value = values[Int(byte)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Two or four bits may be left over (the padding's); six is a dangling character.
        guard bits < 6 else { return nil }
        return output
    }
}
