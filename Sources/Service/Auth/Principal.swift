import Foundation

/// Who a request proved to be: set once, by the authentication layer (`AuthMiddleware`), before
/// the rate limiter; routes and the limiter read it and nothing else. `indirect`, so it is one
/// pointer in the request context, which every middleware copies.
public indirect enum Principal: Sendable, CustomStringConvertible {
    /// The admin token.
    case admin
    /// An agent, by one of its access tokens: signature, `exp`, `nbf`, `iat`, `iss` and `aud`
    /// checked, nothing read from the database. A route acting on the token's authority checks
    /// it is still live (`TokenService.liveClaims`).
    case agent(AccessTokenClaims)
    /// An agent, by its client credentials (`/oauth/*` only), whatever its status: the route
    /// decides what a suspended agent may do.
    case client(ClientRecord, ClientRecord.Credential)

    /// The actor of the audit trail.
    public var description: String {
        switch self {
        case .admin: "admin"
        case .agent(let claims): "agent:\(claims.sub)"
        case .client(let client, _): "client:\(client.clientID)"
        }
    }

    /// The agent this principal is, if it is one.
    public var agentID: String? {
        switch self {
        case .admin: nil
        case .agent(let claims): claims.sub
        case .client(let client, _): client.agentID
        }
    }
}

/// Why a request that carried credentials has no principal. Routes turn it into their error;
/// the limiter counts the request against its source address. `indirect` for the same reason.
indirect enum AuthFailure: Sendable {
    /// A bearer token that is neither the admin token nor a current access token of this issuer.
    case invalidBearer
    /// Client credentials that do not authenticate: an unknown or malformed client id, or a
    /// wrong or expired secret (`known`: the client, when the id was one).
    case invalidClient(method: ClientCredentials.Method, known: ClientRecord?)
    /// Client credentials that could not be read (both methods at once, bad HTTP Basic).
    case malformed(OAuthError)
    /// Not tried: the source address is over its budget, and checking would cost a signature
    /// verification or a database query.
    case notTried
    /// A dependency failed while checking (the database): answered 503 once the request is counted.
    case unavailable(any Error)
}
