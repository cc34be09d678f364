import Crypto
import Foundation
import Hummingbird
import SignetJOSE

/// A secret bearer token (the admin's, the health check's), compared in constant time: both
/// sides are hashed to SHA-256 first, so neither the length nor a prefix leaks.
struct SecretToken: Sendable {
    private let digest: SHA256Digest

    init(_ secret: String) {
        digest = SHA256.hash(data: Data(secret.utf8))
    }

    func matches(_ candidate: String) -> Bool {
        var difference: UInt8 = 0
        for (left, right) in zip(SHA256.hash(data: Data(candidate.utf8)), digest) { difference |= left ^ right }
        return difference == 0
    }
}

/// The admin token (`SIGNET_ADMIN_TOKEN`).
struct AdminAuthenticator: Sendable {
    private let token: SecretToken
    /// The admin's rate-limit subject, made from the token (a new token starts a new count).
    let subject: RateLimitSubject

    init(adminToken: String) {
        token = SecretToken(adminToken)
        subject = RateLimitSubject(.admin, adminToken)
    }

    func isAdmin(_ candidate: String) -> Bool { token.matches(candidate) }
}

/// Client credentials on `/oauth/*` and an agent's own rotation (RFC 6749 §2.3.1): HTTP Basic, or `client_id` and
/// `client_secret` in the form. A client id not of the shape Signet issues is refused without a
/// lookup; an unknown one is remembered as unknown by the directory.
struct ClientCredentialsAuthenticator: Sendable {
    let directory: ClientDirectory
    let now: @Sendable () -> Date
    /// Where client assertions' `jti`s are remembered.
    var replay: (any ReplayGuard)?
    /// `aud` of a client assertion: this issuer, its token endpoint, or the endpoint called.
    var issuer: String = ""

    enum Outcome {
        case none
        case authenticated(Principal)
        case failed(AuthFailure)
    }

    /// - Parameter mayQuery: false while the source address is over its budget: only a client
    ///   already in the directory's cache is checked (an HMAC, no query).
    /// - Parameter admission: bounds the queries one address may have under way at once.
    /// - Parameter assertion: the form's client assertion, when the caller read it already.
    func authenticate(
        _ request: Request, form: OAuthForm, mayQuery: Bool, admission: ClientDirectory.Admission? = nil,
        assertion: ClientAssertion? = nil
    ) async throws -> Outcome {
        if form["client_assertion"] != nil || form["client_assertion_type"] != nil {
            return try await authenticateAssertion(request, form: form, mayQuery: mayQuery, admission: admission, parsed: assertion)
        }
        let credentials: ClientCredentials?
        do {
            credentials = try ClientCredentials.from(request, form: form)
        } catch {
            return .failed(.malformed(error))
        }
        guard let credentials else { return .none }
        guard CredentialHasher.isWellFormedClientID(credentials.clientID) else {
            return .failed(.invalidClient(method: credentials.method, known: nil))
        }
        let found: (client: ClientRecord?, credential: ClientRecord.Credential?)
        switch try await resolve(
            credentials.clientID, mayQuery: mayQuery, admission: admission,
            matching: { client in
                directory.credential(of: client, matching: credentials.secret, at: now())
            })
        {
        case .found(let client, let credential): found = (client, credential)
        case .failed(let failure): return .failed(failure)
        }
        guard let client = found.client else { return .failed(.invalidClient(method: credentials.method, known: nil)) }
        guard let credential = found.credential else { return .failed(.invalidClient(method: credentials.method, known: client)) }
        return .authenticated(.client(client, credential))
    }
}

extension ClientCredentialsAuthenticator {
    /// The client `clientID` names and its live credential that `matching` accepts, as both
    /// methods find them: from the cache; a query (shared by concurrent requests, admitted per
    /// address) when `mayQuery`; and once more when the cached client does not know what it was
    /// sent (it may predate a rotation made on another instance) unless it was read within
    /// `refetchInterval` (a bound on what wrong secrets or assertions cost) or this request
    /// waited to read it. Without `mayQuery` (the address is over its budget) only the cache.
    func resolve(
        _ clientID: String, mayQuery: Bool, admission: ClientDirectory.Admission?,
        matching: (ClientRecord) -> ClientRecord.Credential?
    ) async throws -> Resolution {
        guard mayQuery else {
            guard let cached = directory.cachedClient(clientID) else { return .failed(.notTried) }
            return .found(cached, matching(cached))
        }
        do {
            let found = try await directory.lookup(clientID, admission: admission)
            var client = found.record
            var credential = client.flatMap(matching)
            if client != nil, credential == nil, !found.read {
                client = try await directory.lookup(clientID, admission: admission, readSince: directory.refetchCutoff()).record
                credential = client.flatMap(matching)
            }
            return .found(client, credential)
        } catch is ClientDirectory.LookupRefused {
            // Not the client's fault, and maybe a real client behind a busy NAT: 503 and a
            // retry, never a 401 for credentials nobody checked.
            return .failed(.unavailable(SignetError.unavailable("too many client lookups from this address at once; retry shortly")))
        }
    }

