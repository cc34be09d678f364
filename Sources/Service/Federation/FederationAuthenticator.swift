import Foundation
import SignetJOSE

/// The JWT-bearer grant's authentication (RFC 7523 §2.1): the assertion is the credential. Its
/// issuer must be trusted, one of the issuer's keys must have signed it (at most one signature
/// check), its claims must hold (`FederatedAssertion.check`), the identity it names
/// (`iss`, `sub`) must be an active agent's `federated_subject`, and its `jti` must be fresh,
/// checked last so only an assertion a trusted issuer signed can fill the replay cache.
struct FederationAuthenticator: Sendable {
    let issuers: TrustedIssuers
    let directory: ClientDirectory
    let pool: ConnectionPool
    var replay: (any ReplayGuard)?
    let now: @Sendable () -> Date

    enum Outcome {
        case authenticated(ClientRecord, issuer: String)
        /// The agent is over its budget until then (seconds): no replay check for the limiter to refuse.
        case held(Int)
        case failed(AuthFailure)
    }

    static func refused(_ reason: String) -> Outcome {
        .failed(.malformed(OAuthError(.invalidGrant, "the assertion is refused: \(reason)")))
    }

    func authenticate(_ form: OAuthForm, holds: AddressGate, admission: ClientDirectory.Admission) async throws -> Outcome {
        guard let token = form["assertion"], !token.isEmpty else {
            return .failed(.malformed(OAuthError(.invalidRequest, "assertion is required with the jwt-bearer grant")))
        }
        let assertion: FederatedAssertion
        do {
            assertion = try FederatedAssertion(token)
        } catch {
            return Self.refused(error.description)
        }
        guard let entry = try await issuers.entry(assertion.issuer) else { return Self.refused("its issuer is not trusted") }
        let keys: [PublicJWK]
        do {
            keys = try await entry.keys(for: assertion.kid)
        } catch {
            return .failed(
                .unavailable(SignetError.unavailable("the issuer's keys could not be read; retry shortly", retryAfterSeconds: 5)))
        }
        guard assertion.signingKey(in: keys) != nil else { return Self.refused("no key the issuer publishes verifies it") }
        let replayKey: String
        do {
            replayKey = try assertion.check(audience: entry.issuer.audience, at: now())
        } catch {
            return Self.refused(error.description)
        }
        let (issuer, subject) = (assertion.issuer, assertion.subject)
        let clientID = try await pool.withConnection { connection in
            try connection.query("SELECT client_id FROM agents WHERE federated_issuer = $1 AND federated_subject = $2", [issuer, subject])
                .records.first?["client_id"]
        }
        let unmapped = Self.refused("no agent is registered for this subject of this issuer")
        guard let clientID else { return unmapped }
        let client: ClientRecord?
        do {
            client = try await directory.lookup(clientID, admission: admission).record
        } catch is ClientDirectory.LookupRefused {
            return .failed(.unavailable(SignetError.unavailable("too many client lookups from this address at once; retry shortly")))
        }
        guard let client else { return unmapped }
        guard client.status == .active else { return Self.refused("the agent is \(client.status.rawValue)") }
        if let retryAfter = holds.retryAfter(client.clientID) { return .held(retryAfter) }
        switch await replay?.check(replayKey) ?? .first {
        case .first: return .authenticated(client, issuer: assertion.issuer)
        case .seen: return Self.refused("it was used before (jti)")
        case .full:
            return .failed(
                .unavailable(SignetError.unavailable("too many assertions to remember while Redis is not answering; retry shortly")))
        }
    }
}
