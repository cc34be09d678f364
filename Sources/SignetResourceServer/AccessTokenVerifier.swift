import Foundation
import SignetJOSE
import Synchronization

/// An access token a resource server accepted: Signet's claims, read once verified.
public struct VerifiedAccessToken: Sendable, Equatable {
    /// The token as sent.
    public let token: String
    /// The agent (`sub`).
    public let subject: String
    public let clientID: String
    public let scopes: [String]
    public let audience: [String]
    public let issuedAt: Int64
    public let expiresAt: Int64
    public let jti: String
    /// `cnf.jkt`: the thumbprint of the key a DPoP-bound token is bound to.
    public let confirmation: String?
    /// Signet's own claims: the credential the token was minted with and the agent's token
    /// generation then (nil for tokens of other issuers).
    public let credentialID: String?
    public let generation: Int?
    /// A delegated token's actors (RFC 8693 §4.1 `act`), the one acting now first; empty when the
    /// subject acts for itself.
    public var actors: [String] = []
    /// Made by token exchange from other tokens (Signet's `parents` claim): it lives only while they do.
    public var derived = false
}

/// Why a request's token was not accepted, with what the answer must carry: the status, the OAuth
/// error (RFC 6750 §3.1, RFC 9449 §7.1) and the `WWW-Authenticate` challenges (one per scheme the
/// resource takes, with `resource_metadata` per RFC 9728 §5.1).
public struct Challenge: Error, Sendable, Equatable, CustomStringConvertible {
    /// 401, 400 (a malformed request), 403 (`insufficient_scope`) or 503 (the issuer's keys or
    /// introspection could not be reached).
    public let status: Int
    /// `invalid_request`, `invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce`,
    /// `insufficient_scope`; nil when no credentials were sent (RFC 6750 §3.1).
    public let error: String?
    public let description: String
    /// The values of `WWW-Authenticate`, one per scheme.
    public let wwwAuthenticate: [String]
    /// A `DPoP-Nonce` to retry with, when nonces are required.
    public let dpopNonce: String?
}

/// Where the issuer's signing keys come from: its JWKS over HTTP (`RemoteJWKS`), or, inside
/// Signet, its own key ring.
public protocol TokenKeySource: Sendable {
    /// The key `kid` names; nil when the issuer publishes none by that id. Throws when the keys
    /// could not be read and none is known.
    func key(kid: String) async throws -> PublicJWK?
}

/// Whether a verified token is still active at its issuer (revoked tokens, credentials,
/// suspended agents): introspection over HTTP (`IntrospectionClient`), or Signet's own check.
public protocol TokenLiveness: Sendable {
    func isActive(_ token: VerifiedAccessToken) async throws -> Bool
}

/// Accepts Signet access tokens at a resource server (an MCP server among them): the signature
/// by a key the issuer publishes, `typ` at+jwt (RFC 9068), `iss`, `aud` naming this resource's
/// canonical URI, `exp`, `nbf` and `iat` (with the clock skew); a DPoP-bound token only as
/// `Authorization: DPoP` with a proof for this request carrying the token's `ath`, signed by the
/// key the token names, never seen before; optionally the issuer's word that it is still active;
/// then the scopes the route needs. Every refusal is a `Challenge` ready to answer.
public struct AccessTokenVerifier: Sendable {
    public struct Settings: Sendable {
        /// The issuer's identifier: a token's `iss` must be exactly this.
        public var issuer: String
        /// This resource's canonical URI: a token's `aud` must name it (RFC 8707).
        public var audience: String
        /// This resource's RFC 9728 metadata URL, named in every challenge.
        public var resourceMetadata: String?
        /// False: only DPoP-bound tokens are accepted (a bearer token is refused unread).
        public var acceptsBearer = true
        /// How far `iat`, `nbf` and a proof's `iat` may be ahead of this clock, in seconds.
        public var clockSkewSeconds: Int64 = 60
        /// The algorithms of the issuer's tokens (Signet signs ES256).
        public var algorithms: Set<JWSAlgorithm> = [.es256]

        public init(issuer: String, audience: String, resourceMetadata: String? = nil, acceptsBearer: Bool = true) {
            self.issuer = issuer
            self.audience = audience
            self.resourceMetadata = resourceMetadata
            self.acceptsBearer = acceptsBearer
        }
    }

    public let settings: Settings
    let keys: any TokenKeySource
    let replay: any ReplayGuard
    let liveness: (any TokenLiveness)?
    let nonces: DPoPNonces?
    let now: @Sendable () -> Date

    /// - Parameters:
    ///   - replay: where proofs' `jti`s are remembered; by default in this process's memory
    ///     (`MemoryReplayGuard`), which is right for one instance. Several instances share one
    ///     (Redis, as Signet does).
    ///   - liveness: asked last, for every token that passed every other check.
    ///   - nonces: when proofs must carry this server's nonce.
    public init(
        settings: Settings, keys: any TokenKeySource, replay: any ReplayGuard = MemoryReplayGuard(),
        liveness: (any TokenLiveness)? = nil, nonces: DPoPNonces? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.settings = settings
        self.keys = keys
        self.replay = replay
        self.liveness = liveness
        self.nonces = nonces
        self.now = now
    }

