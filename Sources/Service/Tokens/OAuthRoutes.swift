import Foundation
import Hummingbird
import NIOCore
import SignetJOSE

/// The OAuth 2.0 endpoints: token (RFC 6749 §4.4), introspection (RFC 7662), revocation
/// (RFC 7009), the JWKS and the authorization server metadata (RFC 8414).
struct OAuthRoutes {
    let tokens: TokenService
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
        // Built once: the JWKS and the metadata are answered from memory, never from a dependency.
        let metadata = (try? jsonResponse(Metadata(issuer: issuer), headers: [.cacheControl: "public, max-age=300"]))
        router.get("/.well-known/oauth-authorization-server") { _, _ in
            guard let metadata else { throw SignetError(.internalServerError, "server_error", "metadata unavailable") }
            return metadata
        }
    }

    @Sendable func token(_ request: Request, context: SignetRequestContext) async throws -> Response {
        do {
            let response = try await issue(request, context: context)
            tokens.metrics?.token(.issued)
            return response
        } catch {
            // The only SignetError an authentication failure carries is the per-address lookup bound's.
            if case .unavailable(let cause) = context.authFailure, cause is SignetError {
                tokens.metrics?.token(.shed)
            } else {
                tokens.metrics?.token(Self.result(of: error))
            }
            throw error
        }
    }

    /// How a refused token request is counted.
    static func result(of error: any Error) -> SignetMetrics.TokenResult {
        guard let error = error as? OAuthError else { return .unavailable }
        switch error.code {
        case .invalidClient: return .invalidClient
        case .invalidScope: return error.deniedByPolicy ? .policyDenied : .invalidScope
        case .unauthorizedClient: return .policyDenied
        case .invalidRequest, .invalidGrant, .unsupportedGrantType, .unsupportedTokenType, .invalidTarget, .invalidDPoPProof,
            .useDPoPNonce:
            return .invalidRequest
        }
    }

    func issue(_ request: Request, context: SignetRequestContext) async throws -> Response {
        let form = try context.oauthForm()
        let basicAttempted = request.headers[.authorization]?.lowercased().hasPrefix("basic ") == true
        guard let grantType = form["grant_type"], !grantType.isEmpty else {
            throw OAuthError(.invalidRequest, "grant_type is required", basicAttempted: basicAttempted)
        }
        guard Metadata.grantTypes.contains(grantType) else {
            throw OAuthError(
                .unsupportedGrantType, "grant_type must be one of: \(Metadata.grantTypes.joined(separator: ", "))",
                basicAttempted: basicAttempted)
        }
        if grantType == FederatedAssertion.grantType {
            guard case .federated(let client, _) = context.principal else {
                throw Self.clientAuthenticationError(context, basicAttempted: basicAttempted)
            }
            var binding = try Self.resources(form)
            binding.dpopThumbprint = try await tokens.dpopProof(request, path: "/oauth/token")?.thumbprint
            var issued = try await tokens.issue(
                for: client, credential: nil, requestedScope: form["scope"], binding: binding, clientAddress: context.clientAddress,
                audit: context.audit, logger: context.logger)
            issued.nonce = tokens.dpopNonces?.nonce(at: tokens.now())
            return issued.response
        }
        guard case .client(let client, let credential) = context.principal else {
            if case .invalidClient(let method, let known?, let reason) = context.authFailure {
                await tokens.deny(
                    known, reason: TokenService.denialReason(method: method, reason: reason),
                    audit: context.audit(actor: "client:\(known.clientID)"), logger: context.logger)
            }
            throw Self.clientAuthenticationError(context, basicAttempted: basicAttempted)
        }
        if grantType == TokenExchangeRequest.grantType {
            let exchange = try TokenExchangeRequest(form)
            let thumbprint = try await tokens.dpopProof(request, path: "/oauth/token")?.thumbprint
            var issued = try await tokens.exchange(
                for: client, credential: credential, request: exchange, dpopThumbprint: thumbprint,
                clientAddress: context.clientAddress, audit: context.audit, logger: context.logger)
            issued.nonce = tokens.dpopNonces?.nonce(at: tokens.now())
            return issued.response
        }
        var binding = try Self.resources(form)
        binding.dpopThumbprint = try await tokens.dpopProof(request, path: "/oauth/token")?.thumbprint
        var issued = try await tokens.issue(
            for: client,
            credential: credential,
            requestedScope: form["scope"],
            binding: binding,
            clientAddress: context.clientAddress,
            audit: context.audit,
            logger: context.logger
        )
        issued.nonce = tokens.dpopNonces?.nonce(at: tokens.now())
        return issued.response
    }

    /// The form's RFC 8707 `resource`s.
    static func resources(_ form: OAuthForm) throws -> TokenService.Binding {
        var binding = TokenService.Binding()
        binding.resources = form.values("resource")
        for resource in binding.resources where !AgentValidation.isResource(resource) {
            throw OAuthError(.invalidTarget, "resource must be an absolute URI without a fragment")
        }
        return binding
    }

    @Sendable func introspect(_ request: Request, context: SignetRequestContext) async throws -> Response {
        let form = try context.oauthForm()
        let caller = try Self.caller(context, request: request)
        guard let token = form["token"], !token.isEmpty else { throw OAuthError(.invalidRequest, "token is required") }
        // A client learns only about its own tokens (RFC 7662 §4): another client's token is
        // answered as inactive, whatever it is.
        guard let verified = await tokens.currentClaims(of: token), caller.mayInspect(verified),
            let claims = try await tokens.liveClaims(verified)
        else {
            return try jsonResponse(["active": false], headers: [.cacheControl: "no-store"])
        }
        return try jsonResponse(Introspection(claims: claims), headers: [.cacheControl: "no-store"])
    }

    @Sendable func revoke(_ request: Request, context: SignetRequestContext) async throws -> Response {
        let form = try context.oauthForm()
        let caller = try Self.caller(context, request: request)
        guard let token = form["token"], !token.isEmpty else { throw OAuthError(.invalidRequest, "token is required") }
        if let hint = form["token_type_hint"], !["access_token", "refresh_token"].contains(hint) {
            throw OAuthError(.unsupportedTokenType, "token_type_hint must be access_token")
        }
        let clientID: String? = if case .client(let id) = caller { id } else { nil }
        try await tokens.revoke(token, by: clientID, audit: context.audit)
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    enum Caller {
        case admin
        case client(String)

        func mayInspect(_ claims: AccessTokenClaims) -> Bool {
            switch self {
            case .admin: true
            case .client(let id): id == claims.client_id
            }
        }
    }

    /// Introspection and revocation callers: the admin, or an active agent by its client credentials.
    static func caller(_ context: SignetRequestContext, request: Request) throws -> Caller {
        switch context.principal {
        case .admin:
            return .admin
        case .client(let client, _) where client.status == .active:
            return .client(client.clientID)
        case .client:
            throw OAuthError(.invalidClient, "client authentication failed", basicAttempted: true)
        case .federated:
            throw OAuthError(.invalidClient, "an assertion is taken only by the jwt-bearer grant; use client credentials")
        case nil, .operations:
            throw clientAuthenticationError(
                context, basicAttempted: request.headers[.authorization]?.lowercased().hasPrefix("basic ") == true)
        }
    }

    /// The error for a request without an authenticated client (RFC 6749 §5.2).
    static func clientAuthenticationError(_ context: SignetRequestContext, basicAttempted: Bool) -> any Error {
        switch context.authFailure {
        case .unavailable(let error):
            return error
        case .malformed(let error):
            return error
        case .invalidClient(let method, let known, let reason):
            if known == nil {
                context.logger.info("client authentication failed: unknown client")
            }
            return OAuthError(
                .invalidClient, reason.map { "client authentication failed: \($0)" } ?? "client authentication failed",
                basicAttempted: method == .basic)
        case .invalidBearer, .tokenRefused:
            return OAuthError(.invalidClient, "an access token is not accepted here; use client credentials")
        case .notTried:
            return OAuthError(.invalidClient, "client authentication failed", basicAttempted: basicAttempted)
        case nil:
            if case .admin = context.principal {
                return OAuthError(.invalidClient, "the admin token cannot request tokens; use client credentials")
            }
            return OAuthError(.invalidClient, "client authentication is required (HTTP Basic or client_id and client_secret)")
        }
    }

    struct Introspection: Encodable {
        let active = true
        let scope: String
        let client_id: String
        let sub: String
        let aud: Audience
        let iss: String
        let exp: Int64
        let iat: Int64
        let jti: String
        let token_type: String
        /// A DPoP-bound token's key thumbprint (RFC 9449 §6.2).
        let cnf: Confirmation?
        /// A delegated token's actors (RFC 8693 §4.1).
        let act: Actor?

        init(claims: AccessTokenClaims) {
            scope = claims.scope
            client_id = claims.client_id
            sub = claims.sub
            aud = claims.aud
            iss = claims.iss
            exp = claims.exp
            iat = claims.iat
            jti = claims.jti
            token_type = claims.tokenType
            cnf = claims.cnf
            act = claims.act
        }
    }

    /// RFC 8414 metadata.
    struct Metadata: Encodable {
        let issuer: String
        let token_endpoint: String
        let introspection_endpoint: String
        let revocation_endpoint: String
        let jwks_uri: String
        let grant_types_supported = Metadata.grantTypes
        /// RFC 8693's token types, as subject and actor tokens and as issued.
        let token_exchange_token_types_supported = [TokenExchangeRequest.accessTokenType, TokenExchangeRequest.jwtType]

        static let grantTypes = ["client_credentials", TokenExchangeRequest.grantType, FederatedAssertion.grantType]
        let token_endpoint_auth_methods_supported = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
        let token_endpoint_auth_signing_alg_values_supported = JWSAlgorithm.allCases.map(\.rawValue)
        let dpop_signing_alg_values_supported = DPoPProof.algorithms.map(\.rawValue).sorted()
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
