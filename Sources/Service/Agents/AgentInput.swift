import SignetJOSE
import Spec

/// A validated registration request.
package struct NewAgent: Equatable {
    package var name: String
    package var owner: String
    package var scopes: [String]
    package var metadata: [String: JSONValue]
    package var resources: [String]
    package var dpopBound: Bool
    /// The public key set (its canonical JSON) the agent authenticates with instead of a secret.
    package var jwks: String?
    package var mayAct: [String]
    package var federatedSubject: Agent.FederatedSubject?

    static let fields: Set<String> = [
        "name", "owner", "scopes", "metadata", "resources", "dpop_bound_access_tokens", "jwks", "may_act", "federated_subject",
    ]

    /// Validates a `POST /v1/agents` body; every error names the field.
    package init(_ body: [String: JSONValue]) throws(SignetError) {
        try AgentValidation.rejectUnknown(body, allowed: Self.fields)
        name = try AgentValidation.label("name", body["name"])
        owner = try AgentValidation.label("owner", body["owner"])
        scopes = try body["scopes"].map { value throws(SignetError) in try AgentValidation.scopes(value) } ?? []
        metadata = try body["metadata"].map { value throws(SignetError) in try AgentValidation.metadata(value) } ?? [:]
        resources = try body["resources"].map { value throws(SignetError) in try AgentValidation.resources(value) } ?? []
        dpopBound =
            try body["dpop_bound_access_tokens"].map { value throws(SignetError) in
                try AgentValidation.flag("dpop_bound_access_tokens", value)
            } ?? false
        jwks = try body["jwks"].map { value throws(SignetError) in try AgentValidation.jwks(value) }
        mayAct = try body["may_act"].map { value throws(SignetError) in try AgentValidation.mayAct(value) } ?? []
        federatedSubject = try body["federated_subject"].flatMap { value throws(SignetError) in
            try AgentValidation.federatedSubject(value)
        }
    }
}

/// A validated `PATCH /v1/agents/{id}`: only the fields given change.
package struct AgentPatch: Equatable {
    package var scopes: [String]?
    package var metadata: [String: JSONValue]?
    package var status: Agent.Status?
    package var resources: [String]?
    package var dpopBound: Bool?
    package var mayAct: [String]?
    /// `.some(nil)`: removed (`"federated_subject": null`).
    package var federatedSubject: Agent.FederatedSubject??

    static let fields: Set<String> = [
        "scopes", "metadata", "status", "resources", "dpop_bound_access_tokens", "may_act", "federated_subject",
    ]

    package init(_ body: [String: JSONValue]) throws(SignetError) {
        try AgentValidation.rejectUnknown(body, allowed: Self.fields)
        guard !body.isEmpty else { throw .badRequest("give at least one of: \(Self.fields.sorted().joined(separator: ", "))") }
        scopes = try body["scopes"].map { value throws(SignetError) in try AgentValidation.scopes(value) }
        metadata = try body["metadata"].map { value throws(SignetError) in try AgentValidation.metadata(value) }
        resources = try body["resources"].map { value throws(SignetError) in try AgentValidation.resources(value) }
        dpopBound = try body["dpop_bound_access_tokens"].map { value throws(SignetError) in
            try AgentValidation.flag("dpop_bound_access_tokens", value)
        }
        mayAct = try body["may_act"].map { value throws(SignetError) in try AgentValidation.mayAct(value) }
        if let value = body["federated_subject"] { federatedSubject = .some(try AgentValidation.federatedSubject(value)) }
        if let value = body["status"] {
            guard case .string(let text) = value, let status = Agent.Status(rawValue: text), status != .deactivated else {
                throw .badRequest("status must be \"active\" or \"suspended\" (DELETE deactivates)")
            }
            self.status = status
        }
    }
}

