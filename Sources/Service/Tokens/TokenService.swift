import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import SignetJOSE
import SignetResourceServer
import Spec

/// Issues, introspects and revokes access tokens.
public struct TokenService: Sendable {
    let keyRing: KeyRing
    let directory: ClientDirectory
    let policy: any TokenPolicy
    let recorder: LastUsedRecorder
    let pool: ConnectionPool
    let issuer: String
    let audience: String
    let ttl: Duration
    /// The wall clock; tests inject their own.
    let now: @Sendable () -> Date
    /// Told the result of every token request and each signature's latency.
    let metrics: SignetMetrics?
    /// Where DPoP proofs' `jti`s are remembered (the limiter's Redis, or memory).
    var replay: (any ReplayGuard)?
    /// Server nonces, when `DPOP_NONCE_REQUIRED`.
    var dpopNonces: DPoPNonces?
    /// The deepest `act` chain an exchange may make (`TOKEN_EXCHANGE_MAX_DEPTH`).
    var exchangeMaxDepth = Defaults.tokenExchangeMaxDepth

    /// What `/oauth/token` answers.
    struct Issued {
        let accessToken: String
        let expiresIn: Int64
        let scope: String
        /// `Bearer`, or `DPoP` for a token bound to a key.
        var tokenType = "Bearer"
        /// A fresh `DPoP-Nonce` for the client's next proof, when nonces are required.
        var nonce: String?
        /// Token exchange's `issued_token_type` (RFC 8693 §2.2.1); nil for other grants.
        var issuedTokenType: String?

        /// `{"access_token", "expires_in", "scope", "token_type"}`, written by hand on this hot
        /// path: a compact JWS is base64url and dots, and scope tokens exclude `"` and `\\`
        /// (RFC 6749 §3.3), so nothing needs escaping.
        var response: Response {
            let issued = issuedTokenType.map { #","issued_token_type":"\#($0)""# } ?? ""
            let json =
                #"{"access_token":"\#(accessToken)","expires_in":\#(expiresIn)\#(issued),"scope":"\#(scope)","token_type":"\#(tokenType)"}"#
            var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store", .pragma: "no-cache"]
            if let nonce { headers[.dpopNonce] = nonce }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
        }
    }

    /// What a token request asks for beyond its scopes.
    struct Binding {
        /// RFC 8707 resources: the token's `aud` (empty: the default audience).
        var resources: [String] = []
        /// The DPoP key's thumbprint: the token's `cnf.jkt`.
        var dpopThumbprint: String?
    }

    /// The client-credentials grant for an authenticated client (RFC 6749 §4.4). `audit` is made
    /// only for a refusal: most requests are granted and need none.
    func issue(
        for client: ClientRecord,
        credential: ClientRecord.Credential?,
        requestedScope: String?,
        binding: Binding = Binding(),
        clientAddress: String? = nil,
        audit: @autoclosure () -> AuditContext,
        logger: Logger
    ) async throws -> Issued {
        guard client.status == .active else {
            await deny(client, reason: "agent is \(client.status.rawValue)", audit: audit(), logger: logger)
            throw OAuthError(.unauthorizedClient, "the agent is \(client.status.rawValue)")
        }
        for resource in binding.resources where resource != audience && !client.resources.contains(resource) {
            throw OAuthError(.invalidTarget, "resource \(resource.prefix(128)) is not one this agent is registered for")
        }
        if client.dpopBound, binding.dpopThumbprint == nil {
            throw OAuthError(.invalidDPoPProof, "this agent's tokens must be DPoP-bound: send a DPoP proof")
        }
        var requested: [String] = []
        if let requestedScope {
            requested = requestedScope.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard requested.allSatisfy(AgentValidation.isScopeToken) else {
                throw OAuthError(.invalidScope, "scope must be space-separated scope tokens")
            }
            var seen: Set<String> = []
            requested = requested.filter { seen.insert($0).inserted }
        }
        let subject = PolicySubject(
            agentID: client.agentID, owner: client.owner, status: client.status, scopes: client.scopes, clientAddress: clientAddress,
            resources: binding.resources)
        var granted = try await policy.grantedScopes(for: subject, requested: requested)
        if requested.isEmpty {
            // A default grant never carries a scope that acts on Signet itself: only when asked for.
            granted.removeAll(where: Scopes.actsOnSignet)
        }
        guard !granted.isEmpty else {
            await deny(client, reason: "no requested scope is granted", audit: audit(), logger: logger)
            // Scopes the agent could have had, refused by the policy: a policy denial, not the client's mistake.
            let eligible =
                requested.isEmpty
                ? client.scopes.contains { !Scopes.actsOnSignet($0) } : requested.contains(where: client.scopes.contains)
            var error = OAuthError(
                .invalidScope,
                requested.isEmpty
                    ? "the agent holds no scope granted by default (ask for the scopes it needs)"
                    : "none of the requested scopes is granted to this agent")
            error.deniedByPolicy = eligible
            throw error
        }
        let issuedAt = Int64(now().timeIntervalSince1970.rounded(.down))
        let lifetime = ttl.components.seconds
        var claims = AccessTokenClaims(
            iss: issuer,
            sub: client.agentID,
            aud: Audience(binding.resources.isEmpty ? [audience] : binding.resources),
            client_id: client.clientID,
            scope: granted.joined(separator: " "),
            iat: issuedAt,
            exp: issuedAt + lifetime,
            jti: CredentialHasher.randomBase64URL(byteCount: 16),
            credential_id: credential?.id,
            generation: client.tokenGeneration
        )
        claims.cnf = binding.dpopThumbprint.map(Confirmation.init(jkt:))
        let signing = ContinuousClock.now
        let token = try await keyRing.sign(claims)
        metrics?.signed(in: ContinuousClock.now - signing)
        if let credential { recorder.noteUse(of: credential.id) }
        return Issued(accessToken: token, expiresIn: lifetime, scope: claims.scope, tokenType: claims.tokenType)
    }

