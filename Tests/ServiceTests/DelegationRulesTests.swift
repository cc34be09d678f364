import Crypto
import Foundation
import SignetJOSE
import Spec
import XCTest

@testable import Service

/// The pure rules of issue 30, each boundary exact: what a token exchange may issue
/// (`TokenExchange.plan`), its request's parameters, and a trusted issuer's assertion at exact instants.
final class DelegationRulesTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    var seconds: Int64 { 1_800_000_000 }

    func token(
        sub: String, client: String, scope: String = "read write", aud: [String] = ["https://signet.test"], exp: Int64? = nil,
        act: Actor? = nil, parents: [TokenLink]? = nil, jti: String = UUID().uuidString
    ) -> AccessTokenClaims {
        var claims = AccessTokenClaims(
            iss: "https://signet.test", sub: sub, aud: Audience(aud), client_id: client, scope: scope, iat: seconds,
            exp: exp ?? seconds + 900, jti: jti, credential_id: "cred-\(act?.sub ?? sub)", generation: 1)
        claims.act = act
        claims.parents = parents
        return claims
    }

    func request(_ fields: [String: String], repeated: [String: [String]] = [:]) throws(OAuthError) -> TokenExchangeRequest {
        var all = ["subject_token": "s", "subject_token_type": TokenExchangeRequest.accessTokenType]
        all.merge(fields) { $1 }
        return try TokenExchangeRequest(OAuthForm(fields: all.filter { !$0.value.isEmpty }, repeated: repeated))
    }

    func plan(
        caller: (String, String, [String]), subject: AccessTokenClaims, mayAct: [String] = [], actor: AccessTokenClaims? = nil,
        _ fields: [String: String] = [:], maxDepth: Int = 4
    ) throws -> TokenExchangePlan {
        try TokenExchange.plan(
            caller: caller, subject: subject, holderMayAct: mayAct, actor: actor, request: try request(fields), maxDepth: maxDepth,
            latest: seconds + 900)
    }

    func code(_ body: () throws -> Any) -> String? {
        do {
            _ = try body()
            return nil
        } catch let error as OAuthError {
            return error.code.rawValue
        } catch {
            return "\(error)"
        }
    }

    func testImpersonationNarrowsOnlyForTheTokensOwnClient() throws {
        let subject = token(sub: "a", client: "ca", scope: "read write credentials:rotate", aud: ["https://r1", "https://r2"])
        let narrowed = try plan(caller: ("a", "ca", ["read", "write", "credentials:rotate"]), subject: subject, ["scope": "write"])
        XCTAssertEqual(narrowed.scopes, ["write"])
        XCTAssertNil(narrowed.act)
        XCTAssertEqual(narrowed.parents, [subject.link])
        XCTAssertEqual(narrowed.expiry, subject.exp)
        let whole = try plan(caller: ("a", "ca", ["read", "write", "credentials:rotate"]), subject: subject)
        XCTAssertEqual(whole.scopes, ["read", "write"], "a scope acting on Signet never survives an exchange")
        XCTAssertEqual(whole.audience.values, ["https://r1", "https://r2"])
        XCTAssertEqual(
            try TokenExchange.plan(
                caller: ("a", "ca", ["read"]), subject: subject, holderMayAct: [], actor: nil,
                request: try request([:], repeated: ["resource": ["https://r2"]]), maxDepth: 4, latest: seconds + 900
            ).audience.values, ["https://r2"])

        XCTAssertEqual(code { try self.plan(caller: ("m", "cm", ["read"]), subject: subject) }, "invalid_request", "another client")
        XCTAssertEqual(code { try self.plan(caller: ("a", "ca", ["read"]), subject: subject, ["scope": "read admin"]) }, "invalid_scope")
        XCTAssertEqual(
            code { try self.plan(caller: ("a", "ca", ["read"]), subject: subject, ["scope": "credentials:rotate"]) }, "invalid_scope")
        XCTAssertEqual(
            code {
                try TokenExchange.plan(
                    caller: ("a", "ca", ["read"]), subject: subject, holderMayAct: [], actor: nil,
                    request: try self.request([:], repeated: ["audience": ["https://r3"]]), maxDepth: 4, latest: self.seconds + 900)
            }, "invalid_target")
        // The expiry: the earlier of the subject's and a new token's.
        let late = token(sub: "a", client: "ca", exp: seconds + 5000)
        XCTAssertEqual(try plan(caller: ("a", "ca", ["read", "write"]), subject: late).expiry, seconds + 900)
    }

    func testDelegationNestsTheActorsKeepsTheCommonScopesAndStopsAtTheDepth() throws {
        let a = token(sub: "a", client: "ca", scope: "read write deploy", exp: seconds + 600)
        let b = token(sub: "b", client: "cb", scope: "read write", exp: seconds + 300)
        let ab = try plan(caller: ("b", "cb", ["read", "write"]), subject: a, mayAct: ["b"], actor: b)
        XCTAssertEqual(ab.act, Actor(sub: "b"))
        XCTAssertEqual(ab.scopes, ["read", "write"])
        XCTAssertEqual(ab.expiry, seconds + 300, "never past the actor token either")
        XCTAssertEqual(ab.parents, [a.link, b.link])

        var abToken = token(sub: "a", client: "cb", scope: "read write", act: ab.act, parents: ab.parents)
        abToken.exp = ab.expiry
        let c = token(sub: "c", client: "cc", scope: "read")
        let abc = try plan(caller: ("c", "cc", ["read"]), subject: abToken, mayAct: ["c"], actor: c)
        XCTAssertEqual(abc.act, Actor(sub: "c", act: Actor(sub: "b")))
        XCTAssertEqual(abc.act?.chain, ["c", "b"])
        XCTAssertEqual(abc.scopes, ["read"])
        XCTAssertEqual(abc.parents, [abToken.link, a.link, b.link, c.link])
        XCTAssertEqual(abToken.link.agent, "b", "a delegated token's own link is its current actor's")
        var abcToken = abToken
        abcToken.act = abc.act
        XCTAssertEqual(
            abcToken.consents, [.init(grantor: "a", grantee: "b"), .init(grantor: "b", grantee: "c")], "each delegation's consent")
        XCTAssertEqual(a.consents, [])

        XCTAssertEqual(code { try self.plan(caller: ("c", "cc", ["read"]), subject: abToken, mayAct: ["d"], actor: c) }, "invalid_request")
        XCTAssertEqual(
            code { try self.plan(caller: ("c", "cc", ["read"]), subject: abToken, mayAct: ["c"], actor: c, maxDepth: 1) },
            "invalid_request", "past the depth")
        XCTAssertEqual(
            code { try self.plan(caller: ("c", "cc", ["read"]), subject: abToken, mayAct: ["c"], actor: b) }, "invalid_request",
            "another agent's token as actor token")
        let delegatedActor = token(sub: "c", client: "cc", act: Actor(sub: "x"))
        XCTAssertEqual(
            code { try self.plan(caller: ("c", "cc", ["read"]), subject: abToken, mayAct: ["c"], actor: delegatedActor) },
            "invalid_request", "a delegated token as actor token")
        XCTAssertEqual(
            code { try self.plan(caller: ("c", "cc", ["deploy"]), subject: abToken, mayAct: ["c"], actor: c) }, "invalid_scope",
            "nothing in common")
        let long = token(sub: "a", client: "ca", parents: Array(repeating: a.link, count: TokenExchange.maxParents))
        XCTAssertEqual(code { try self.plan(caller: ("a", "ca", ["read", "write"]), subject: long) }, "invalid_request", "lineage bound")
    }

    func testAnExchangeNeverUnbindsAKeyBoundToken() throws {
        var subject = token(sub: "a", client: "ca")
        subject.cnf = Confirmation(jkt: "key-a")
        func bound(_ caller: (String, String, [String]), actor: AccessTokenClaims? = nil, proof: String?, callerBound: Bool = false)
            throws -> TokenExchangePlan
        {
            try TokenExchange.plan(
                caller: caller, subject: subject, holderMayAct: ["b"], actor: actor, request: try request([:]), maxDepth: 4,
                latest: seconds + 900, binding: (proof, callerBound), now: seconds)
        }
        let a = ("a", "ca", ["read", "write"])
        XCTAssertEqual(code { try bound(a, proof: nil) }, "invalid_dpop_proof", "the bound subject's own client, no proof")
        XCTAssertEqual(code { try bound(a, proof: "key-x") }, "invalid_dpop_proof", "a proof of another key")
        XCTAssertNil(code { try bound(a, proof: "key-a") })
        let b = ("b", "cb", ["read", "write"])
        let actor = token(sub: "b", client: "cb")
        XCTAssertEqual(code { try bound(b, actor: actor, proof: nil) }, "invalid_dpop_proof", "delegating a bound token unbound")
        XCTAssertNil(code { try bound(b, actor: actor, proof: "key-b") }, "bound to the actor's own key")
        var boundActor = actor
        boundActor.cnf = Confirmation(jkt: "key-b")
        XCTAssertEqual(code { try bound(b, actor: boundActor, proof: "key-x") }, "invalid_dpop_proof", "not the actor token's key")
        subject.cnf = nil
        XCTAssertEqual(code { try bound(a, proof: nil, callerBound: true) }, "invalid_dpop_proof", "a DPoP-bound caller")
        XCTAssertNil(code { try bound(a, proof: nil) })
        subject.exp = seconds
        XCTAssertEqual(code { try bound(a, proof: nil) }, "invalid_request", "a token that would be expired")
    }

    func testTheRequestNamesItsTypesAndNothingElse() {
        XCTAssertEqual(code { try self.request(["subject_token_type": ""]) }, "invalid_request")
        XCTAssertEqual(code { try self.request(["subject_token_type": "urn:ietf:params:oauth:token-type:id_token"]) }, "invalid_request")
        XCTAssertEqual(code { try self.request(["subject_token": ""]) }, "invalid_request")
        XCTAssertEqual(code { try self.request(["actor_token": "t"]) }, "invalid_request", "an actor token without its type")
        XCTAssertEqual(code { try self.request(["actor_token_type": TokenExchangeRequest.jwtType]) }, "invalid_request")
        XCTAssertEqual(code { try self.request(["requested_token_type": "urn:ietf:params:oauth:token-type:id_token"]) }, "invalid_request")
        XCTAssertNil(code { try self.request(["requested_token_type": TokenExchangeRequest.jwtType]) }, "a JWT access token is a JWT")
        XCTAssertEqual(code { try self.request(["scope": "a\"b"]) }, "invalid_scope")
        XCTAssertEqual(code { try self.request(["resource": "not a uri"]) }, "invalid_target")
        XCTAssertNil(code { try self.request(["subject_token_type": TokenExchangeRequest.jwtType, "scope": "read read"]) })
        XCTAssertEqual(try? request(["scope": "read read write"]).requestedScopes, ["read", "write"])
    }

    // MARK: Trusted issuers' assertions

    let key = P256.Signing.PrivateKey()

    func assertion(_ edit: [String: Any?] = [:], kid: String? = "k1") -> FederatedAssertion? {
        var claims: [String: Any] = [
            "iss": "https://issuer", "sub": "spiffe://td/w", "aud": "https://signet", "exp": seconds + 300, "iat": seconds,
            "jti": "j1",
        ]
        for (name, value) in edit { claims[name] = value }
        var header: [String: Any] = ["alg": "ES256"]
        if let kid { header["kid"] = kid }
        func part(_ object: Any) -> String {
            Base64URL.encode(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        }
        let input = part(header) + "." + part(claims)
        let signature = try! key.signature(for: Array(input.utf8)).rawRepresentation
        return try? FederatedAssertion(input + "." + Base64URL.encode(signature))
    }

    func refusal(_ edit: [String: Any?]) -> String? {
        guard let assertion = assertion(edit) else { return "unreadable" }
        do {
            _ = try assertion.check(audience: "https://signet", at: now)
            return nil
        } catch {
            return error.description
        }
    }

    func testAnAssertionsClaimsAtTheirExactBounds() throws {
        let good = try XCTUnwrap(assertion())
        XCTAssertEqual(try good.check(audience: "https://signet", at: now), "federated\u{0}https://issuer\u{0}j1")
        XCTAssertNotNil(refusal(["aud": "https://other"]))
        XCTAssertNil(refusal(["aud": ["https://other", "https://signet"]]))
        XCTAssertNotNil(refusal(["exp": seconds]), "exp now is expired")
        XCTAssertNil(refusal(["exp": seconds + 1]))
        XCTAssertNil(refusal(["exp": seconds + 86_400]))
        XCTAssertNotNil(refusal(["exp": seconds + 86_401]))
        XCTAssertNil(refusal(["iat": seconds - 360]), "issued at most 300 s + the skew ago")
        XCTAssertNotNil(refusal(["iat": seconds - 361]))
        XCTAssertNil(refusal(["iat": seconds + 60]))
        XCTAssertNotNil(refusal(["iat": seconds + 61]))
        XCTAssertNotNil(refusal(["iat": nil]))
        XCTAssertNotNil(refusal(["nbf": seconds + 61]))
        XCTAssertNotNil(refusal(["nbf": "soon"]))
        XCTAssertNotNil(refusal(["jti": nil]))
        XCTAssertNotNil(refusal(["jti": String(repeating: "j", count: 257)]))
        XCTAssertNil(assertion(["sub": nil]), "no sub: not read at all")
        XCTAssertNil(assertion(["iss": ""]))

        // The replay window covers every instant at which an accepted assertion could be accepted again.
        XCTAssertGreaterThanOrEqual(
            Int64(Defaults.replayWindowMilliseconds) / 1000,
            Int64(Defaults.clientAssertionMaxLifetimeSeconds + 2 * Defaults.clockSkewSeconds))

        let publicKey = try PublicJWK(
            [
                "kty": "EC", "crv": "P-256", "kid": "k1", "x": Base64URL.encode(Array(key.publicKey.rawRepresentation.prefix(32))),
                "y": Base64URL.encode(Array(key.publicKey.rawRepresentation.suffix(32))),
            ], requireKid: true)
        let otherKey = P256.Signing.PrivateKey().publicKey.rawRepresentation
        let other = try PublicJWK(
            [
                "kty": "EC", "crv": "P-256", "kid": "k2", "x": Base64URL.encode(Array(otherKey.prefix(32))),
                "y": Base64URL.encode(Array(otherKey.suffix(32))),
            ], requireKid: true)
        XCTAssertNotNil(good.signingKey(in: [other, publicKey]))
        XCTAssertNil(good.signingKey(in: [other]))
        XCTAssertNotNil(assertion(kid: nil)?.signingKey(in: [publicKey]), "no kid: the only key")
        XCTAssertNil(assertion(kid: nil)?.signingKey(in: [other, publicKey]), "no kid and several keys: none tried")
    }
}
