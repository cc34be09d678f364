import Crypto
import Foundation

/// Makes client secrets and stores only their HMAC-SHA256 under the server key.
///
/// A secret is 256 random bits, base64url, prefixed `sgs_` so secret scanners can spot a leak.
/// Verification recomputes the HMAC and compares in constant time; there is no bcrypt on the
/// token path because a 256-bit random secret cannot be guessed, only stolen.
public struct CredentialHasher: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
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
        Data(HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: key))
    }

    /// Whether `secret` is the one whose digest is `stored`; constant time in the secret.
    public func verify(_ secret: String, against stored: Data) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(stored, authenticating: Data(secret.utf8), using: key)
    }

    static func randomBase64URL(byteCount: Int) -> String {
        Encoding.base64URL(Encoding.randomBytes(byteCount))
    }
}
