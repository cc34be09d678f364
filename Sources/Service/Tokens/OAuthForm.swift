import Foundation
import Hummingbird
import NIOCore
import Spec

/// An `application/x-www-form-urlencoded` body, as the OAuth endpoints take it.
package struct OAuthForm {
    /// Each parameter's value (the first, for a repeatable one).
    package let fields: [String: String]
    /// Every value of the parameters that may be given more than once (`repeatable`).
    package var repeated: [String: [String]] = [:]

    static let maxBytes = 8 * 1024
    /// Parameters that may be given more than once: `resource` (RFC 8707 §2) and `audience` (RFC 8693 §2.1).
    static let repeatable: Set<String> = ["resource", "audience"]

    package init(fields: [String: String], repeated: [String: [String]] = [:]) {
        self.fields = fields
        self.repeated = repeated
    }

    package subscript(_ name: String) -> String? { fields[name] }

    /// Every value of a repeatable parameter, in order; empty when it is absent.
    package func values(_ name: String) -> [String] { repeated[name] ?? fields[name].map { [$0] } ?? [] }

    /// Parses the body; a wrong content type, an oversized body, bad encoding or a parameter
    /// given twice (RFC 6749 §3.2) is `invalid_request`.
    static func read(_ request: inout Request, context: some RequestContext) async throws -> OAuthForm {
        guard let type = request.headers[.contentType]?.lowercased(), type.hasPrefix("application/x-www-form-urlencoded") else {
            throw OAuthError(.invalidRequest, "the body must be application/x-www-form-urlencoded")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw OAuthError(.invalidRequest, "the body is larger than \(maxBytes) bytes")
        }
        return try parse(Array(buffer.readableBytesView))
    }

    static func parse(_ body: String) throws(OAuthError) -> OAuthForm {
        try parse(Array(body.utf8))
    }

    package static func parse(_ body: [UInt8]) throws(OAuthError) -> OAuthForm {
        var fields: [String: String] = [:]
        var repeated: [String: [String]] = [:]
        let pairs = body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true)
        guard pairs.count <= Limits.maxFormFields else {
            throw OAuthError(.invalidRequest, "the form has more than \(Limits.maxFormFields) fields")
        }
        for pair in pairs {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.allSatisfy({ $0.count <= Limits.maxFormFieldBytes }) else {
                throw OAuthError(.invalidRequest, "a form field is longer than \(Limits.maxFormFieldBytes) bytes")
            }
            guard let name = Encoding.formDecode(parts[0]), let value = Encoding.formDecode(parts.count > 1 ? parts[1] : []) else {
                throw OAuthError(.invalidRequest, "the body is not valid form encoding")
            }
            if repeatable.contains(name) {
                repeated[name, default: []].append(value)
                if fields[name] == nil { fields[name] = value }
                continue
            }
            guard fields[name] == nil else { throw OAuthError(.invalidRequest, "parameter \(name.prefix(32)) is given more than once") }
            fields[name] = value
        }
        return OAuthForm(fields: fields, repeated: repeated)
    }

    /// Form decoding: `+` is a space, then percent-decoding.
    static func decode(_ text: Substring) -> String? {
        Encoding.formDecode(text.utf8)
    }
}

/// How a client authenticated (RFC 6749 §2.3.1).
package struct ClientCredentials: Equatable {
    package enum Method: String {
        case basic = "client_secret_basic"
        case post = "client_secret_post"
        case privateKeyJWT = "private_key_jwt"
    }

    package let clientID: String
    package let secret: String
    package let method: Method

    /// The credentials in the request: HTTP Basic or `client_id` + `client_secret` form fields,
    /// never both. Nil when none are given.
    static func from(_ request: Request, form: OAuthForm) throws(OAuthError) -> ClientCredentials? {
        try from(authorization: request.headers[.authorization], form: form)
    }

    /// The same, from the `Authorization` header's value.
    package static func from(authorization: String?, form: OAuthForm) throws(OAuthError) -> ClientCredentials? {
        let basic = try basicCredentials(header: authorization)
        let posted = form["client_secret"]
        if let basic {
            guard posted == nil else {
                throw OAuthError(.invalidRequest, "use one client authentication method, not both", basicAttempted: true)
            }
            if let id = form["client_id"], id != basic.clientID {
                throw OAuthError(.invalidRequest, "client_id differs from the HTTP Basic user", basicAttempted: true)
            }
            return basic
        }
        guard let secret = posted else { return nil }
        guard let id = form["client_id"], !id.isEmpty else { throw OAuthError(.invalidRequest, "client_secret needs client_id") }
        return ClientCredentials(clientID: id, secret: secret, method: .post)
    }

    /// The client id a request names (the HTTP Basic user, else the form's `client_id`) when it
    /// is of the shape Signet issues; nil otherwise, and for credentials that do not parse. Only
    /// to look up a hold on that client: it authenticates nothing.
    static func namedClient(_ request: Request, form: OAuthForm) -> String? {
        let named = (try? basicCredentials(header: request.headers[.authorization]))??.clientID ?? form["client_id"]
        guard let named, CredentialHasher.isWellFormedClientID(named) else { return nil }
        return named
    }

    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
    static func basicCredentials(_ request: Request) throws(OAuthError) -> ClientCredentials? {
        try basicCredentials(header: request.headers[.authorization])
    }

    /// The same, from the header's value: nil for no header or another scheme.
    package static func basicCredentials(header: String?) throws(OAuthError) -> ClientCredentials? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        guard let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":"),
            let id = OAuthForm.decode(text[..<colon]), let secret = OAuthForm.decode(text[text.index(after: colon)...]),
            !id.isEmpty
        else {
            throw OAuthError(.invalidClient, "malformed HTTP Basic credentials", basicAttempted: true)
        }
        return ClientCredentials(clientID: id, secret: secret, method: .basic)
    }
}
