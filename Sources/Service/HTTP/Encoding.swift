import Foundation
import SignetJOSE

/// Byte-level encodings on the request path, where Foundation's string APIs cost too much.
enum Encoding {
    /// Base64url without padding (RFC 4648 §5): SignetJOSE's, the one implementation.
    static func base64URL(_ bytes: some Collection<UInt8>) -> String {
        Base64URL.encode(bytes)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lower-case hexadecimal, two digits per byte.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            output.append(hexDigits[Int(byte >> 4)])
            output.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes of a hexadecimal text (either case); nil unless it is whole pairs of hex digits.
    static func bytes(hex text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// `count` bytes from the system's cryptographic generator, eight at a time.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            withUnsafeBytes(of: generator.next()) { bytes += $0 }
        }
        return Array(bytes.prefix(count))
    }

    /// Decodes one `application/x-www-form-urlencoded` name or value: `+` is a space, `%XX` a
    /// byte; the result must be UTF-8. Nil when it is not.
    static func formDecode(_ bytes: some Collection<UInt8>) -> String? {
        // Most fields (ids, secrets, grant types) have nothing to decode: no copy then.
        if !bytes.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            return String(validating: bytes, as: UTF8.self)
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                output.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                output.append(high << 4 | low)
            default:
                output.append(byte)
            }
        }
        return String(validating: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Data {
    /// Base64url without padding (RFC 4648 §5).
    var base64URL: String {
        Encoding.base64URL(self)
    }

    /// Lower-case hexadecimal.
    var hexString: String {
        Encoding.hex(self)
    }

    init?(hex: String) {
        guard let bytes = Encoding.bytes(hex: hex) else { return nil }
        self.init(bytes)
    }

    /// Decodes base64url with or without padding (RFC 4648 §5).
    public init?(base64URL text: String) {
        var unpadded = Substring(text)
        while unpadded.last == "=" { unpadded.removeLast() }
        guard let bytes = Base64URL.decode(unpadded) else { return nil }
        self.init(bytes)
    }
}
