import Foundation
import Hummingbird
import NIOCore
import Spec

/// Any JSON value. Request bodies are parsed into this first, so validation can name the exact
/// field at fault and reject unknown fields instead of silently ignoring them.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.rounded() == value, abs(value) < 9e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Compact JSON text, keys sorted.
    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    /// Why a JSON text is refused before it is parsed: nesting deeper than `Limits.maxJSONDepth`
    /// or more than `Limits.maxJSONKeys` keys (nil: within both). One pass over the bytes, so a
    /// hostile body costs no recursion and no allocation.
    package static func exceedsLimits(_ bytes: some Collection<UInt8>) -> String? {
        var depth = 0
        var keys = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > Limits.maxJSONDepth { return "the body nests deeper than \(Limits.maxJSONDepth) levels" }
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ":"):
                keys += 1
                if keys > Limits.maxJSONKeys { return "the body has more than \(Limits.maxJSONKeys) keys" }
            default: break
            }
        }
        return nil
    }

    /// Parses JSON text; nil when it is not JSON.
    public static func parse(_ data: Data) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: data)
    }
}

extension Request {
    /// The body as a JSON object, or a 400/413/415 that says why not.
    mutating func jsonObject(context: some RequestContext) async throws -> [String: JSONValue] {
        guard let object = try await optionalJSONObject(context: context) else { throw SignetError.badRequest("a JSON body is required") }
        return object
    }

    /// Like `jsonObject`, but an empty body is nil: for requests whose every field is optional.
    mutating func optionalJSONObject(context: some RequestContext) async throws -> [String: JSONValue]? {
        if let contentType = headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw SignetError(.unsupportedMediaType, "invalid_request", "the body must be application/json")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw SignetError(.contentTooLarge, "request_too_large", "the body is larger than \(context.maxUploadSize) bytes")
        }
        return try JSONValue.object(fromBody: buffer.readableBytesView)
    }
}

extension JSONValue {
    /// A request body as a JSON object: nil when empty, else a 400 when it exceeds the limits, is
    /// not JSON or is not an object.
    package static func object(fromBody bytes: some Collection<UInt8>) throws(SignetError) -> [String: JSONValue]? {
        guard !bytes.isEmpty else { return nil }
        if let excess = exceedsLimits(bytes) { throw SignetError.badRequest(excess) }
        guard let value = parse(Data(bytes)) else { throw SignetError.badRequest("the body is not valid JSON") }
        guard case .object(let object) = value else { throw SignetError.badRequest("the body must be a JSON object") }
        return object
    }
}

/// Response bodies: keys sorted so output is stable, slashes unescaped.
let responseEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}()

/// Encodes a response body as JSON with the given status.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    let data = try responseEncoder.encode(value)
    var fields = headers
    fields[.contentType] = "application/json; charset=utf-8"
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