    /// Verifies the token of a request.
    /// - Parameters:
    ///   - authorization: the `Authorization` header.
    ///   - dpop: every `DPoP` header of the request.
    ///   - method: the request's method; `url`: its URL as clients name it, without the query.
    ///   - requiredScopes: scopes the token must all carry (else 403 `insufficient_scope`).
    public func verify(
        authorization: String?, dpop: [String], method: String, url: String, requiredScopes: [String] = []
    ) async throws(Challenge) -> VerifiedAccessToken {
        guard let authorization else { throw challenge(401, nil, "an access token is required") }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let scheme = parts.first.map { $0.lowercased() } ?? ""
        guard parts.count == 2, scheme == "bearer" || scheme == "dpop" else {
            throw challenge(401, nil, "send the access token as Authorization: DPoP (or Bearer, where accepted)")
        }
        let isDPoP = scheme == "dpop"
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        if !isDPoP, !settings.acceptsBearer {
            throw challenge(401, "invalid_token", "this resource accepts DPoP-bound tokens only (Authorization: DPoP)", scheme: "Bearer")
        }
        let verified = try await verifiedClaims(token, scheme: isDPoP ? "DPoP" : "Bearer")
        let now = now()
        if let jkt = verified.confirmation {
            guard isDPoP else {
                throw challenge(
                    401, "invalid_token", "the token is DPoP-bound: send it as Authorization: DPoP with a proof", scheme: "Bearer")
            }
            guard dpop.count == 1 else { throw challenge(401, "invalid_dpop_proof", "send one DPoP proof", scheme: "DPoP") }
            let proof: DPoPProof
            do {
                let nonces = self.nonces
                proof = try DPoPProof(
                    dpop[0], method: method, url: url, accessToken: token, at: now, skew: settings.clockSkewSeconds,
                    nonceIsValid: nonces.map { nonces in { nonces.isValid($0, at: now) } })
            } catch {
                throw challenge(401, error.code, error.description, scheme: "DPoP")
            }
            guard proof.thumbprint == jkt else {
                throw challenge(401, "invalid_dpop_proof", "the proof is not signed by the key the token is bound to", scheme: "DPoP")
            }
            switch await replay.check(proof.replayKey) {
            case .first: break
            case .seen: throw challenge(401, "invalid_dpop_proof", "the DPoP proof was used before (jti)", scheme: "DPoP")
            case .full: throw challenge(503, "temporarily_unavailable", "too many proofs to remember at once; retry shortly")
            }
        } else if isDPoP {
            throw challenge(401, "invalid_token", "the token is not DPoP-bound: it cannot be sent as Authorization: DPoP", scheme: "DPoP")
        }
        if let liveness {
            let active: Bool
            do {
                active = try await liveness.isActive(verified)
            } catch {
                throw challenge(503, "temporarily_unavailable", "the issuer could not say whether the token is active; retry shortly")
            }
            guard active else { throw challenge(401, "invalid_token", "the token is no longer active", scheme: isDPoP ? "DPoP" : "Bearer") }
        }
        let missing = requiredScopes.filter { !verified.scopes.contains($0) }
        guard missing.isEmpty else {
            throw challenge(
                403, "insufficient_scope", "the token lacks scope \(missing.joined(separator: " "))", scheme: isDPoP ? "DPoP" : "Bearer",
                scope: requiredScopes.joined(separator: " "))
        }
        return verified
    }

