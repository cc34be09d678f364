import Foundation
import Spec

/// Token exchange (RFC 8693): the request as the form gives it, and the pure rules that decide
/// what a derived token may be (the instant and the tokens' states passed in). `TokenService`'s
/// `exchange` is their shell: it verifies the tokens, reads their state, asks the policy, signs and
/// audits.
///
/// - Impersonation (no `actor_token`): the client a token was issued to narrows it (fewer scopes,
///   fewer audiences, an earlier expiry); its `act`, if any, stays.
/// - Delegation (`actor_token`, the calling agent's own token): the agent holding the subject
///   token (its subject, or its current actor) must name the caller in `may_act`; the new token's
///   `act` is the caller, with the subject token's `act` nested inside (RFC 8693 §4.1), and its
///   `client_id` the caller's.
///
/// Either way scopes and audiences only shrink, the expiry never passes any parent's, and the
/// token keeps every parent's `TokenLink`, so it dies with any of them.
struct TokenExchangeRequest: Equatable {
    static let grantType = "urn:ietf:params:oauth:grant-type:token-exchange"
    static let accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
    static let jwtType = "urn:ietf:params:oauth:token-type:jwt"
    /// The token types a subject or actor token may be: both name a Signet access token.
    static let acceptedTypes: Set<String> = [accessTokenType, jwtType]

    let subjectToken: String
    let actorToken: String?
    /// Nil: none asked for (the subject token's, narrowed).
    let requestedScopes: [String]?
    /// RFC 8707 `resource`s and RFC 8693 `audience`s: each must be one of the subject token's.
    let audiences: [String]

    /// Reads the request's parameters; every refusal is `invalid_request` naming the parameter
    /// (RFC 8693 §2.2.2), or `invalid_scope` for a malformed scope.
    init(_ form: OAuthForm) throws(OAuthError) {
        guard let subject = form["subject_token"], !subject.isEmpty else {
            throw OAuthError(.invalidRequest, "subject_token is required")
        }
        guard let subjectType = form["subject_token_type"] else {
            throw OAuthError(.invalidRequest, "subject_token_type is required")
        }
        guard Self.acceptedTypes.contains(subjectType) else {
            throw OAuthError(.invalidRequest, "subject_token_type must be \(Self.accessTokenType) (or \(Self.jwtType))")
        }
        if let requested = form["requested_token_type"], !Self.acceptedTypes.contains(requested) {
            throw OAuthError(.invalidRequest, "requested_token_type must be \(Self.accessTokenType): only access tokens (JWTs) are issued")
        }
        let actor = form["actor_token"]
        let actorType = form["actor_token_type"]
        if let actor, !actor.isEmpty {
            guard let actorType else { throw OAuthError(.invalidRequest, "actor_token_type is required with actor_token") }
            guard Self.acceptedTypes.contains(actorType) else {
                throw OAuthError(.invalidRequest, "actor_token_type must be \(Self.accessTokenType) (or \(Self.jwtType))")
            }
            actorToken = actor
        } else {
            guard actorType == nil else { throw OAuthError(.invalidRequest, "actor_token_type is given without an actor_token") }
            actorToken = nil
        }
        subjectToken = subject
        if let scope = form["scope"] {
            var seen: Set<String> = []
            let scopes = scope.split(separator: " ", omittingEmptySubsequences: true).map(String.init).filter { seen.insert($0).inserted }
            guard scopes.allSatisfy(AgentValidation.isScopeToken) else {
                throw OAuthError(.invalidScope, "scope must be space-separated scope tokens")
            }
            requestedScopes = scopes
        } else {
            requestedScopes = nil
        }
        var audiences: [String] = []
        for value in form.values("resource") + form.values("audience") where !audiences.contains(value) {
            guard AgentValidation.isResource(value) else {
                throw OAuthError(.invalidTarget, "resource and audience must be absolute URIs without a fragment")
            }
            audiences.append(value)
        }
        self.audiences = audiences
    }
}

/// What an exchange may issue, before the policy's word: `TokenExchange.plan`.
struct TokenExchangePlan: Equatable {
    /// The new token's `act` (nil: an undelegated token narrowed by its own client).
    var act: Actor?
    /// The scopes it may carry at most; the policy narrows them further.
    var scopes: [String]
    var audience: Audience
    /// Epoch seconds.
    var expiry: Int64
    var parents: [TokenLink]
}

