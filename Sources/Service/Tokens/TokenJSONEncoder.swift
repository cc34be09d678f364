import Foundation
import JWTKit

/// The JSON encoder of the signing key collection (jwt-kit's `JWTJSONEncoder` hook): an access
/// token's claims and a header of string fields are written directly, anything else by
/// `JSONEncoder`. Signing is on the path of every token request, and `JSONEncoder`'s generic
/// machinery cost about a tenth of it (measured with `perf`, issue 10); the output is the same JSON
/// (`TokenJSONEncoderTests` decodes both and compares).
struct TokenJSONEncoder: JWTJSONEncoder {
    private let fallback = JSONEncoder.defaultForJWT

    func encode<T: Encodable>(_ value: T) throws -> Data {
        if let claims = value as? AccessTokenClaims { return Data(Self.json(claims)) }
        if let header = value as? JWTHeader, let json = Self.json(header) { return Data(json) }
        return try fallback.encode(value)
    }

    /// The claims as one JSON object; optional claims that are nil are left out, as the
    /// synthesized `Encodable` conformance leaves them out.
    static func json(_ claims: AccessTokenClaims) -> [UInt8] {
        var out = JSONObjectWriter(capacity: 384)
        out.field("iss", claims.iss)
        out.field("sub", claims.sub)
        if claims.aud.values.count == 1 { out.field("aud", claims.aud.values[0]) } else { out.field("aud", claims.aud.values) }
        out.field("client_id", claims.client_id)
        out.field("scope", claims.scope)
        out.field("iat", claims.iat)
        out.field("exp", claims.exp)
        out.field("jti", claims.jti)
        if let credentialID = claims.credential_id { out.field("credential_id", credentialID) }
        if let generation = claims.generation { out.field("generation", Int64(generation)) }
        if let nbf = claims.nbf { out.field("nbf", nbf) }
        if let cnf = claims.cnf {
            var confirmation = JSONObjectWriter(capacity: 64)
            confirmation.field("jkt", cnf.jkt)
            out.field("cnf", object: confirmation.finish())
        }
        if let act = claims.act { out.field("act", object: json(act)) }
        if let parents = claims.parents { out.field("parents", raw: Array(RevocationStore.json(parents).utf8)) }
        return out.finish()
    }

    static func json(_ actor: Actor) -> [UInt8] {
        var out = JSONObjectWriter(capacity: 64)
        out.field("sub", actor.sub)
        if let prior = actor.act { out.field("act", object: json(prior)) }
        return out.finish()
    }

    /// A header whose fields are all strings (`alg`, `typ`, `kid`), keys sorted; nil for any
    /// other header, which `JSONEncoder` writes.
    static func json(_ header: JWTHeader) -> [UInt8]? {
        var out = JSONObjectWriter(capacity: 96)
        for (name, value) in header.fields.sorted(by: { $0.key < $1.key }) {
            guard case .string(let text) = value else { return nil }
            out.field(name, text)
        }
        return out.finish()
    }
}

/// Writes one JSON object into a byte buffer: string, integer and string-list fields, and objects
/// another writer finished; strings escaped per RFC 8259 §7 (quotation mark, reverse solidus and
/// control characters; everything else as UTF-8).
struct JSONObjectWriter {
    private var bytes: [UInt8]

    init(capacity: Int) {
        bytes = [UInt8(ascii: "{")]
        bytes.reserveCapacity(capacity)
    }

    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func field(_ name: String, _ value: Int64) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A field whose value is an object another writer finished.
    mutating func field(_ name: String, object: [UInt8]) {
        key(name)
        bytes.append(contentsOf: object)
    }

    /// A field whose value is JSON another writer finished (an object or an array).
    mutating func field(_ name: String, raw: [UInt8]) {
        key(name)
        bytes.append(contentsOf: raw)
    }

    /// A JSON array of objects other writers finished.
    static func array(_ objects: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for (index, object) in objects.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: object)
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func key(_ name: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case ..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(Encoding.hexDigits[Int(byte >> 4)])
                bytes.append(Encoding.hexDigits[Int(byte & 0x0F)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