    /// Token exchange (RFC 8693) for an authenticated client: the subject token (and the actor
    /// token) verified and read live in one round trip each, `TokenExchange.plan`'s rules, then the
    /// policy, whose input names the subject and the whole actor chain. The exchange is an audit
    /// row (`token.exchange`, naming the chain and the parents) written before the token is
    /// answered: no token leaves without its row.
    func exchange(
        for client: ClientRecord,
        credential: ClientRecord.Credential,
        request: TokenExchangeRequest,
        dpopThumbprint: String?,
        clientAddress: String?,
        audit: AuditContext,
        logger: Logger
    ) async throws -> Issued {
        guard client.status == .active else {
            await deny(client, reason: "agent is \(client.status.rawValue)", audit: audit, logger: logger)
            throw OAuthError(.unauthorizedClient, "the agent is \(client.status.rawValue)")
        }
        // Both tokens verified, then read live on one connection.
        guard let subjectClaims = await currentClaims(of: request.subjectToken) else {
            throw OAuthError(.invalidRequest, "subject_token is not an active access token of this issuer")
        }
        var actorClaims: AccessTokenClaims?
        if let actorToken = request.actorToken {
            actorClaims = await currentClaims(of: actorToken)
            if actorClaims == nil { throw OAuthError(.invalidRequest, "actor_token is not an active access token of this issuer") }
        }
        let states = try await live([subjectClaims] + (actorClaims.map { [$0] } ?? []))
        guard let (subject, holder) = states[0] else {
            throw OAuthError(.invalidRequest, "subject_token is not an active access token of this issuer")
        }
        var actor: AccessTokenClaims?
        if actorClaims != nil {
            guard let live = states[1] else {
                throw OAuthError(.invalidRequest, "actor_token is not an active access token of this issuer")
            }
            actor = live.claims
        }
        let issuedAt = Int64(now().timeIntervalSince1970.rounded(.down))
        let plan = try TokenExchange.plan(
            caller: (client.agentID, client.clientID, client.scopes), subject: subject, holderMayAct: holder.mayAct, actor: actor,
            request: request, maxDepth: exchangeMaxDepth, latest: issuedAt + ttl.components.seconds,
            binding: (proof: dpopThumbprint, callerBound: client.dpopBound), now: issuedAt)
        // The policy sees every audience the token will carry but the default one, asked for or inherited.
        let policySubject = PolicySubject(
            agentID: client.agentID, owner: client.owner, status: client.status, scopes: client.scopes, clientAddress: clientAddress,
            resources: plan.audience.values.filter { $0 != audience },
            exchange: PolicySubject.Exchange(subject: subject.sub, actors: plan.act?.chain ?? []))
        let granted = try await policy.grantedScopes(for: policySubject, requested: plan.scopes).filter(plan.scopes.contains)
        guard !granted.isEmpty else {
            var error = OAuthError(.invalidScope, "the policy grants none of the scopes this exchange may carry")
            error.deniedByPolicy = true
            throw error
        }
        var claims = AccessTokenClaims(
            iss: issuer, sub: subject.sub, aud: plan.audience, client_id: client.clientID, scope: granted.joined(separator: " "),
            iat: issuedAt, exp: plan.expiry, jti: CredentialHasher.randomBase64URL(byteCount: 16), credential_id: credential.id,
            generation: client.tokenGeneration)
        claims.act = plan.act
        claims.parents = plan.parents
        claims.cnf = dpopThumbprint.map(Confirmation.init(jkt:))
        let token = try await keyRing.sign(claims)
        let details: [String: JSONValue] = [
            "jti": .string(claims.jti), "subject": .string(subject.sub),
            "actorChain": .array((plan.act?.chain ?? []).map(JSONValue.string)), "clientId": .string(client.clientID),
            "scope": .string(claims.scope), "parents": .array(plan.parents.map { JSONValue.string($0.jti) }),
            "delegated": .bool(actor != nil),
        ]
        // One statement, committed on its own: no BEGIN and COMMIT round trips.
        try await pool.withConnection { connection in
            try AuditLog.append(.tokenExchange, agentID: subject.sub, context: audit, details: details, on: connection)
        }
        recorder.noteUse(of: credential.id)
        var issued = Issued(
            accessToken: token, expiresIn: max(0, plan.expiry - issuedAt), scope: claims.scope, tokenType: claims.tokenType)
        issued.issuedTokenType = TokenExchangeRequest.accessTokenType
        return issued
    }

