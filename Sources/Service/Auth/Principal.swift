import Foundation
import SignetResourceServer

/// Who a request proved to be: set once, by the authentication layer (`AuthMiddleware`), before
/// the rate limiter; routes and the limiter read it and nothing else. `indirect`, so it is one
/// pointer in the request context, which every middleware copies.
///
/// An access token is never a principal at Signet: every resource server, proxy and log it
/// passed through holds it, so it authenticates nothing here (it is only ever the subject of
/// introspection or revocation). An agent acts on Signet with its client credentials.
public indirect enum Principal: Sendable, CustomStringConvertible {
    /// The admin token.
    case admin
    /// An agent, by its client credentials (`/oauth/*` and its own credential rotation), whatever
    /// its status: the route decides what a suspended agent may do.
    case client(ClientRecord, ClientRecord.Credential)
    /// An agent, by a trusted issuer's assertion naming its `federated_subject` (the JWT-bearer
    /// grant, `/oauth/token` only): active, with no credential of Signet's.
    case federated(ClientRecord, issuer: String)
    /// The operations token of the route asked for (`METRICS_TOKEN` on `/metrics`,
    /// `HEALTH_DETAILED_TOKEN` on `/health/detailed`), on the public listener.
    case operations

    /// The actor of the audit trail.
    public var description: String {
        switch self {
        case .admin: "admin"
        case .client(let client, _): "client:\(client.clientID)"
        case .federated(let client, _): "federated:\(client.clientID)"
        case .operations: "operations"
        }
    }

    /// The agent this principal is, if it is one.
    public var agentID: String? {
        switch self {
        case .admin, .operations: nil
        case .client(let client, _), .federated(let client, _): client.agentID
        }
    }

    /// The credential a client authenticated with.
    public var credentialID: String? {
        switch self {
        case .admin, .operations, .federated: nil
        case .client(_, let credential): credential.id
        }
    }
}

/// Why a request that carried credentials has no principal. Routes turn it into their error;
/// the limiter counts the request against its source address. `indirect` for the same reason.
indirect enum AuthFailure: Sendable {
    /// A bearer token that is not the admin token (an access token included: none is taken here).
    case invalidBearer
    /// Client credentials that do not authenticate: an unknown or malformed client id, or a
    /// wrong or expired secret (`known`: the client, when the id was one); for a client
    /// assertion, `reason` says which rule it broke.
    case invalidClient(method: ClientCredentials.Method, known: ClientRecord?, reason: String? = nil)
    /// Client credentials that could not be read (both methods at once, bad HTTP Basic), or a
    /// JWT-bearer assertion refused: the OAuth error to answer.
    case malformed(OAuthError)
    /// Not tried: the source address is over its budget, and checking would cost a database query.
    case notTried
    /// A dependency failed while checking (the database): answered 503 once the request is counted.
    case unavailable(any Error)
    /// An access token sent as `Authorization: DPoP` to a route that takes one, refused by the
    /// resource-server verifier: its challenge is the answer.
    case tokenRefused(Challenge)
}