    /// What `resolve` found: the client (nil: none by that id) and its matching credential, or why
    /// it could not look.
    enum Resolution {
        case found(ClientRecord?, ClientRecord.Credential?)
        case failed(AuthFailure)
    }

    /// `private_key_jwt` (RFC 7523 §2.2): the assertion's client is looked up as a secret's is
    /// (cache, one shared query, the address's admission; a client whose cached keys do not
    /// verify it is read again, as for an unknown secret), its signature checked against the
    /// client's live key sets, then its claims, then its `jti` against the replay guard, last, so
    /// only an assertion its client signed can fill it.
    func authenticateAssertion(
        _ request: Request, form: OAuthForm, mayQuery: Bool, admission: ClientDirectory.Admission?, parsed: ClientAssertion? = nil
    ) async throws -> Outcome {
        guard request.headers[.authorization] == nil, form["client_secret"] == nil else {
            return .failed(.malformed(OAuthError(.invalidRequest, "use one client authentication method, not both")))
        }
        guard form["client_assertion_type"] == ClientAssertion.type else {
            return .failed(.malformed(OAuthError(.invalidRequest, "client_assertion_type must be \(ClientAssertion.type)")))
        }
        guard let token = form["client_assertion"], !token.isEmpty else {
            return .failed(.malformed(OAuthError(.invalidRequest, "client_assertion is required with client_assertion_type")))
        }
        let assertion: ClientAssertion
        if let parsed {
            assertion = parsed
        } else {
            do {
                assertion = try ClientAssertion(token)
            } catch {
                return .failed(.invalidClient(method: .privateKeyJWT, known: nil, reason: error.description))
            }
        }
        if let named = form["client_id"], named != assertion.clientID {
            return .failed(.malformed(OAuthError(.invalidRequest, "client_id differs from the client assertion's sub")))
        }
        guard CredentialHasher.isWellFormedClientID(assertion.clientID) else {
            return .failed(.invalidClient(method: .privateKeyJWT, known: nil))
        }
        let found: (client: ClientRecord?, credential: ClientRecord.Credential?)
        switch try await resolve(
            assertion.clientID, mayQuery: mayQuery, admission: admission,
            matching: { client in
                assertion.credential(of: client, at: now())
            })
        {
        case .found(let client, let credential): found = (client, credential)
        case .failed(let failure): return .failed(failure)
        }
        // The same answer for an unknown client as for a known one whose keys do not verify it.
        let unverified = "no registered key of the client verifies the assertion"
        guard let client = found.client else { return .failed(.invalidClient(method: .privateKeyJWT, known: nil, reason: unverified)) }
        guard let credential = found.credential else {
            return .failed(.invalidClient(method: .privateKeyJWT, known: client, reason: unverified))
        }
        let replayKey: String
        do {
            replayKey = try assertion.check(audiences: audiences(for: request), at: now())
        } catch {
            return .failed(.invalidClient(method: .privateKeyJWT, known: client, reason: error.description))
        }
        switch await replay?.check(replayKey) ?? .first {
        case .first: break
        case .seen:
            return .failed(.invalidClient(method: .privateKeyJWT, known: client, reason: "the client assertion was used before (jti)"))
        case .full:
            return .failed(
                .unavailable(SignetError.unavailable("too many assertions to remember while Redis is not answering; retry shortly")))
        }
        return .authenticated(.client(client, credential))
    }
}

extension ClientCredentialsAuthenticator {
    /// What an assertion's `aud` may name: at the OAuth endpoints the issuer, the token endpoint or
    /// the endpoint called; on the token-authority route (credential rotation) only that route's
    /// own URL, so an assertion made for a token request, captured unused, cannot rotate keys.
    func audiences(for request: Request) -> [String] {
        let called = issuer + request.uri.path
        return request.uri.path.hasPrefix("/oauth/") ? [issuer, issuer + "/oauth/token", called] : [called]
    }
}

extension Request {
    /// The token of `Authorization: Bearer <token>`.
    var bearerToken: String? {
        guard let header = headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}
