import Crypto
import Foundation
import Hummingbird

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

    enum Outcome {
        case none
        case authenticated(Principal)
        case failed(AuthFailure)
    }

    /// - Parameter mayQuery: false while the source address is over its budget: only a client
    ///   already in the directory's cache is checked (an HMAC, no query).
    /// - Parameter admission: bounds the queries one address may have under way at once.
    func authenticate(
        _ request: Request, form: OAuthForm, mayQuery: Bool, admission: ClientDirectory.Admission? = nil
    ) async throws -> Outcome {
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
        func matching(_ client: ClientRecord?) -> ClientRecord.Credential? {
            client.flatMap { directory.credential(of: $0, matching: credentials.secret, at: now()) }
        }
        var client: ClientRecord?
        var credential: ClientRecord.Credential?
        if mayQuery {
            do {
                let found = try await directory.lookup(credentials.clientID, admission: admission)
                client = found.record
                credential = matching(client)
                if client != nil, credential == nil, !found.read {
                    // The cached client may predate a rotation made on another instance, whose new
                    // secret this is: read it again before refusing, unless it was read within
                    // `refetchInterval` (a bound on what wrong secrets cost). A client this request
                    // waited to read is not read twice.
                    let readSince = directory.refetchCutoff()
                    client = try await directory.lookup(credentials.clientID, admission: admission, readSince: readSince).record
                    credential = matching(client)
                }
            } catch is ClientDirectory.LookupRefused {
                // Not the client's fault, and maybe a real client behind a busy NAT: 503 and a
                // retry, never a 401 for a secret nobody checked.
                return .failed(.unavailable(SignetError.unavailable("too many client lookups from this address at once; retry shortly")))
            }
        } else {
            guard let cached = directory.cachedClient(credentials.clientID) else { return .failed(.notTried) }
            client = cached
            credential = matching(cached)
        }
        guard let client else { return .failed(.invalidClient(method: credentials.method, known: nil)) }
        guard let credential else { return .failed(.invalidClient(method: credentials.method, known: client)) }
        return .authenticated(.client(client, credential))
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
