import Foundation
import Hummingbird
import NIOCore

/// The OAuth 2.0 endpoints: token (RFC 6749 §4.4), introspection (RFC 7662), revocation
/// (RFC 7009), the JWKS and the authorization server metadata (RFC 8414).
struct OAuthRoutes {
    let tokens: TokenService
    let directory: ClientDirectory
    let admin: AdminAuthMiddleware
    let issuer: String

    func add(to router: Router<SignetRequestContext>) {
        router.post("/oauth/token", use: token)
        router.post("/oauth/introspect", use: introspect)
        router.post("/oauth/revoke", use: revoke)
        router.get("/.well-known/jwks.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/jwk-set+json", .cacheControl: "public, max-age=60"],
                body: .init(byteBuffer: ByteBuffer(bytes: try tokens.keyRing.jwks))
            )
        }
        router.get("/.well-known/oauth-authorization-server") { _, _ in
            try jsonResponse(Metadata(issuer: issuer), headers: [.cacheControl: "public, max-age=300"])
        }
    }

    @Sendable func token(_ request: Request, context: SignetRequestContext) async throws -> Response {
        var request = request
        let form: OAuthForm
        if let parsed = context.oauthForm { form = parsed } else { form = try await OAuthForm.read(&request, context: context) }
        let basicAttempted = request.headers[.authorization]?.lowercased().hasPrefix("basic ") == true
        guard let grantType = form["grant_type"], !grantType.isEmpty else {
            throw OAuthError(.invalidRequest, "grant_type is required", basicAttempted: basicAttempted)
        }
        guard grantType == "client_credentials" else {
            throw OAuthError(.unsupportedGrantType, "only client_credentials is supported", basicAttempted: basicAttempted)
        }
        guard let credentials = try ClientCredentials.from(request, form: form) else {
            throw OAuthError(.invalidClient, "client authentication is required (HTTP Basic or client_id and client_secret)")
        }
        // One lookup tells an unknown client from a wrong secret.
        let client = try await directory.client(credentials.clientID)
        guard let client, let credential = directory.credential(of: client, matching: credentials.secret) else {
            if let client {
                await tokens.deny(
                    client, reason: "wrong or expired client secret",
                    audit: AuditContext(actor: "client:\(credentials.clientID)", requestID: context.id), logger: context.logger)
            } else {
                context.logger.info("token denied: unknown client", metadata: ["client.id": "\(credentials.clientID.prefix(64))"])
            }
            throw OAuthError(.invalidClient, "client authentication failed", basicAttempted: credentials.method == .basic)
        }
        let issued = try await tokens.issue(
            for: client,
            credential: credential,
            requestedScope: form["scope"],
            clientAddress: context.remoteAddress,
            audit: AuditContext(actor: "agent:\(client.agentID)", requestID: context.id),
            logger: context.logger
        )
        return issued.response
    }

    @Sendable func introspect(_ request: Request, context: SignetRequestContext) async throws -> Response {
        var request = request
        let form = try await OAuthForm.read(&request, context: context)
        _ = try await caller(request, form: form)
        guard let token = form["token"], !token.isEmpty else { throw OAuthError(.invalidRequest, "token is required") }
        guard let claims = try await tokens.activeClaims(of: token) else {
            return try jsonResponse(["active": false], headers: [.cacheControl: "no-store"])
        }
        return try jsonResponse(Introspection(claims: claims), headers: [.cacheControl: "no-store"])
    }

    @Sendable func revoke(_ request: Request, context: SignetRequestContext) async throws -> Response {
        var request = request
        let form = try await OAuthForm.read(&request, context: context)
        let caller = try await caller(request, form: form)
        guard let token = form["token"], !token.isEmpty else { throw OAuthError(.invalidRequest, "token is required") }
        if let hint = form["token_type_hint"], !["access_token", "refresh_token"].contains(hint) {
            throw OAuthError(.unsupportedTokenType, "token_type_hint must be access_token")
        }
        let clientID: String? = if case .client(let id) = caller { id } else { nil }
        try await tokens.revoke(token, by: clientID, audit: AuditContext(actor: caller.actor, requestID: context.id))
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    enum Caller {
        case admin
        case client(String)

        var actor: String {
            switch self {
            case .admin: "admin"
            case .client(let id): "client:\(id)"
            }
        }
    }

    /// Introspection and revocation callers: the admin bearer token, or client credentials.
    func caller(_ request: Request, form: OAuthForm) async throws -> Caller {
        if let bearer = AdminAuthMiddleware.bearerToken(request) {
            guard admin.isAdmin(bearer) else { throw OAuthError(.invalidClient, "the bearer token is not accepted here") }
            return .admin
        }
        guard let credentials = try ClientCredentials.from(request, form: form) else {
            throw OAuthError(.invalidClient, "authenticate with client credentials or the admin token")
        }
        guard let client = try await directory.client(credentials.clientID), client.status == .active,
            directory.credential(of: client, matching: credentials.secret) != nil
        else {
            throw OAuthError(.invalidClient, "client authentication failed", basicAttempted: credentials.method == .basic)
        }
        return .client(client.clientID)
    }

    struct Introspection: Encodable {
        let active = true
        let scope: String
        let client_id: String
        let sub: String
        let aud: String
        let iss: String
        let exp: Int64
        let iat: Int64
        let jti: String
        let token_type = "Bearer"

        init(claims: AccessTokenClaims) {
            scope = claims.scope
            client_id = claims.client_id
            sub = claims.sub
            aud = claims.aud
            iss = claims.iss
            exp = claims.exp
            iat = claims.iat
            jti = claims.jti
        }
    }

    /// RFC 8414 metadata.
    struct Metadata: Encodable {
        let issuer: String
        let token_endpoint: String
        let introspection_endpoint: String
        let revocation_endpoint: String
        let jwks_uri: String
        let grant_types_supported = ["client_credentials"]
        let token_endpoint_auth_methods_supported = ["client_secret_basic", "client_secret_post"]
        let introspection_endpoint_auth_methods_supported = ["client_secret_basic", "client_secret_post", "bearer"]
        let revocation_endpoint_auth_methods_supported = ["client_secret_basic", "client_secret_post", "bearer"]
        let response_types_supported: [String] = []

        init(issuer: String) {
            self.issuer = issuer
            token_endpoint = issuer + "/oauth/token"
            introspection_endpoint = issuer + "/oauth/introspect"
            revocation_endpoint = issuer + "/oauth/revoke"
            jwks_uri = issuer + "/.well-known/jwks.json"
        }
    }
}