enum TokenExchange {
    /// The most parent links a token may carry (each about 130 bytes of claims, so a token that
    /// carries them still fits the form's 8 KiB): a delegation adds two, a narrowing one, so a
    /// chain of the default depth (4) with a narrowing at each step fits (12), as does the deepest
    /// allowed chain (8) without.
    static let maxParents = 16

    /// The rules of one exchange by `caller` (the authenticated client's agent, holding `callerScopes`).
    ///
    /// - Parameters:
    ///   - subject: the subject token's claims, verified and live.
    ///   - holderMayAct: the `may_act` of the agent holding the subject token (`subject.holder`).
    ///   - actor: the actor token's claims, verified and live, when one was given.
    ///   - latest: the expiry a new token would have (now + `TOKEN_TTL_SECONDS`).
    ///   - binding: the request's DPoP proof key (its thumbprint), and whether the caller's tokens
    ///     must be DPoP-bound. A bound subject or actor token makes the new one bound too: its own
    ///     client proves the key it holds (impersonation: the subject's; delegation: the actor
    ///     token's), so an exchange never turns a key-bound token into a bearer one.
    ///   - now: epoch seconds; a token that would already be expired is refused.
    static func plan(
        caller: (agentID: String, clientID: String, scopes: [String]), subject: AccessTokenClaims, holderMayAct: [String],
        actor: AccessTokenClaims?, request: TokenExchangeRequest, maxDepth: Int, latest: Int64,
        binding: (proof: String?, callerBound: Bool) = (nil, false), now: Int64 = 0
    ) throws(OAuthError) -> TokenExchangePlan {
        var act = subject.act
        var scopes = subject.scopes
        var parents = [subject.link] + (subject.parents ?? [])
        var expiry = min(latest, subject.exp)
        if let actor {
            guard actor.client_id == caller.clientID, actor.sub == caller.agentID, actor.act == nil else {
                throw OAuthError(.invalidRequest, "actor_token must be an access token of the calling client, acting for itself")
            }
            guard holderMayAct.contains(caller.agentID) else {
                throw OAuthError(.invalidRequest, "the agent holding subject_token does not let this agent act for it (may_act)")
            }
            let depth = (subject.act?.depth ?? 0) + 1
            guard depth <= maxDepth else {
                throw OAuthError(.invalidRequest, "the delegation chain would be \(depth) actors deep; at most \(maxDepth)")
            }
            act = Actor(sub: caller.agentID, act: subject.act)
            // A delegated token carries only what the actor itself may hold too.
            scopes = scopes.filter(caller.scopes.contains)
            parents += [actor.link] + (actor.parents ?? [])
            expiry = min(expiry, actor.exp)
        } else {
            guard subject.client_id == caller.clientID else {
                throw OAuthError(
                    .invalidRequest,
                    "subject_token was not issued to this client: without an actor_token only its own client may exchange it")
            }
        }
        if let requested = request.requestedScopes {
            if let wider = requested.first(where: { !subject.scopes.contains($0) }) {
                throw OAuthError(.invalidScope, "scope \(wider.prefix(64)) is not in subject_token: an exchange only narrows")
            }
            scopes = requested.filter(scopes.contains)
        }
        // A token made by exchange never acts on Signet itself.
        scopes.removeAll(where: Scopes.actsOnSignet)
        guard !scopes.isEmpty else { throw OAuthError(.invalidScope, "no scope of subject_token is left for this exchange") }
        var audience = subject.aud
        if !request.audiences.isEmpty {
            if let wider = request.audiences.first(where: { !subject.aud.values.contains($0) }) {
                throw OAuthError(.invalidTarget, "\(wider.prefix(128)) is not an audience of subject_token: an exchange only narrows")
            }
            audience = Audience(request.audiences)
        }
        // Possession: the key the caller's own token is bound to, proven by this request.
        let callersToken = actor ?? subject
        if let jkt = callersToken.cnf?.jkt, binding.proof != jkt {
            throw OAuthError(
                .invalidDPoPProof,
                "the \(actor == nil ? "subject" : "actor") token is DPoP-bound: send a DPoP proof signed with its key")
        }
        if binding.proof == nil, binding.callerBound || subject.cnf != nil {
            throw OAuthError(.invalidDPoPProof, "the exchanged token must be DPoP-bound: send a DPoP proof")
        }
        guard expiry > now else { throw OAuthError(.invalidRequest, "subject_token or actor_token expires now") }
        guard parents.count <= maxParents else {
            throw OAuthError(.invalidRequest, "the token's lineage is too long (at most \(maxParents) parent tokens)")
        }
        return TokenExchangePlan(act: act, scopes: scopes, audience: audience, expiry: expiry, parents: parents)
    }
}
