import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// `/oauth/token` and the JWT it issues, against a real PostgreSQL.
final class TokenTests: XCTestCase {
    func testBothClientAuthenticationMethodsIssueATokenThatVerifiesAgainstTheJWKS() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "write"])
            let basic = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(basic.status, .ok, basic.text)
            XCTAssertEqual(basic.headers[.cacheControl], "no-store")
            XCTAssertEqual(basic.headers[.init("Pragma")!], "no-cache")
            XCTAssertEqual(basic.object["token_type"] as? String, "Bearer")
            XCTAssertEqual(basic.object["expires_in"] as? Int, 900)
            XCTAssertEqual(basic.object["scope"] as? String, "read write")
            let post = try await client.accessToken(for: agent)

            let jwks = try await client.execute(uri: "/.well-known/jwks.json", method: .get)
            XCTAssertEqual(jwks.status, .ok)
            for token in [try XCTUnwrap(basic.object["access_token"] as? String), post] {
                let (header, claims) = try IndependentVerifier.verify(token, jwks: jwks.object)
                XCTAssertEqual(header["typ"] as? String, "at+jwt")
                XCTAssertNotNil(header["kid"] as? String)
                XCTAssertEqual(claims["iss"] as? String, "https://signet.test")
                XCTAssertEqual(claims["aud"] as? String, "https://signet.test")
                XCTAssertEqual(claims["sub"] as? String, agent.id)
                XCTAssertEqual(claims["client_id"] as? String, agent.clientID)
                XCTAssertEqual(claims["scope"] as? String, "read write")
                let iat = try XCTUnwrap(claims["iat"] as? Int, "iat is a whole number of seconds")
                let exp = try XCTUnwrap(claims["exp"] as? Int, "exp is a whole number of seconds")
                XCTAssertEqual(exp - iat, 900)
                XCTAssertLessThanOrEqual(abs(Double(iat) - Date().timeIntervalSince1970), 5)
                XCTAssertEqual((claims["jti"] as? String)?.isEmpty, false)
            }
            let tampered = post.dropLast(4) + "AAAA"
            XCTAssertThrowsError(try IndependentVerifier.verify(String(tampered), jwks: jwks.object))
        }
        XCTAssertFalse(signet.logText.contains("sgs_"), "no client secret in any log line")
        XCTAssertFalse(signet.logText.contains("eyJ"), "no token in any log line")
    }

    func testEachRFC6749ErrorResponse() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read"])
            let auth = "client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
            func expect(
                _ response: TestResponse,
                _ status: HTTPResponse.Status,
                _ code: String,
                line: UInt = #line
            ) {
                XCTAssertEqual(response.status, status, response.text, line: line)
                XCTAssertEqual(response.errorCode, code, response.text, line: line)
                XCTAssertNotNil(response.object["error_description"] as? String, line: line)
                XCTAssertEqual(response.headers[.cacheControl], "no-store", line: line)
            }
            expect(try await client.tokenRequest(auth), .badRequest, "invalid_request")
            expect(
                try await client.tokenRequest("grant_type=client_credentials&grant_type=client_credentials&\(auth)"), .badRequest,
                "invalid_request")
            expect(
                try await client.tokenRequest("grant_type=client_credentials&\(auth)", basic: (agent.clientID, agent.secret)),
                .badRequest,
                "invalid_request"
            )
            expect(
                try await client.tokenRequest("grant_type=client_credentials&\(auth)", contentType: "application/json"), .badRequest,
                "invalid_request")
            expect(
                try await client.tokenRequest("grant_type=password&username=a&password=b&\(auth)"), .badRequest, "unsupported_grant_type")

            let missing = try await client.tokenRequest("grant_type=client_credentials")
            expect(missing, .unauthorized, "invalid_client")
            XCTAssertNil(missing.headers[.wwwAuthenticate], "no Basic attempted, no challenge required")
            let wrongPost = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=sgs_wrong")
            expect(wrongPost, .unauthorized, "invalid_client")
            let unknown = try await client.tokenRequest("grant_type=client_credentials", basic: ("sgc_nobody", "secret"))
            expect(unknown, .unauthorized, "invalid_client")
            XCTAssertEqual(unknown.headers[.wwwAuthenticate], #"Basic realm="signet", charset="UTF-8""#)
            let wrongBasic = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, "sgs_wrong"))
            expect(wrongBasic, .unauthorized, "invalid_client")
            XCTAssertNotNil(wrongBasic.headers[.wwwAuthenticate])

            expect(try await client.tokenRequest("grant_type=client_credentials&scope=admin&\(auth)"), .badRequest, "invalid_scope")
            expect(try await client.tokenRequest("grant_type=client_credentials&scope=%22quoted%22&\(auth)"), .badRequest, "invalid_scope")

            let suspend = try await client.admin(.patch, "/v1/agents/\(agent.id)", json: #"{"status":"suspended"}"#)
            XCTAssertEqual(suspend.status, .ok)
            expect(try await client.tokenRequest("grant_type=client_credentials&\(auth)"), .badRequest, "unauthorized_client")
        }
        XCTAssertFalse(signet.logText.contains("sgs_"), "no client secret in any log line")
    }

    func testScopesAreNarrowedToTheRegisteredOnes() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "write", "reports:export"])
            let auth = "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
            let narrowed = try await client.tokenRequest(auth + "&scope=\(formEncode("write admin write"))")
            XCTAssertEqual(narrowed.object["scope"] as? String, "write")
            let all = try await client.tokenRequest(auth)
            XCTAssertEqual(all.object["scope"] as? String, "read write reports:export")
        }
    }

    func testDeactivatedAgentGetsNoTokenAndItsTokensBecomeInactive() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let token = try await client.accessToken(for: agent)
            try await assertEqual(await client.isActive(token), true)
            try await assertEqual(await client.admin(.delete, "/v1/agents/\(agent.id)").status, .noContent)
            try await assertEqual(await client.isActive(token), false)
            let refused = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(refused.status, .unauthorized)
            XCTAssertEqual(refused.errorCode, "invalid_client")
        }
    }

    func testGraceZeroRevokesAtOnceAndAThirdRotationEndsTheOldest() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let first = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":3600}"#)
            let second = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":3600}"#)
            XCTAssertEqual((second.object["endedNow"] as? [String])?.count, 1, "the original ended at once")
            let firstSecret = try XCTUnwrap(first.object["client_secret"] as? String)
            let secondSecret = try XCTUnwrap(second.object["client_secret"] as? String)
            let original = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(original.status, .unauthorized)
            _ = try await client.accessToken(for: agent, secret: firstSecret)
            _ = try await client.accessToken(for: agent, secret: secondSecret)

            let now = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":0}"#)
            XCTAssertEqual(now.status, .created)
            for secret in [firstSecret, secondSecret] {
                let refused = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, secret))
                XCTAssertEqual(refused.status, .unauthorized)
            }
            _ = try await client.accessToken(for: agent, secret: try XCTUnwrap(now.object["client_secret"] as? String))

            for bad in [#"{"graceSeconds":-1}"#, #"{"graceSeconds":1.5}"#, #"{"graceSeconds":"soon"}"#, #"{"grace":1}"#] {
                let response = try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: bad)
                XCTAssertEqual(response.status, .badRequest, bad)
            }
            let unknown = try await client.admin(.post, "/v1/agents/\(UUID().uuidString)/credentials/rotate", json: "{}")
            XCTAssertEqual(unknown.status, .notFound)
        }
    }

    func testTwentyConcurrentRotationsLeaveAtMostTwoValidCredentials() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await client.admin(.post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":600}"#).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            XCTAssertEqual(statuses.filter { $0 == .created }.count, 20)
            let rows = try await TestDatabase.query(
                """
                SELECT count(*) AS n FROM agent_credentials
                WHERE agent_id = $1::uuid AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                """,
                [agent.id]
            )
            XCTAssertEqual(rows.first?["n"], "2", "exactly the newest and the one before it")
        }
    }

    func testAgentRotatesItsOwnCredentialWithItsClientCredentialsOnly() async throws {
        let signet = try await TestSignet.make()
        try await signet.live { _, client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let unscopedAgent = try await client.agent(scopes: ["read"])
            let other = try await client.agent(scopes: ["read", "credentials:rotate"])
            let scoped = try await client.accessToken(for: agent, scope: "credentials:rotate")
            // A token, even one that asked for the scope, acts on nothing at Signet.
            let byToken = try await client.execute(
                uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post, headers: [.authorization: "Bearer \(scoped)"])
            XCTAssertEqual(byToken.status, .unauthorized, byToken.text)
            XCTAssertEqual(
                byToken.headers[values: .wwwAuthenticate], [#"Basic realm="signet", charset="UTF-8""#, #"DPoP algs="ES256 EdDSA""#],
                "client credentials, or a DPoP-bound token: never a bearer")
            try await assertEqual(await client.rotateOwn(unscopedAgent).status, .forbidden, "not registered with credentials:rotate")
            let foreign = try await client.execute(
                uri: "/v1/agents/\(other.id)/credentials/rotate", method: .post,
                headers: [
                    .authorization: "Basic \(Data("\(agent.clientID):\(agent.secret)".utf8).base64EncodedString())",
                    .contentType: "application/json",
                ], body: ByteBuffer(string: "{}"))
            XCTAssertEqual(foreign.status, .forbidden, "an agent rotates only its own: \(foreign.text)")
            try await assertEqual(await client.rotateOwn(agent, secret: "sgs_wrong").status, .unauthorized)
            try await assertEqual(
                await ClientIDAbuseTests.deniedEvents(agent.id).attempts, 1, "a wrong secret on rotation is audited as on /oauth/token")

            // By HTTP Basic ...
            let rotated = try await client.rotateOwn(agent, json: #"{"graceSeconds":60}"#, headers: [.init("X-Request-Id")!: "chosen-1"])
            XCTAssertEqual(rotated.status, .created, rotated.text)
            let newSecret = try XCTUnwrap(rotated.object["client_secret"] as? String)
            // ... and by the form, with the new secret.
            let byForm = try await client.execute(
                uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(
                    string: "client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(newSecret))&graceSeconds=30"))
            XCTAssertEqual(byForm.status, .created, byForm.text)
            XCTAssertEqual((byForm.object["previous"] as? [String: Any])?["state"] as? String, "expiring")

            // The audit row names the principal, the credential it proved, the address, and the
            // server's request id apart from the one the client chose.
            let events = try await client.admin(.get, "/v1/audit?agentId=\(agent.id)")
            let rotations = (events.object["items"] as? [[String: Any]] ?? []).filter { $0["action"] as? String == "credential.rotate" }
            XCTAssertEqual(rotations.count, 2)
            let first = try XCTUnwrap(rotations.first)
            XCTAssertEqual(first["actor"] as? String, "client:\(agent.clientID)")
            XCTAssertEqual(first["sourceAddress"] as? String, "127.0.0.1")
            XCTAssertEqual(first["clientRequestId"] as? String, "chosen-1")
            XCTAssertNotEqual(first["requestId"] as? String, "chosen-1")
            XCTAssertNotNil(first["credentialId"] as? String, "the credential the agent authenticated with")
            XCTAssertEqual(
                (rotations.last?["details"] as? [String: Any])?["previousId"] as? String, rotated.object["id"] as? String)
        }
    }

    func testADefaultGrantNeverCarriesAScopeThatActsOnSignet() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let plain = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(plain.object["scope"] as? String, "read", plain.text)
            let asked = try await client.tokenRequest(
                "grant_type=client_credentials&scope=credentials%3Arotate", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(asked.object["scope"] as? String, "credentials:rotate", "only when asked for by name")
            let onlyActing = try await client.agent(scopes: ["credentials:rotate"])
            let none = try await client.tokenRequest("grant_type=client_credentials", basic: (onlyActing.clientID, onlyActing.secret))
            XCTAssertEqual(none.status, .badRequest)
            XCTAssertEqual(none.errorCode, "invalid_scope")
        }
    }

    func testAnAgentsRotationNeverUndoesAnOperatorsNewerOne() async throws {
        // The probe: an operator rotated after a leak; whoever holds the leaked secret (still in
        // its grace period) self-rotated with grace 0 and revoked the operator's new secret.
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let operatorRotation = try await client.admin(
                .post, "/v1/agents/\(agent.id)/credentials/rotate", json: #"{"graceSeconds":86400}"#)
            XCTAssertEqual(operatorRotation.status, .created, operatorRotation.text)
            let operatorSecret = try XCTUnwrap(operatorRotation.object["client_secret"] as? String)
            let leaked = try await client.rotateOwn(agent, json: #"{"graceSeconds":0}"#)
            XCTAssertEqual(leaked.status, .conflict, leaked.text)
            try await assertEqual(
                await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, operatorSecret)).status, .ok,
                "the operator's credential still works")
            // The newest credential may rotate.
            try await assertEqual(await client.rotateOwn(agent, secret: operatorSecret, json: #"{"graceSeconds":0}"#).status, .created)
        }
    }

    func testLastUsedAtIsRecordedWithoutAWritePerRequest() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            for _ in 0..<5 { _ = try await client.accessToken(for: agent) }
            try await eventually("lastUsedAt is written") {
                let rows = try await TestDatabase.query(
                    "SELECT last_used_at IS NOT NULL AS used FROM agent_credentials WHERE agent_id = $1::uuid",
                    [agent.id]
                )
                return rows.first?["used"] == "t"
            }
            let listed = try await client.admin(.get, "/v1/agents/\(agent.id)/credentials")
            let item = try XCTUnwrap((listed.object["items"] as? [[String: Any]])?.first)
            XCTAssertNotNil(item["lastUsedAt"] as? String)
        }
    }

    func testUsesNotedBeforeAShutdownAreWrittenByIt() async throws {
        // No periodic flush can happen in this test: only the one at shutdown can write.
        let signet = try await TestSignet.make(lastUsedFlushInterval: .seconds(3600))
        let agent = try await signet.test { client in
            let agent = try await client.agent()
            _ = try await client.accessToken(for: agent)
            return agent
        }
        let rows = try await TestDatabase.query(
            "SELECT last_used_at IS NOT NULL AS used FROM agent_credentials WHERE agent_id = $1::uuid",
            [agent.id]
        )
        XCTAssertEqual(rows.first?["used"], "t", "the use noted before shutdown was written at shutdown")
        XCTAssertFalse(signet.logText.contains("could not record lastUsedAt"), "a clean shutdown logs no failure:\n\(signet.logText)")
    }

    func testMetadataDocumentsTheEndpoints() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let response = try await client.execute(uri: "/.well-known/oauth-authorization-server", method: .get)
            XCTAssertEqual(response.status, .ok)
            let metadata = response.object
            XCTAssertEqual(metadata["issuer"] as? String, "https://signet.test")
            XCTAssertEqual(metadata["token_endpoint"] as? String, "https://signet.test/oauth/token")
            XCTAssertEqual(metadata["introspection_endpoint"] as? String, "https://signet.test/oauth/introspect")
            XCTAssertEqual(metadata["revocation_endpoint"] as? String, "https://signet.test/oauth/revoke")
            XCTAssertEqual(metadata["jwks_uri"] as? String, "https://signet.test/.well-known/jwks.json")
            XCTAssertEqual(
                metadata["grant_types_supported"] as? [String],
                [
                    "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                ])
            XCTAssertEqual(
                metadata["token_exchange_token_types_supported"] as? [String],
                ["urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:jwt"])
            XCTAssertEqual(
                metadata["token_endpoint_auth_methods_supported"] as? [String],
                ["client_secret_basic", "client_secret_post", "private_key_jwt"])
        }
    }
}

/// Parses the API's RFC 3339 timestamps (with microseconds).
func parseTimestamp(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}

/// Hostile bodies on the token endpoint get a clear 4xx and leave the service running.
final class TokenBodyTests: XCTestCase {
    func testOversizedTokenRequestIsRejectedAndTheServiceKeepsServing() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent()
            let padding = String(repeating: "a", count: 20_000)
            let oversized = try await client.tokenRequest("grant_type=client_credentials&client_id=\(agent.clientID)&pad=\(padding)")
            XCTAssertEqual(oversized.status, .badRequest, oversized.text)
            XCTAssertEqual(oversized.errorCode, "invalid_request")
            _ = try await client.accessToken(for: agent)
        }
    }
}