    /// The signature and the claims, before any binding.
    func verifiedClaims(_ token: String, scheme: String) async throws(Challenge) -> VerifiedAccessToken {
        func invalid(_ reason: String) -> Challenge { challenge(401, "invalid_token", reason, scheme: scheme) }
        let jws: CompactJWS
        let algorithm: JWSAlgorithm
        do {
            jws = try CompactJWS(token)
            algorithm = try jws.algorithm(allowed: settings.algorithms)
        } catch {
            throw invalid(error.description)
        }
        let typ = (jws.header["typ"] as? String)?.lowercased()
        guard typ == "at+jwt" || typ == "application/at+jwt" else { throw invalid("typ must be at+jwt (RFC 9068)") }
        guard let kid = jws.header["kid"] as? String else { throw invalid("the token names no key (kid)") }
        let key: PublicJWK?
        do {
            key = try await keys.key(kid: kid)
        } catch {
            throw challenge(503, "temporarily_unavailable", "the issuer's keys could not be read; retry shortly")
        }
        guard let key else { throw invalid("the issuer publishes no key \(kid.prefix(64))") }
        guard jws.isSigned(by: key, algorithm: algorithm) else { throw invalid("the signature does not verify") }
        let seconds = Int64(now().timeIntervalSince1970.rounded(.down))
        let skew = settings.clockSkewSeconds
        guard jws.string("iss") == settings.issuer else { throw invalid("the token is from another issuer") }
        guard let audience = jws.audience, audience.contains(settings.audience) else {
            throw invalid("the token is not for this resource (aud)")
        }
        guard let expiresAt = jws.seconds("exp"), expiresAt > seconds else { throw invalid("the token has expired") }
        if jws.claims["nbf"] != nil {
            guard let notBefore = jws.seconds("nbf"), notBefore <= seconds + skew else { throw invalid("the token is not valid yet") }
        }
        guard let issuedAt = jws.seconds("iat"), issuedAt <= seconds + skew else { throw invalid("the token was issued in the future") }
        guard let subject = jws.string("sub"), let clientID = jws.string("client_id"), let jti = jws.string("jti") else {
            throw invalid("the token lacks sub, client_id or jti")
        }
        let confirmation = (jws.claims["cnf"] as? [String: Any])?["jkt"] as? String
        if jws.claims["cnf"] != nil, confirmation == nil { throw invalid("the token's cnf names no key thumbprint (jkt)") }
        var actors: [String] = []
        var act = jws.claims["act"]
        while let object = act as? [String: Any] {
            guard let actor = object["sub"] as? String, actors.count < 16 else { throw invalid("the token's act claim is malformed") }
            actors.append(actor)
            act = object["act"]
        }
        if act != nil { throw invalid("the token's act claim is malformed") }
        var verified = VerifiedAccessToken(
            token: token, subject: subject, clientID: clientID,
            scopes: (jws.string("scope") ?? "").split(separator: " ").map(String.init), audience: audience, issuedAt: issuedAt,
            expiresAt: expiresAt, jti: jti, confirmation: confirmation, credentialID: jws.string("credential_id"),
            generation: (jws.claims["generation"] as? Int))
        verified.actors = actors
        verified.derived = jws.claims["parents"] != nil
        return verified
    }

    /// A refusal with its challenges: the scheme the request used carries the error; every scheme
    /// this resource takes is offered.
    public func challenge(_ status: Int, _ error: String?, _ description: String, scheme: String? = nil, scope: String? = nil) -> Challenge
    {
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        func parameters(for name: String) -> [String] {
            var parameters: [String] = []
            if name == "DPoP" { parameters.append("algs=" + quoted(DPoPProof.algorithms.map(\.rawValue).sorted().joined(separator: " "))) }
            if let error, scheme == name || (scheme == nil && status == 503) {
                parameters.append("error=" + quoted(error))
                parameters.append("error_description=" + quoted(description))
                if let scope { parameters.append("scope=" + quoted(scope)) }
            }
            if let metadata = settings.resourceMetadata { parameters.append("resource_metadata=" + quoted(metadata)) }
            return parameters
        }
        var schemes = ["DPoP"]
        if settings.acceptsBearer { schemes.append("Bearer") }
        let values = schemes.map { name in
            let parameters = parameters(for: name)
            return parameters.isEmpty ? name : name + " " + parameters.joined(separator: ", ")
        }
        let nonce = error == "use_dpop_nonce" ? nonces?.nonce(at: now()) : nil
        return Challenge(status: status, error: error, description: description, wwwAuthenticate: values, dpopNonce: nonce)
    }
}

/// Proofs' `jti`s remembered in this process for `window` (`DPoPProof` accepts an `iat` within
/// the skew either way, so twice the skew and some), at most `capacity` of them: while full, a
/// new proof is refused rather than an old one forgotten (forgetting would let it be replayed).
public final class MemoryReplayGuard: ReplayGuard, Sendable {
    private let state: Mutex<State>
    private let window: Duration
    private let capacity: Int
    private let clock: @Sendable () -> ContinuousClock.Instant

    struct State {
        var seen: [String: ContinuousClock.Instant] = [:]
        var order: [(String, ContinuousClock.Instant)] = []
        var head = 0
    }

    public init(
        window: Duration = .seconds(300), capacity: Int = 100_000,
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.window = window
        self.capacity = capacity
        self.clock = clock
        state = Mutex(State())
    }

    public func check(_ value: String) async -> ReplayCheck {
        let now = clock()
        return state.withLock { state in
            // Forget what left the window, oldest first.
            while state.head < state.order.count, now - state.order[state.head].1 >= window {
                state.seen[state.order[state.head].0] = nil
                state.head += 1
            }
            if state.head > 1024, state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
            guard state.seen[value] == nil else { return .seen }
            guard state.seen.count < capacity else { return .full }
            state.seen[value] = now
            state.order.append((value, now))
            return .first
        }
    }

    /// Whether `value` was seen within the window, without remembering it.
    public func contains(_ value: String) -> Bool {
        let now = clock()
        return state.withLock { state in state.seen[value].map { now - $0 < window } ?? false }
    }
}
