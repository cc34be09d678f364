import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import SignetJOSE

/// A workload identity issuer (a SPIRE server's JWT-SVID signer, a Kubernetes cluster's service
/// account issuer) for the JWT-bearer grant: P-256 keys, the set it publishes at `/jwks.json`
/// (behind its fault proxy), and assertions signed with any of its keys, published or not.
///
/// Knobs: `publish` (which keys the set holds), `oversized` (answer a body of that many bytes,
/// a JWKS bomb), `fetches` (how many times the set was read).
public final class IssuerFake: Sendable {
    public struct Key: Sendable {
        public let kid: String
        let key: P256.Signing.PrivateKey

        public var publicJWK: [String: String] {
            let raw = Array(key.publicKey.rawRepresentation)
            return [
                "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": Base64URL.encode(raw[0..<32]),
                "y": Base64URL.encode(raw[32..<64]),
            ]
        }
    }

    struct State: Sendable {
        var published: [Key]
        var oversized: Int?
        var fetches = 0
    }

    /// `iss` of its assertions.
    public let issuer: String
    private let state: NIOLockedValueBox<State>
    private let server: FakeServer?

    /// Where it publishes its keys (through its proxy).
    public var jwksURI: String { "\(server?.url ?? "http://127.0.0.1:0")/jwks.json" }

    private init(issuer: String, state: NIOLockedValueBox<State>, server: FakeServer?) {
        self.issuer = issuer
        self.state = state
        self.server = server
    }

    /// A new key, not published until `publish` names it.
    public static func newKey(kid: String = "k-\(UUID().uuidString.prefix(8).lowercased())") -> Key {
        Key(kid: kid, key: P256.Signing.PrivateKey())
    }

    /// Serves `keys` at `/jwks.json`; `serve: false` only signs (its set is then given to Signet as a static `jwks`).
    public static func start(issuer: String = "https://issuer.sim.invalid", keys: [Key], serve: Bool = true) async throws -> IssuerFake {
        let state = NIOLockedValueBox(State(published: keys))
        guard serve else { return IssuerFake(issuer: issuer, state: state, server: nil) }
        let router = Router()
        router.get("/jwks.json") { _, _ in
            let (keys, oversized) = state.withLockedValue { state in
                state.fetches += 1
                return (state.published, state.oversized)
            }
            if let oversized {
                // A set padded past any sane size: `{"keys":[],"pad":"xxxx…"}`.
                var buffer = ByteBuffer(string: #"{"keys":[],"pad":""#)
                buffer.writeRepeatingByte(UInt8(ascii: "x"), count: oversized)
                buffer.writeString(#""}"#)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
            }
            return jsonBody(["keys": keys.map(\.publicJWK)])
        }
        let server = try await FakeServer.start(name: "issuer", router: router)
        return IssuerFake(issuer: issuer, state: state, server: server)
    }

    /// The set it publishes, as JSON (`{"keys": [...]}`).
    public var jwksJSON: String {
        let keys = state.withLockedValue { $0.published }
        return Self.json(["keys": keys.map(\.publicJWK)])
    }

    public func publish(_ keys: [Key]) { state.withLockedValue { $0.published = keys } }
    public func setOversized(_ bytes: Int?) { state.withLockedValue { $0.oversized = bytes } }
    public var fetches: Int { state.withLockedValue { $0.fetches } }

    /// `true`: connections are refused; `blackHole`: accepted and never answered.
    public func setDown(_ down: Bool) async throws { try await server?.setDown(down) }
    public func setBlackHole(_ on: Bool) async throws { try await server?.proxy?.setMode(on ? .blackhole : .pass) }

    /// An assertion for `subject` (RFC 7523 §3), signed with `key`, with claims changed or removed by `edit`.
    public func assertion(
        subject: String, audience: String, key: Key, now: Date = Date(), header edits: [String: String?] = [:], _ edit: [String: Any?] = [:]
    ) -> String {
        var claims: [String: Any] = [
            "iss": issuer, "sub": subject, "aud": audience, "exp": Int(now.timeIntervalSince1970) + 300,
            "iat": Int(now.timeIntervalSince1970), "jti": UUID().uuidString,
        ]
        for (name, value) in edit { claims[name] = value }
        var header: [String: Any] = ["alg": "ES256", "typ": "JWT", "kid": key.kid]
        for (name, value) in edits { header[name] = value }
        let input = Base64URL.encode(Array(Self.json(header).utf8)) + "." + Base64URL.encode(Array(Self.json(claims).utf8))
        let signature = Array(try! key.key.signature(for: Array(input.utf8)).rawRepresentation)
        return input + "." + Base64URL.encode(signature)
    }

    public func stop() async { await server?.stop() }

    static func json(_ object: Any) -> String {
        String(
            decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}