    /// The DPoP proof of a request to `path` (nil when it carries none): checked, and its `jti`
    /// remembered. More than one `DPoP` header is refused (RFC 9449 §4.3).
    func dpopProof(_ request: Request, path: String, accessToken: String? = nil) async throws -> DPoPProof? {
        let values = request.headers[values: .dpop]
        guard !values.isEmpty else { return nil }
        guard values.count == 1 else { throw OAuthError(.invalidDPoPProof, "send one DPoP header") }
        let now = now()
        let nonces = dpopNonces
        func refusal(_ failure: DPoPProofError) -> OAuthError {
            var error = OAuthError(failure == .nonceRequired ? .useDPoPNonce : .invalidDPoPProof, failure.description)
            if let nonces { error.headers[.dpopNonce] = nonces.nonce(at: now) }
            return error
        }
        let proof: DPoPProof
        do throws(DPoPProofError) {
            proof = try DPoPProof(
                values[0], method: request.method.rawValue, url: issuer + path, accessToken: accessToken, at: now,
                skew: Int64(Defaults.clockSkewSeconds), nonceIsValid: nonces.map { nonces in { nonces.isValid($0, at: now) } })
        } catch {
            throw refusal(error)
        }
        switch await replay?.check(proof.replayKey) ?? .first {
        case .first: return proof
        case .seen: throw refusal(.invalid("it was used before (jti)"))
        case .full: throw SignetError.unavailable("too many proofs to remember while Redis is not answering; retry shortly")
        }
    }

    /// The audit trail's reason for a known client's failed authentication: a secret's, or the
    /// rule a client assertion broke (a replay among them: a theft signal of its own).
    static func denialReason(method: ClientCredentials.Method, reason: String?) -> String {
        switch method {
        case .basic, .post: "wrong or expired client secret"
        case .privateKeyJWT: "client assertion refused: " + (reason ?? "invalid")
        }
    }

    /// Records a refused token request of a known agent: counted in the audit trail, one row per
    /// agent, address, minute and reason (`AuditLog.countDenial`).
    func deny(_ client: ClientRecord, reason: String, audit: AuditContext, logger: Logger) async {
        logger.info("token denied", metadata: ["agent.id": "\(client.agentID)", "reason": "\(reason)"])
        let bucket = Int64((now().timeIntervalSince1970 / 60).rounded(.down))
        do {
            // In a transaction: a count whose COMMIT is lost with its connection is not counted again.
            try await pool.transaction { connection in
                try AuditLog.countDenial(agentID: client.agentID, reason: reason, context: audit, bucket: bucket, on: connection)
            }
        } catch {
            logger.warning("could not write the token.denied audit event", metadata: ["error": "\(error)"])
        }
    }

