import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SignetJOSE
import SignetResourceServer
import Simulator
import XCTest

/// The resource-server library as a tool server outside Signet uses it: Signet's JWKS over HTTP
/// (through a fault proxy, so it can be frozen), introspection for revocation, the challenges.
final class ResourceServerTests: XCTestCase {
    static let resource = "https://tool.example/mcp"
    static let metadata = "https://tool.example/.well-known/oauth-protected-resource"

    static func verifier(port: Int, jwks: RemoteJWKS, liveness: Bool = true) -> AccessTokenVerifier {
        AccessTokenVerifier(
            settings: .init(issuer: "https://signet.test", audience: Self.resource, resourceMetadata: Self.metadata),
            keys: jwks,
            liveness: liveness
                ? IntrospectionClient(
                    endpoint: "http://127.0.0.1:\(port)/oauth/introspect", authentication: .bearer(TestSignet.adminToken)) : nil)
    }

    func testAToolServerAcceptsBoundAndBearerTokensForItselfAndRefusesTheRest() async throws {
        let signet = try await TestSignet.make()
        try await signet.live { port, client in
            let agent = try await client.agent(scopes: ["read", "write"])
            _ = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"resources":["\#(Self.resource)"]}"#)
            let verifier = Self.verifier(port: port, jwks: RemoteJWKS(url: "http://127.0.0.1:\(port)/.well-known/jwks.json"))
            let key = TestKey.ed25519()
            let base = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
            let bound = try await client.execute(
                uri: "/oauth/token", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("DPoP")!: key.proof()],
                body: ByteBuffer(string: base + "&scope=read&resource=\(formEncode(Self.resource))"))
            let token = try XCTUnwrap(bound.object["access_token"] as? String, bound.text)
            let url = "https://tool.example/mcp"
            let proof = key.proof(method: "GET", url: url, ["ath": DPoPProof.accessTokenHash(token)])

            let verified = try await verifier.verify(authorization: "DPoP \(token)", dpop: [proof], method: "GET", url: url)
            XCTAssertEqual(verified.subject, agent.id)
            XCTAssertEqual(verified.confirmation, key.thumbprint)
            XCTAssertEqual(verified.scopes, ["read"])

            func refusal(_ authorization: String?, _ dpop: [String] = [], scopes: [String] = []) async -> Challenge? {
                do {
                    _ = try await verifier.verify(authorization: authorization, dpop: dpop, method: "GET", url: url, requiredScopes: scopes)
                    return nil
                } catch {
                    return error
                }
            }
            let missing = await refusal(nil)
            XCTAssertEqual(missing?.status, 401)
            XCTAssertNil(missing?.error, "no token sent: a challenge without an error (RFC 6750 §3.1)")
            XCTAssertEqual(
                missing?.wwwAuthenticate,
                [#"DPoP algs="ES256 EdDSA", resource_metadata="\#(Self.metadata)""#, #"Bearer resource_metadata="\#(Self.metadata)""#])
            let r1 = await refusal("Bearer \(token)")
            XCTAssertEqual(r1?.error, "invalid_token", "a bound token sent as Bearer")
            let r2 = await refusal("DPoP \(token)", [proof])
            XCTAssertEqual(r2?.error, "invalid_dpop_proof", "the proof replayed")
            let r3 = await refusal("DPoP \(token)", [key.proof(method: "GET", url: url, ["ath": "wrong"])])
            XCTAssertEqual(
                r3?.error, "invalid_dpop_proof",
                "ath of another token")
            let insufficient = await refusal(
                "DPoP \(token)", [key.proof(method: "GET", url: url, ["ath": DPoPProof.accessTokenHash(token)])], scopes: ["write"])
            XCTAssertEqual(insufficient?.status, 403)
            XCTAssertTrue(
                insufficient?.wwwAuthenticate.first?.contains(#"error="insufficient_scope""#) == true, "\(String(describing: insufficient))"
            )

            // A bearer token for this resource is accepted; one for Signet's default audience is not.
            let bearer = try await client.tokenRequest(base + "&resource=\(formEncode(Self.resource))")
            let bearerToken = try XCTUnwrap(bearer.object["access_token"] as? String)
            let accepted = try await verifier.verify(authorization: "Bearer \(bearerToken)", dpop: [], method: "GET", url: url)
            XCTAssertNil(accepted.confirmation)
            let elsewhere = try await client.accessToken(for: agent)
            let wrongAudience = await refusal("Bearer \(elsewhere)")
            XCTAssertEqual(wrongAudience?.error, "invalid_token")
            XCTAssertTrue(wrongAudience?.description.contains("aud") == true)

            // Revoked at Signet: introspection says so at once.
            _ = try await client.execute(
                uri: "/oauth/revoke", method: .post,
                headers: [.authorization: "Bearer \(TestSignet.adminToken)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(formEncode(bearerToken))"))
            let r4 = await refusal("Bearer \(bearerToken)")
            XCTAssertEqual(r4?.description, "the token is no longer active")
        }
    }

    /// The JWKS server frozen (a black-holing proxy in front of Signet): a key already held keeps
    /// working; an unknown kid, or keys never fetched, end at the fetch's deadline with a 503.
    func testAFrozenJWKSEndsAtItsDeadlineAndKeysHeldKeepWorking() async throws {
        let signet = try await TestSignet.make()
        try await signet.live { port, client in
            let proxy = try await FaultProxy.start(upstreamPort: port)
            let agent = try await client.agent(scopes: ["read"])
            _ = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"resources":["\#(Self.resource)"]}"#)
            let base = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
            let response = try await client.tokenRequest(base + "&resource=\(formEncode(Self.resource))")
            let token = try XCTUnwrap(response.object["access_token"] as? String)
            let timeout = Duration.milliseconds(300)
            let url = "http://127.0.0.1:\(proxy.port)/.well-known/jwks.json"
            let held = RemoteJWKS(url: url, timeout: timeout, refreshInterval: .zero)
            let verifier = Self.verifier(port: port, jwks: held, liveness: false)
            _ = try await verifier.verify(authorization: "Bearer \(token)", dpop: [], method: "GET", url: Self.resource)

            try await proxy.setMode(.blackhole)
            let clock = ContinuousClock()
            var started = clock.now
            let again = try await verifier.verify(authorization: "Bearer \(token)", dpop: [], method: "GET", url: Self.resource)
            XCTAssertEqual(again.subject, agent.id, "the held key keeps working while the issuer is frozen")
            let heldElapsed = clock.now - started
            XCTAssertLessThan(heldElapsed, timeout * 4, "the refresh attempt ends at its deadline")

            let cold = Self.verifier(port: port, jwks: RemoteJWKS(url: url, timeout: timeout), liveness: false)
            started = clock.now
            do {
                _ = try await cold.verify(authorization: "Bearer \(token)", dpop: [], method: "GET", url: Self.resource)
                XCTFail("no key could be read")
            } catch {
                XCTAssertEqual((error as? Challenge)?.status, 503, "\(error)")
            }
            XCTAssertLessThan(clock.now - started, timeout * 4, "no keys and a frozen issuer: a 503 at the deadline")
            await proxy.stop()
        }
    }
}
