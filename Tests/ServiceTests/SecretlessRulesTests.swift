import Crypto
import Foundation
import SignetJOSE
import SignetResourceServer
import SignetTestSupport
import XCTest

@testable import Service

/// The pure rules of issue 29, each boundary at an exact instant: keys, JWS parsing, client
/// assertions, DPoP proofs, nonces, the in-memory replay guard, repeated form parameters.
final class SecretlessRulesTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    var seconds: Int { 1_800_000_000 }
    let key = P256.Signing.PrivateKey()

    func jws(header: [String: Any], claims: [String: Any], key: P256.Signing.PrivateKey? = nil) -> String {
        func part(_ object: Any) -> String {
            Base64URL.encode(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        }
        let input = part(header) + "." + part(claims)
        let signature = try! (key ?? self.key).signature(for: Array(input.utf8)).rawRepresentation
        return input + "." + Base64URL.encode(signature)
    }

    var publicMembers: [String: String] {
        let raw = Array(key.publicKey.rawRepresentation)
        return ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(raw[0..<32]), "y": Base64URL.encode(raw[32..<64])]
    }

    // MARK: Keys

    func testAPublicKeyIsReadAndAnythingElseIsRefusedByName() throws {
        let jwk = try PublicJWK(publicMembers.merging(["kid": "a", "use": "sig", "alg": "ES256"]) { $1 }, requireKid: true)
        XCTAssertEqual(jwk.kid, "a")
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(publicMembers["x"]!)","y":"\#(publicMembers["y"]!)"}"#
        XCTAssertEqual(jwk.thumbprint, Base64URL.encode(SHA256.hash(data: Array(canonical.utf8))), "RFC 7638 §3: required members, sorted")
        func refusal(_ object: [String: Any], requireKid: Bool = true) -> String? {
            do {
                _ = try PublicJWK(object, requireKid: requireKid)
                return nil
            } catch {
                return error.description
            }
        }
        XCTAssertEqual(
            refusal(publicMembers.merging(["kid": "a", "d": "secret"]) { $1 }),
            #"the key carries a private part ("d"): register the public key only"#)
        XCTAssertTrue(refusal(["kty": "oct", "k": "c2VjcmV0", "kid": "h"])?.contains("symmetric") == true)
        XCTAssertEqual(refusal(publicMembers), #"every key needs a "kid""#)
        XCTAssertNil(refusal(publicMembers, requireKid: false), "a DPoP proof's jwk needs no kid")
        XCTAssertTrue(refusal(publicMembers.merging(["kid": "a", "alg": "HS256"]) { $1 })?.contains("not accepted") == true)
        XCTAssertTrue(refusal(publicMembers.merging(["kid": "a", "alg": "EdDSA"]) { $1 })?.contains("does not fit") == true)
        var offCurve = publicMembers.merging(["kid": "a"]) { $1 }
        offCurve["y"] = Base64URL.encode([UInt8](repeating: 7, count: 32))
        XCTAssertEqual(refusal(offCurve), "the EC key is not a point on its curve")
        let modulus2047 = [0x7F] + [UInt8](repeating: 0xFF, count: 255)
        XCTAssertEqual(
            refusal(["kty": "RSA", "kid": "r", "e": "AQAB", "n": Base64URL.encode(modulus2047)]),
            "RSA keys must be at least 2048 bits (this one is 2047)")
        let modulus4097 = [0x01] + [UInt8](repeating: 0xFF, count: 512)
        XCTAssertEqual(
            refusal(["kty": "RSA", "kid": "r", "e": "AQAB", "n": Base64URL.encode(modulus4097)]), "RSA keys must be at most 4096 bits")
        XCTAssertTrue(refusal(publicMembers.merging(["kid": "a", "extra": "x"]) { $1 })?.contains("unknown key member") == true)
    }

    func testBase64URLRefusesPaddingAndOtherAlphabets() {
        XCTAssertEqual(Base64URL.decode("AQAB"), [1, 0, 1])
        XCTAssertNil(Base64URL.decode("AQAB="))
        XCTAssertNil(Base64URL.decode("A+/B"))
        XCTAssertNil(Base64URL.decode("A"), "one character left over is no byte")
        XCTAssertEqual(Base64URL.encode([0xFB, 0xFF]), "-_8")
    }

    func testAJWSNamingNoneOrHMACOrACriticalExtensionIsRefusedBeforeAnyKey() throws {
        for alg in ["none", "HS256", "RS1", "es256"] {
            let token = jws(header: ["alg": alg], claims: [:])
            XCTAssertThrowsError(try CompactJWS(token).algorithm(), alg)
        }
        XCTAssertThrowsError(try CompactJWS(jws(header: ["alg": "ES256", "crit": ["x"]], claims: [:])).algorithm())
        XCTAssertThrowsError(try CompactJWS("a.b"), "two parts")
        XCTAssertThrowsError(try CompactJWS(String(repeating: "a", count: CompactJWS.maxBytes + 1)), "too long")
        let parsed = try CompactJWS(jws(header: ["alg": "ES256"], claims: ["exp": true, "iat": 1.5, "nbf": "1"]))
        XCTAssertNil(parsed.seconds("exp"), "a boolean is no NumericDate")
        XCTAssertEqual(parsed.seconds("iat"), 1)
        XCTAssertNil(parsed.seconds("nbf"), "a string is no NumericDate")
    }

    // MARK: Client assertions

    func assertion(_ edit: [String: Any?] = [:]) throws -> ClientAssertion {
        var claims: [String: Any] = [
            "iss": "sgc_AAAAAAAAAAAAAAAAAAAAAA", "sub": "sgc_AAAAAAAAAAAAAAAAAAAAAA", "aud": "https://signet.test/oauth/token",
            "exp": seconds + 60, "jti": "one",
        ]
        for (name, value) in edit { claims[name] = value }
        return try ClientAssertion(jws(header: ["alg": "ES256", "kid": "a"], claims: claims))
    }

    func testAnAssertionsClaimsAreCheckedAtTheirExactBounds() throws {
        let audiences = ["https://signet.test", "https://signet.test/oauth/token"]
        func check(_ edit: [String: Any?]) -> String? {
            do {
                _ = try assertion(edit).check(audiences: audiences, at: now)
                return nil
            } catch {
                return (error as? JOSEError)?.description ?? "\(error)"
            }
        }
        XCTAssertEqual(try assertion().check(audiences: audiences, at: now), "assertion\u{0}sgc_AAAAAAAAAAAAAAAAAAAAAA\u{0}one")
        XCTAssertNil(check(["aud": ["https://other", "https://signet.test"]]), "an audience list naming the issuer")
        XCTAssertNotNil(check(["aud": "https://signet.test/oauth/introspect"]))
        XCTAssertEqual(check(["exp": seconds]), "the client assertion has expired", "exp is exclusive, without skew")
        XCTAssertNil(check(["exp": seconds + 360]), "five minutes and the skew ahead")
        XCTAssertNotNil(check(["exp": seconds + 361]))
        XCTAssertNil(check(["iat": seconds + 60, "nbf": seconds + 60]), "within the skew")
        XCTAssertEqual(check(["iat": seconds + 61]), "the client assertion's iat is in the future")
        XCTAssertEqual(check(["nbf": "soon"]), "the client assertion's nbf is not a number")
        XCTAssertNotNil(check(["jti": ""]))
        XCTAssertNotNil(check(["jti": String(repeating: "j", count: 257)]))
        XCTAssertThrowsError(try assertion(["iss": "sgc_BBBBBBBBBBBBBBBBBBBBBB"]), "iss differs from sub")
    }

    func testAnAssertionIsVerifiedOnlyByAKeyOfALiveCredential() throws {
        let keys = try PublicJWKSet(["keys": [publicMembers.merging(["kid": "a"]) { $1 }]])
        func client(_ credentials: [ClientRecord.Credential]) -> ClientRecord {
            ClientRecord(
                agentID: "g", clientID: "sgc_AAAAAAAAAAAAAAAAAAAAAA", owner: "o", status: .active, scopes: [], credentials: credentials,
                tokenGeneration: 0, rateLimitSubject: RateLimitSubject(.agent, "g"))
        }
        let live = ClientRecord.Credential(id: "c1", digest: nil, keys: keys, expiresAt: now.addingTimeInterval(1))
        XCTAssertEqual(try assertion().credential(of: client([live]), at: now)?.id, "c1")
        let ended = ClientRecord.Credential(id: "c0", digest: nil, keys: keys, expiresAt: now)
        XCTAssertNil(try assertion().credential(of: client([ended]), at: now), "an expired credential's keys verify nothing")
        let other = try PublicJWKSet(["keys": [publicMembers.merging(["kid": "b"]) { $1 }]])
        XCTAssertNil(
            try assertion().credential(of: client([.init(id: "c2", digest: nil, keys: other, expiresAt: nil)]), at: now),
            "the kid picks the key: the same key under another kid does not count")
        let noKid = try ClientAssertion(
            jws(header: ["alg": "ES256"], claims: ["iss": "sgc_AAAAAAAAAAAAAAAAAAAAAA", "sub": "sgc_AAAAAAAAAAAAAAAAAAAAAA"]))
        XCTAssertEqual(noKid.credential(of: client([live]), at: now)?.id, "c1", "no kid: the client's one key")
        let two = try PublicJWKSet(["keys": [publicMembers.merging(["kid": "a"]) { $1 }, publicMembers.merging(["kid": "b"]) { $1 }]])
        XCTAssertNil(
            noKid.credential(of: client([.init(id: "c3", digest: nil, keys: two, expiresAt: nil)]), at: now),
            "no kid and several keys: nothing is tried")
    }

    // MARK: DPoP

    func proof(_ edit: [String: Any?] = [:], header: [String: Any?] = [:]) -> String {
        var claims: [String: Any] = ["htm": "POST", "htu": "https://signet.test/oauth/token", "iat": seconds, "jti": "p1"]
        for (name, value) in edit { claims[name] = value }
        var fullHeader: [String: Any] = ["alg": "ES256", "typ": "dpop+jwt", "jwk": publicMembers]
        for (name, value) in header { fullHeader[name] = value }
        return jws(header: fullHeader, claims: claims)
    }

    func testAProofsTimeMethodAndURLAreCheckedAtTheirExactBounds() throws {
        func check(_ proof: String, url: String = "https://signet.test/oauth/token", token: String? = nil) -> DPoPProofError? {
            do {
                _ = try DPoPProof(proof, method: "POST", url: url, accessToken: token, at: now, skew: 60)
                return nil
            } catch {
                return error
            }
        }
        let accepted = try DPoPProof(proof(), method: "POST", url: "https://signet.test/oauth/token", at: now, skew: 60)
        XCTAssertEqual(accepted.thumbprint, try PublicJWK(publicMembers, requireKid: false).thumbprint)
        XCTAssertNil(check(proof(["iat": seconds - 60])))
        XCTAssertNil(check(proof(["iat": seconds + 60])))
        XCTAssertNotNil(check(proof(["iat": seconds - 61])))
        XCTAssertNotNil(check(proof(["iat": seconds + 61])))
        XCTAssertNil(check(proof(["htu": "HTTPS://Signet.TEST:443/oauth/token?x=1#f"])), "normalised: case, default port, no query")
        XCTAssertNotNil(check(proof(["htu": "https://signet.test:8443/oauth/token"])))
        XCTAssertNotNil(check(proof(["htu": "https://signet.test/oauth/token/"])))
        XCTAssertNotNil(check(proof(["htm": "post"])), "the method is compared exactly")
        XCTAssertNotNil(check(proof(header: ["alg": "ES384"])))
        XCTAssertNotNil(check(proof(header: ["jwk": publicMembers.merging(["d": "x"]) { $1 }])))
        XCTAssertEqual(check(proof(), token: "t"), .invalid("ath must be the access token's SHA-256"))
        XCTAssertNil(check(proof(["ath": DPoPProof.accessTokenHash("t")]), token: "t"))
        let other = P256.Signing.PrivateKey()
        XCTAssertEqual(
            check(jws(header: ["alg": "ES256", "typ": "dpop+jwt", "jwk": publicMembers], claims: ["htm": "POST"], key: other)),
            .invalid("the signature does not verify with its jwk"))
    }

    func testNoncesLiveTheirStepAndTheNextAndAreTheSameOnEveryInstance() {
        let shared = SymmetricKey(size: .bits256)
        let one = DPoPNonces(sharedKey: shared)
        let two = DPoPNonces(sharedKey: shared)
        let issued = one.nonce(at: Date(timeIntervalSince1970: 1_800_000_000))  // the start of a step
        XCTAssertTrue(two.isValid(issued, at: Date(timeIntervalSince1970: 1_800_000_059)))
        XCTAssertTrue(two.isValid(issued, at: Date(timeIntervalSince1970: 1_800_000_119)), "the previous step's too")
        XCTAssertFalse(two.isValid(issued, at: Date(timeIntervalSince1970: 1_800_000_120)))
        XCTAssertFalse(DPoPNonces(sharedKey: SymmetricKey(size: .bits256)).isValid(issued, at: Date(timeIntervalSince1970: 1_800_000_000)))
        XCTAssertFalse(one.isValid("", at: Date(timeIntervalSince1970: 1_800_000_000)))
    }

    func testTheMemoryReplayGuardForgetsAfterItsWindowAndRefusesWhenFull() async {
        let clock = ManualClock()
        let guardian = MemoryReplayGuard(window: .seconds(10), capacity: 2, clock: { clock.now })
        let first = await guardian.check("a")
        let again = await guardian.check("a")
        XCTAssertEqual(first, .first)
        XCTAssertEqual(again, .seen)
        XCTAssertTrue(guardian.contains("a"))
        let b = await guardian.check("b")
        let full = await guardian.check("c")
        XCTAssertEqual(b, .first)
        XCTAssertEqual(full, .full, "full: refused rather than forgetting one that could then be replayed")
        clock.advance(by: .seconds(10))
        XCTAssertFalse(guardian.contains("a"), "out of the window")
        let later = await guardian.check("a")
        let c = await guardian.check("c")
        XCTAssertEqual(later, .first, "out of the window")
        XCTAssertEqual(c, .first)
    }

    // MARK: Forms and resources

    func testResourceMayBeRepeatedAndNothingElse() throws {
        let form = try OAuthForm.parse("resource=https%3A%2F%2Fa&grant_type=client_credentials&resource=urn%3Ab")
        XCTAssertEqual(form.values("resource"), ["https://a", "urn:b"])
        XCTAssertEqual(form["grant_type"], "client_credentials")
        XCTAssertThrowsError(try OAuthForm.parse("scope=a&scope=b"))
        XCTAssertEqual(try OAuthForm.parse("grant_type=x").values("resource"), [])
    }

    func testAResourceIsAnAbsoluteURIWithoutAFragment() {
        for good in ["https://a.example/mcp", "urn:example:ledger", "http://127.0.0.1:8080/x?y=1", "s3+x.y-z://b"] {
            XCTAssertTrue(AgentValidation.isResource(good), good)
        }
        for bad in ["relative/path", "/abs", "https://a#f", "https://a b", "1http://a", "x:", ":x", "https://é.example", ""] {
            XCTAssertFalse(AgentValidation.isResource(bad), bad)
        }
        XCTAssertFalse(AgentValidation.isResource("https://a/" + String(repeating: "x", count: AgentValidation.maxResourceLength)))
    }
}