    /// The claims of `token` when a published key signed it and it is current for this issuer
    /// (`AccessTokenClaims.isCurrent`), whatever its audience (the default or resources it was
    /// issued for); no database read.
    func currentClaims(of token: String) async -> AccessTokenClaims? {
        guard let claims = await keyRing.verify(token), claims.isCurrent(issuer: issuer, audience: nil, at: now()) else {
            return nil
        }
        return claims
    }

    /// The claims of a verified, current token as they stand now, read from the database in one
    /// round trip (no cache: every instance sees a change at once): nil when the token is
    /// revoked, its credential is revoked or expired, its agent is not active, or the agent's
    /// token generation moved on since it was issued (a suspension or a removed scope), or it is
    /// for an audience that is neither the default one nor a resource the agent holds; else the
    /// claims with their scopes narrowed to the agent's current ones (nil when none is left).
    func liveClaims(_ claims: AccessTokenClaims) async throws -> AccessTokenClaims? {
        try await live(claims)?.claims
    }

    /// `liveClaims`, with the state of the token's holder as it was read. A token made by exchange
    /// is live only while every token it came from is (`TokenLink`); its audiences are checked
    /// when its first parent was issued, and a resource dropped since moved that parent's
    /// generation on.
    func live(_ claims: AccessTokenClaims) async throws -> (claims: AccessTokenClaims, state: RevocationStore.TokenState)? {
        try await live([claims])[0]
    }

    /// `live` of several tokens, read on one pooled connection.
    func live(_ all: [AccessTokenClaims]) async throws -> [(claims: AccessTokenClaims, state: RevocationStore.TokenState)?] {
        let now = self.now()
        let states = try await pool.withConnection { connection in
            try all.map { try RevocationStore.state(of: $0, at: now, on: connection) }
        }
        return zip(all, states).map { judge($0, $1) }
    }

    /// The rules of `liveClaims` on a state as it was read.
    private func judge(_ claims: AccessTokenClaims, _ state: RevocationStore.TokenState?) -> (
        claims: AccessTokenClaims, state: RevocationStore.TokenState
    )? {
        guard let state, !state.revoked, state.credentialLive, state.status == .active,
            state.tokenGeneration == claims.generation ?? 0, state.deadParents == 0,
            // Every audience is the default one or a resource the agent still holds.
            claims.parents != nil || claims.aud.values.allSatisfy({ $0 == audience || state.resources.contains($0) })
        else { return nil }
        let held = Set(state.scopes)
        let live = claims.scopes.filter(held.contains)
        guard !live.isEmpty else { return nil }
        var narrowed = claims
        narrowed.scope = live.joined(separator: " ")
        return (narrowed, state)
    }

    /// Revokes `token` until it expires; tokens that are not ours, or already expired, are ignored
    /// (RFC 7009 §2.2). `clientID`, when given, must be the token's client.
    func revoke(_ token: String, by clientID: String?, audit: AuditContext) async throws {
        guard let claims = await keyRing.verify(token), claims.exp > Int64(now().timeIntervalSince1970) else { return }
        if let clientID, clientID != claims.client_id { return }
        try await pool.transaction { connection in
            if try RevocationStore.revoke(jti: claims.jti, until: claims.exp, on: connection) {
                try AuditLog.append(
                    .tokenRevoke, agentID: claims.sub, context: audit, details: ["jti": .string(claims.jti)], on: connection)
            }
        }
    }
}

extension HTTPField.Name {
    static let dpop = HTTPField.Name("DPoP")!
    static let dpopNonce = HTTPField.Name("DPoP-Nonce")!
}

extension TokenService: TokenLiveness {
    /// Signet's own answer to "is this token still active" for the resource-server verifier on its
    /// routes: the database's word, as introspection reads it (`liveClaims`).
    public func isActive(_ token: VerifiedAccessToken) async throws -> Bool {
        // A token made by exchange never acts on Signet: not active here, whatever its parents.
        if !token.actors.isEmpty || token.derived { return false }
        let claims = AccessTokenClaims(
            iss: issuer, sub: token.subject, aud: Audience(token.audience), client_id: token.clientID,
            scope: token.scopes.joined(separator: " "), iat: token.issuedAt, exp: token.expiresAt, jti: token.jti,
            credential_id: token.credentialID, generation: token.generation)
        return try await liveClaims(claims) != nil
    }
}
