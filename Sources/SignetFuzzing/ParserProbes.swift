import Crypto
import Dispatch
import Foundation
import Logging
import Service
import SignetJOSE
import Spec

/// A parser the fuzzer drives. Each has its corpus in `fixtures/fuzz/<rawValue>/`.
package enum FuzzTarget: String, CaseIterable, Sendable {
    /// The `/oauth/*` form body and the client authentication read from it.
    case form
    /// An `Authorization` header value, as the HTTP Basic decoder reads it.
    case basic
    /// A JSON request body: the limits, the parser and every input type built from it.
    case json
    /// A bearer token, as introspection and the bearer endpoints verify it.
    case jwt
    /// A client assertion or DPoP proof (compact JWS), the public key in it, and a registered key
    /// set: base64url, the JWS parser, the key reader, the proof's rules.
    case jose
}

/// One input through one parser, checking what must hold for any input. Rejection is fine;
/// a crash, a hang or a broken property (which traps with the reason) is a finding.
package enum ParserProbes {
    package static func run(_ target: FuzzTarget, _ bytes: [UInt8]) {
        switch target {
        case .form: form(bytes)
        case .basic: basic(bytes)
        case .json: json(bytes)
        case .jwt: jwt(bytes)
        case .jose: jose(bytes)
        }
    }

    static func form(_ bytes: [UInt8]) {
        guard let form = try? OAuthForm.parse(bytes) else { return }
        require(form.fields.count <= Limits.maxFormFields, "more fields than the limit were accepted")
        // What was decoded encodes back to a body that decodes to the same fields.
        let encoded = form.fields.map { "\(formEncode($0.key))=\(formEncode($0.value))" }.joined(separator: "&")
        require((try? OAuthForm.parse(Array(encoded.utf8)))?.fields == form.fields, "a parsed form does not survive re-encoding")
        guard let credentials = try? ClientCredentials.from(authorization: nil, form: form) else { return }
        require(credentials.method == .post && credentials.secret == form["client_secret"], "posted credentials misread")
        require(!credentials.clientID.isEmpty && credentials.clientID == form["client_id"], "posted client id misread")
    }

    static func basic(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        // As a whole header value, and as the credentials inside one.
        _ = try? ClientCredentials.basicCredentials(header: text)
        let header = "Basic " + Data(bytes).base64EncodedString()
        guard let credentials = try? ClientCredentials.basicCredentials(header: header) else { return }
        require(credentials.method == .basic && !credentials.clientID.isEmpty, "Basic credentials misread")
        let again = "Basic " + Data("\(formEncode(credentials.clientID)):\(formEncode(credentials.secret))".utf8).base64EncodedString()
        require((try? ClientCredentials.basicCredentials(header: again)) == credentials, "Basic credentials do not survive re-encoding")
    }

    static func json(_ bytes: [UInt8]) {
        guard let object = try? JSONValue.object(fromBody: bytes) else { return }
        let value = JSONValue.object(object)
        let (depth, keys) = measure(value)
        require(depth <= Limits.maxJSONDepth, "a body nested \(depth) deep passed the limit")
        require(keys <= Limits.maxJSONKeys, "a body with \(keys) keys passed the limit")
        require(JSONValue.parse(Data(value.jsonText.utf8)) == value, "a parsed body does not survive re-encoding")
        if let agent = try? NewAgent(object) {
            require(!agent.name.isEmpty && agent.name.count <= Limits.maxNameLength, "a name out of bounds was accepted")
            require(!agent.owner.isEmpty && agent.owner.count <= Limits.maxNameLength, "an owner out of bounds was accepted")
            require(agent.scopes.count <= Limits.maxScopesPerAgent, "too many scopes were accepted")
            require(agent.scopes.allSatisfy(AgentValidation.isScopeToken), "a scope that is not a scope token was accepted")
            require(Set(agent.scopes).count == agent.scopes.count, "duplicate scopes were kept")
            require(agent.resources.count <= AgentValidation.maxResources, "too many resources were accepted")
            require(agent.resources.allSatisfy(AgentValidation.isResource), "a resource that is not an absolute URI was accepted")
            if let jwks = agent.jwks { require((try? PublicJWKSet(json: jwks)) != nil, "a stored key set does not read back") }
        }
        if let patch = try? AgentPatch(object) {
            require(patch.scopes != nil || patch.metadata != nil || patch.status != nil, "an empty patch was accepted")
            require(patch.status != .deactivated, "a patch may not deactivate")
        }
        if let rotation = try? RotationRequest(object) {
            require((0...RotationRequest.maxGraceSeconds).contains(rotation.graceSeconds), "a grace period out of bounds was accepted")
        }
    }

    static func jwt(_ bytes: [UInt8]) {
        let token = String(decoding: bytes, as: UTF8.self)
        guard let claims = blocking({ await FuzzKeys.ring.verify(token) }) else { return }
        // The fuzzer holds no key: only the committed seed's claims can verify.
        require(claims == FuzzKeys.seedClaims, "a token the fuzzer made verified")
    }

    /// The instant the jose seeds were made for.
    package static let joseInstant = Date(timeIntervalSince1970: 1_800_000_000)

    static func jose(_ bytes: [UInt8]) {
        require(Base64URL.decode(Base64URL.encode(bytes)) == bytes, "base64url does not round-trip")
        let text = String(decoding: bytes, as: UTF8.self)
        if let decoded = Base64URL.decode(text) {
            require(Base64URL.encode(decoded).utf8.count == text.utf8.count, "base64url decoded to the wrong length")
        }
        if let jws = try? CompactJWS(text) {
            if let algorithm = try? jws.algorithm() {
                require(algorithm.rawValue != "none" && !algorithm.rawValue.hasPrefix("HS"), "an unsigned or HMAC JWS was accepted")
            }
            if let jwk = jws.header["jwk"] as? [String: Any], let key = try? PublicJWK(jwk, requireKid: false) {
                require(Base64URL.decode(key.thumbprint)?.count == 32, "a thumbprint is not a SHA-256")
                require(!["d", "p", "q", "k"].contains { jwk[$0] != nil }, "a key with a private part was read")
            }
        }
        if let proof = try? DPoPProof(text, method: "POST", url: "https://signet.test/oauth/token", at: joseInstant, skew: 60) {
            let jws = try? CompactJWS(text)
            let key = (jws?.header["jwk"] as? [String: Any]).flatMap { try? PublicJWK($0, requireKid: false) }
            require(key?.thumbprint == proof.thumbprint, "an accepted proof is bound to another key than its own")
            require(DPoPProof.algorithms.contains { $0.rawValue == jws?.header["alg"] as? String }, "a proof of another algorithm")
        }
        if let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
            let set = try? PublicJWKSet(object)
        {
            require((1...PublicJWKSet.maxKeys).contains(set.keys.count), "a key set out of bounds was accepted")
            require(Set(set.keys.compactMap(\.kid)).count == set.keys.count, "a key set without distinct kids was accepted")
            let again = try? PublicJWKSet(json: set.json)
            require(again?.keys.map(\.thumbprint) == set.keys.map(\.thumbprint), "a stored key set does not read back the same")
        }
    }

    // MARK: Helpers

    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("property broken: \(message())") }
    }

    /// `application/x-www-form-urlencoded` for one name or value: unreserved bytes as they are,
    /// every other byte percent-encoded.
    static func formEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Nesting depth (an object or array is one level) and the number of keys, iteratively.
    static func measure(_ value: JSONValue) -> (depth: Int, keys: Int) {
        var deepest = 0
        var keys = 0
        var pending: [(JSONValue, Int)] = [(value, 0)]
        while let (value, depth) = pending.popLast() {
            switch value {
            case .object(let members):
                deepest = max(deepest, depth + 1)
                keys += members.count
                pending += members.values.map { ($0, depth + 1) }
            case .array(let items):
                deepest = max(deepest, depth + 1)
                pending += items.map { ($0, depth + 1) }
            default: break
            }
        }
        return (deepest, keys)
    }

    /// The fuzzer calls in synchronously; the verifier is async. Only from a thread outside Swift
    /// Concurrency's pool (the fuzzer's, a synchronous test's), which it blocks.
    package static func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox<T>()
        Task {
            result.value = await work()
            done.signal()
        }
        done.wait()
        return result.value!
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    // Written by the task before the semaphore is signalled, read after the wait.
    var value: T?
}

