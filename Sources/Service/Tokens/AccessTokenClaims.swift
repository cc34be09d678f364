import Foundation
import JWTKit
import Spec

/// The claims of a Signet access token (RFC 9068), plus `credential_id`, the credential the token
/// was minted with, and `generation`, the agent's token generation when it was issued: revoking
/// that credential, or a suspension or a removed scope (which bump the generation), ends the token
/// at once on Signet's endpoints.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var iss: String
    public var sub: String
    /// The default audience, or the resources asked for (RFC 8707).
    public var aud: Audience
    public var client_id: String
    public var scope: String
    public var iat: Int64
    public var exp: Int64
    public var jti: String
    /// Absent in tokens minted before tokens were bound to their credential.
    public var credential_id: String?
    /// Absent in those tokens too: generation 0.
    public var generation: Int?
    /// Not set by Signet; checked when present.
    public var nbf: Int64?
    /// A DPoP-bound token's key (RFC 9449 §6.1: `{"jkt": thumbprint}`).
    public var cnf: Confirmation?
    /// A delegated token's actor (RFC 8693 §4.1): the agent acting for `sub`, with the actors
    /// before it nested inside.
    public var act: Actor?
    /// A token made by exchange: the tokens it came from (each one's own `TokenLink`), so it
    /// dies with any of them.
    public var parents: [TokenLink]?

    public init(
        iss: String, sub: String, aud: Audience, client_id: String, scope: String, iat: Int64, exp: Int64, jti: String,
        credential_id: String? = nil, generation: Int? = nil, nbf: Int64? = nil
    ) {
        self.generation = generation
        self.iss = iss
        self.sub = sub
        self.aud = aud
        self.client_id = client_id
        self.scope = scope
        self.iat = iat
        self.exp = exp
        self.jti = jti
        self.credential_id = credential_id
        self.nbf = nbf
    }

    /// Checks nothing by itself: times, issuer and audience are checked by `isCurrent` against an
    /// injected clock, revocation and liveness against the database.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The scopes as a list.
    public var scopes: [String] { scope.split(separator: " ").map(String.init) }

    /// Whether the token is for `issuer` (and `audience`, when given, is among its `aud`) and
    /// valid at `now`: not expired, not before its `nbf`, not issued in the future (each with
    /// `Spec.Defaults.clockSkewSeconds` of slack for the clocks of other instances, none for `exp`).
    public func isCurrent(issuer: String, audience: String?, at now: Date) -> Bool {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let skew = Int64(Defaults.clockSkewSeconds)
        return iss == issuer && (audience.map(aud.values.contains) ?? true) && exp > seconds && iat <= seconds + skew
            && (nbf ?? .min) <= seconds + skew
    }

    /// The token type it is used with: `DPoP` when bound to a key, else `Bearer`.
    public var tokenType: String { cnf == nil ? "Bearer" : "DPoP" }

    /// The agent whose client presents the token: the current actor of a delegated token, else
    /// the subject.
    public var holder: String { act?.sub ?? sub }

    /// Each delegation in its chain, oldest first: the agent that held the token then (the
    /// subject, then each actor in turn) let the next one act for it (`may_act`). Withdrawing that
    /// consent ends the token.
    public var consents: [Consent] {
        let actors = Array((act?.chain ?? []).reversed())
        return zip([sub] + actors, actors).map { Consent(grantor: $0, grantee: $1) }
    }

    public struct Consent: Codable, Equatable, Sendable {
        public var grantor: String
        public var grantee: String
    }

    /// What this token's life depends on of its own: it, its client's agent at its generation,
    /// and the credential it was minted with.
    public var link: TokenLink {
        TokenLink(jti: jti, agent: holder, credential_id: credential_id, generation: generation ?? 0)
    }
}

/// One token a derived token came from, by what ends it: its `jti` (revoked), its client's agent
/// (suspended, or its generation moved on) and the credential it was minted with (revoked or
/// expired).
public struct TokenLink: Codable, Equatable, Sendable {
    public var jti: String
    public var agent: String
    public var credential_id: String?
    public var generation: Int
}

/// The `act` claim (RFC 8693 §4.1): the acting agent, and the actor before it, if any.
public struct Actor: Codable, Equatable, Sendable {
    public var sub: String
    /// Boxed: a struct cannot hold itself.
    private var prior: [Actor]

    public var act: Actor? { prior.first }

    public init(sub: String, act: Actor? = nil) {
        self.sub = sub
        prior = act.map { [$0] } ?? []
    }

    /// The chain, the current actor first.
    public var chain: [String] { [sub] + (act?.chain ?? []) }

    /// How many actors deep the chain is (1 for a single actor).
    public var depth: Int { 1 + (act?.depth ?? 0) }

    enum CodingKeys: String, CodingKey { case sub, act }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sub = try container.decode(String.self, forKey: .sub)
        prior = try container.decodeIfPresent(Actor.self, forKey: .act).map { [$0] } ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sub, forKey: .sub)
        try container.encodeIfPresent(act, forKey: .act)
    }
}

/// `aud`: one string, or an array when there are several (RFC 7519 §4.1.3).
public struct Audience: Codable, Equatable, Sendable, ExpressibleByStringLiteral {
    public var values: [String]

    public init(_ values: [String]) { self.values = values }
    public init(stringLiteral value: String) { values = [value] }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) { values = [one] } else { values = try container.decode([String].self) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if values.count == 1 { try container.encode(values[0]) } else { try container.encode(values) }
    }
}

/// The confirmation claim of a sender-constrained token (RFC 7800, RFC 9449 §6.1).
public struct Confirmation: Codable, Equatable, Sendable {
    /// The RFC 7638 thumbprint of the DPoP key.
    public var jkt: String

    public init(jkt: String) { self.jkt = jkt }
}
