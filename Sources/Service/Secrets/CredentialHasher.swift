import Crypto
import Foundation

/// Makes client secrets and stores only their HMAC-SHA256 under the server key.
///
/// A secret is 256 random bits, base64url, prefixed `sgs_` so secret scanners can spot a leak.
/// Verification recomputes the HMAC and compares in constant time; there is no bcrypt on the
/// token path because a 256-bit random secret cannot be guessed, only stolen.
public struct CredentialHasher: Sendable {
    /// HMAC-SHA256 already keyed: each use copies it, so the key's padding is hashed once per
    /// process, not once per token request (it was half of the verification's cost).
    private let keyed: HMAC<SHA256>

    public init(key: SymmetricKey) {
        keyed = HMAC(key: key)
    }

    /// A new client secret, shown to the operator once and never stored.
    public static func newSecret() -> String {
        "sgs_" + randomBase64URL(byteCount: 32)
    }

    /// A new public client id.
    public static func newClientID() -> String {
        "sgc_" + randomBase64URL(byteCount: 16)
    }

    /// Whether `clientID` has the exact shape of the ids `newClientID()` makes: `sgc_` and the
    /// 22 base64url characters of 16 random bytes. Anything else (a NUL, an overlong or padded
    /// id) is never looked up and never names a rate-limit subject.
    static func isWellFormedClientID(_ clientID: String) -> Bool {
        let bytes = clientID.utf8
        guard bytes.count == 26, bytes.starts(with: "sgc_".utf8) else { return false }
        return bytes.dropFirst(4).allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }

    /// The value stored for `secret`.
    public func digest(of secret: String) -> Data {
        Data(code(secret))
    }

    /// Whether `secret` is the one whose digest is `stored`; constant time in the secret (every
    /// byte is compared, whatever differs first).
    public func verify(_ secret: String, against stored: Data) -> Bool {
        let code = code(secret)
        guard stored.count == SHA256.byteCount else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(code, stored) { difference |= left ^ right }
        return difference == 0
    }

    private func code(_ secret: String) -> HashedAuthenticationCode<SHA256> {
        var hmac = keyed
        hmac.update(data: Array(secret.utf8))
        return hmac.finalize()
    }

    static func randomBase64URL(byteCount: Int) -> String {
        Encoding.base64URL(Encoding.randomBytes(byteCount))
    }
}