package enum AgentValidation {
    static func rejectUnknown(_ body: [String: JSONValue], allowed: Set<String>) throws(SignetError) {
        if let unknown = body.keys.filter({ !allowed.contains($0) }).sorted().first {
            throw .badRequest("unknown field \"\(unknown.prefix(64))\"; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    /// A name or owner: a string of 1 to `maxNameLength` characters, no control characters,
    /// surrounding white space trimmed.
    static func label(_ field: String, _ value: JSONValue?) throws(SignetError) -> String {
        guard let value, value != .null else { throw .badRequest("\(field) is required") }
        guard case .string(let raw) = value else { throw .badRequest("\(field) must be a string") }
        let text = raw.trimmingWhitespace()
        guard !text.isEmpty else { throw .badRequest("\(field) must not be empty") }
        guard text.count <= Limits.maxNameLength else {
            throw .badRequest("\(field) must be at most \(Limits.maxNameLength) characters (got \(text.count))")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badRequest("\(field) must not contain control characters")
        }
        return text
    }

    /// Scopes: an array of RFC 6749 §3.3 scope tokens, duplicates dropped, order kept.
    static func scopes(_ value: JSONValue) throws(SignetError) -> [String] {
        guard case .array(let items) = value else { throw .badRequest("scopes must be an array of strings") }
        guard items.count <= Limits.maxScopesPerAgent else {
            throw .badRequest("an agent may hold at most \(Limits.maxScopesPerAgent) scopes (got a list of \(items.count))")
        }
        var seen: Set<String> = []
        var scopes: [String] = []
        for item in items {
            guard case .string(let scope) = item else { throw .badRequest("scopes must be an array of strings") }
            guard isScopeToken(scope) else {
                throw .badRequest(
                    "scope \"\(scope.prefix(64))\" is not a valid scope token (1–\(Limits.maxScopeLength) printable ASCII characters, no space, quote or backslash)"
                )
            }
            if seen.insert(scope).inserted { scopes.append(scope) }
        }
        guard scopes.count <= Limits.maxScopesPerAgent else {
            throw .badRequest("an agent may hold at most \(Limits.maxScopesPerAgent) scopes (got \(scopes.count))")
        }
        return scopes
    }

    /// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3).
    package static func isScopeToken(_ scope: String) -> Bool {
        (1...Limits.maxScopeLength).contains(scope.utf8.count)
            && scope.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// The most resources an agent may be registered with.
    package static let maxResources = 16
    /// The longest resource URI.
    package static let maxResourceLength = 512

    /// Resources: an array of absolute URIs without a fragment (RFC 8707 §2), duplicates dropped.
    static func resources(_ value: JSONValue) throws(SignetError) -> [String] {
        guard case .array(let items) = value else { throw .badRequest("resources must be an array of absolute URIs") }
        guard items.count <= maxResources else {
            throw .badRequest("an agent may name at most \(maxResources) resources (got \(items.count))")
        }
        var resources: [String] = []
        for item in items {
            guard case .string(let resource) = item else { throw .badRequest("resources must be an array of absolute URIs") }
            guard isResource(resource) else {
                throw .badRequest(
                    "resource \"\(resource.prefix(64))\" is not an absolute URI without a fragment (at most \(maxResourceLength) bytes)")
            }
            if !resources.contains(resource) { resources.append(resource) }
        }
        return resources
    }

    /// An absolute URI (RFC 3986 §4.3: a scheme, a colon, something after it) of printable
    /// ASCII without spaces, with no fragment, at most `maxResourceLength` bytes.
    package static func isResource(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (3...maxResourceLength).contains(bytes.count), bytes.allSatisfy({ (0x21...0x7E).contains($0) }),
            !bytes.contains(UInt8(ascii: "#")), let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            colon < bytes.count - 1
        else { return false }
        let scheme = bytes[..<colon]
        func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }
        return isLetter(scheme[scheme.startIndex])
            && scheme.allSatisfy { isLetter($0) || (0x30...0x39).contains($0) || [0x2B, 0x2D, 0x2E].contains($0) }
    }

    /// The most agents one agent may let act for it.
    package static let maxMayAct = 16

    /// `may_act`: agent ids (UUIDs), lower-cased, duplicates dropped.
    static func mayAct(_ value: JSONValue) throws(SignetError) -> [String] {
        guard case .array(let items) = value else { throw .badRequest("may_act must be an array of agent ids") }
        guard items.count <= maxMayAct else {
            throw .badRequest("an agent may let at most \(maxMayAct) agents act for it (got \(items.count))")
        }
        var ids: [String] = []
        for item in items {
            guard case .string(let text) = item, let id = AgentStore.normalisedID(text) else {
                throw .badRequest("may_act must be an array of agent ids (UUIDs)")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }

    /// The longest federated issuer or subject.
    package static let maxFederatedLength = 512

    /// `federated_subject`: `{"issuer", "subject"}` (printable ASCII, at most 512 bytes each), or null.
    static func federatedSubject(_ value: JSONValue) throws(SignetError) -> Agent.FederatedSubject? {
        if value == .null { return nil }
        guard case .object(let object) = value, Set(object.keys) == ["issuer", "subject"],
            case .string(let issuer) = object["issuer"], case .string(let subject) = object["subject"]
        else {
            throw .badRequest("federated_subject must be {\"issuer\": string, \"subject\": string} or null")
        }
        for (name, text) in [("issuer", issuer), ("subject", subject)] {
            guard (1...maxFederatedLength).contains(text.utf8.count), text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw .badRequest("federated_subject.\(name) must be 1–\(maxFederatedLength) printable ASCII characters without spaces")
            }
        }
        return Agent.FederatedSubject(issuer: issuer, subject: subject)
    }

    static func flag(_ field: String, _ value: JSONValue) throws(SignetError) -> Bool {
        guard case .bool(let flag) = value else { throw .badRequest("\(field) must be true or false") }
        return flag
    }

    /// A public key set (`{"keys": [...]}`): returned as the canonical JSON stored.
    static func jwks(_ value: JSONValue) throws(SignetError) -> String {
        guard case .object = value else { throw .badRequest("jwks must be a JSON object {\"keys\": [...]}") }
        do {
            return try PublicJWKSet(json: value.jsonText).json
        } catch {
            throw .badRequest("jwks: \(error.description)")
        }
    }

    static func metadata(_ value: JSONValue) throws(SignetError) -> [String: JSONValue] {
        guard case .object(let object) = value else { throw .badRequest("metadata must be a JSON object") }
        let size = value.jsonText.utf8.count
        guard size <= Limits.maxMetadataBytes else {
            throw .badRequest("metadata must be at most \(Limits.maxMetadataBytes) bytes of JSON (got \(size))")
        }
        return object
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