/// A key ring holding one fixed key, so the committed seed token verifies on every run.
package enum FuzzKeys {
    /// The seed's signing key (P-256, a fixed scalar): known to anyone who reads this file, so
    /// used nowhere but here.
    static let privateKey = try! P256.Signing.PrivateKey(rawRepresentation: Data((1...32).map { UInt8($0) }))

    package static let seedClaims = AccessTokenClaims(
        iss: "http://127.0.0.1:8080", sub: "00000000-0000-4000-8000-000000000001", aud: "signet", client_id: "sgc_fuzz",
        scope: "reports:read", iat: 1_700_000_000, exp: 1_700_000_900, jti: "fuzz-seed", credential_id: "fuzz", generation: 0)

    package static let ring: KeyRing = blockingRing()

    /// A token of `seedClaims` signed with the fixed key (ES256 signatures differ from run to run).
    package static func seedToken() -> String {
        ParserProbes.blocking { try! await ring.sign(seedClaims) }
    }

    private static func blockingRing() -> KeyRing {
        let ring = KeyRing(store: FixedKeyStore(key: SigningKey(privateKey: privateKey, isCurrent: true)), logger: Logger(label: "fuzz"))
        ParserProbes.blocking { try! await ring.refresh() }
        return ring
    }
}

private struct FixedKeyStore: SecretStore {
    let key: SigningKey

    func credentialHMACKey() async throws -> SymmetricKey { SymmetricKey(size: .bits256) }
    func ensureSigningKeys() async throws -> [SigningKey] { [key] }
    func publishedSigningKeys() async throws -> [SigningKey] { [key] }
    func rotateSigningKey(publishFor: Duration, audit: AuditContext) async throws -> (current: String, retired: String?) {
        (key.kid, nil)
    }
}
