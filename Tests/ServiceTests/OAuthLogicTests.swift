import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import XCTest

@testable import Service

final class OAuthLogicTests: XCTestCase {
    func testFormDecodingFollowsURLEncodingAndRejectsRepeats() throws {
        let form = try OAuthForm.parse("grant_type=client_credentials&scope=read+write%3Aall&empty=")
        XCTAssertEqual(form["grant_type"], "client_credentials")
        XCTAssertEqual(form["scope"], "read write:all")
        XCTAssertEqual(form["empty"], "")
        XCTAssertThrowsError(try OAuthForm.parse("a=1&a=2")) { error in
            XCTAssertEqual((error as? OAuthError)?.code, .invalidRequest)
        }
        XCTAssertThrowsError(try OAuthForm.parse("bad=%zz"))
    }

    func testBasicCredentialsAreFormDecodedPerRFC6749() throws {
        // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
        let header = "Basic " + Data("sgc_a%3Ab:s%2Bcret+x".utf8).base64EncodedString()
        let request = Request(
            head: .init(method: .post, scheme: "http", authority: "x", path: "/oauth/token", headerFields: [.authorization: header]),
            body: .init(buffer: .init())
        )
        let credentials = try XCTUnwrap(try ClientCredentials.basicCredentials(request))
        XCTAssertEqual(credentials.clientID, "sgc_a:b")
        XCTAssertEqual(credentials.secret, "s+cret x")
        let garbage = Request(
            head: .init(method: .post, scheme: "http", authority: "x", path: "/", headerFields: [.authorization: "Basic !!!"]),
            body: .init(buffer: .init())
        )
        XCTAssertThrowsError(try ClientCredentials.basicCredentials(garbage)) { error in
            XCTAssertEqual((error as? OAuthError)?.code, .invalidClient)
            XCTAssertEqual((error as? OAuthError)?.basicAttempted, true)
        }
    }

    func testBuiltInPolicyNarrowsAndFailsClosedForInactiveAgents() async throws {
        let policy = BuiltInPolicy()
        let active = PolicySubject(agentID: "a", owner: "o", status: .active, scopes: ["read", "write"])
        try await assertEqualAsync(await policy.grantedScopes(for: active, requested: ["write", "admin"]), ["write"])
        try await assertEqualAsync(await policy.grantedScopes(for: active, requested: []), ["read", "write"])
        let suspended = PolicySubject(agentID: "a", owner: "o", status: .suspended, scopes: ["read"])
        try await assertEqualAsync(await policy.grantedScopes(for: suspended, requested: ["read"]), [])
    }

    func testLastUsedIsNotedAtMostOncePerInterval() {
        let recorder = LastUsedRecorder(
            pool: ConnectionPool(
                configuration: .init(
                    minimumConnections: 0, maximumConnections: 1, idleTimeout: .seconds(1), connectionTimeout: .seconds(1)),
                connectionString: "postgresql://unused",
                logger: Logger(label: "test")
            ),
            logger: Logger(label: "test"),
            minimumInterval: .seconds(60)
        )
        let t0 = ContinuousClock.now
        recorder.noteUse(of: "c1", now: t0)
        recorder.noteUse(of: "c1", now: t0 + .seconds(59))
        recorder.noteUse(of: "c2", now: t0 + .seconds(1))
        XCTAssertEqual(recorder.pendingCount, 2)
        recorder.noteUse(of: "c1", now: t0 + .seconds(60))
        XCTAssertEqual(recorder.pendingCount, 2, "still one pending entry for c1")
    }

    func testOnlyES256AccessTokenHeadersYieldAKid() {
        func token(_ header: String) -> String {
            Data(header.utf8).base64URL + ".e30.sig"
        }
        XCTAssertEqual(KeyRing.kid(of: token(#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#)), "k1")
        XCTAssertNil(KeyRing.kid(of: token(#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#)), "alg none is never accepted")
        XCTAssertNil(KeyRing.kid(of: token(#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#)))
        XCTAssertNil(KeyRing.kid(of: token(#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#)), "only access tokens (RFC 9068)")
        XCTAssertNil(KeyRing.kid(of: "not.a"))
    }

    func testKeyIDIsTheRFC7638ThumbprintAndStable() throws {
        let key = P256.Signing.PrivateKey()
        let first = SigningKey(privateKey: key, isCurrent: true)
        let again = SigningKey(privateKey: try P256.Signing.PrivateKey(pemRepresentation: key.pemRepresentation), isCurrent: false)
        XCTAssertEqual(first.kid, again.kid)
        XCTAssertEqual(first.kid.count, 43, "base64url of a SHA-256")
        XCTAssertEqual(first.publicJWK["kid"], first.kid)
        XCTAssertNil(first.publicJWK["d"], "no private part in the JWK")
    }
}

func assertEqualAsync<Value: Equatable>(
    _ actual: @autoclosure () async throws -> Value,
    _ expected: Value,
    file: StaticString = #filePath,
    line: UInt = #line
) async throws {
    let value = try await actual()
    XCTAssertEqual(value, expected, file: file, line: line)
}

final class EncodingTests: XCTestCase {
    func testBase64URLMatchesFoundationWithoutPadding() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            XCTAssertEqual(Encoding.base64URL(bytes), expected, "length \(length)")
        }
    }

    func testHexEncodesLowerCaseAndDecodesEitherCase() {
        let bytes: [UInt8] = [0x00, 0x0f, 0xab, 0xff]
        XCTAssertEqual(Encoding.hex(bytes), "000fabff")
        XCTAssertEqual(Encoding.bytes(hex: "000FABff"), bytes)
        XCTAssertEqual(Data(hex: Data(bytes).hexString), Data(bytes))
        XCTAssertEqual(Encoding.hex([UInt8]()), "")
        XCTAssertNil(Encoding.bytes(hex: "abc"), "odd length")
        XCTAssertNil(Encoding.bytes(hex: "0g"), "not a hex digit")
    }

    func testRandomBytesHaveTheLengthAskedAndDiffer() {
        XCTAssertEqual(Encoding.randomBytes(16).count, 16)
        XCTAssertEqual(Encoding.randomBytes(3).count, 3)
        XCTAssertNotEqual(Encoding.randomBytes(32), Encoding.randomBytes(32))
    }

    func testFormDecoding() {
        XCTAssertEqual(Encoding.formDecode(Array("a+b%20c%3D%e2%82%ac".utf8)), "a b c=€")
        XCTAssertNil(Encoding.formDecode(Array("%zz".utf8)))
        XCTAssertNil(Encoding.formDecode(Array("%4".utf8)))
        XCTAssertNil(Encoding.formDecode(Array("%ff".utf8)), "not UTF-8")
    }
}

final class CredentialHasherTests: XCTestCase {
    func testTheDigestIsHMACSHA256UnderTheServerKeyAndOnlyTheSecretVerifies() {
        let key = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))
        let hasher = CredentialHasher(key: key)
        let secret = CredentialHasher.newSecret()
        let digest = hasher.digest(of: secret)
        XCTAssertEqual(digest, Data(HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: key)))
        XCTAssertEqual(hasher.digest(of: secret), digest, "a keyed copy is used each time, never the shared state")
        XCTAssertTrue(hasher.verify(secret, against: digest))
        XCTAssertFalse(hasher.verify(secret + "x", against: digest))
        XCTAssertFalse(hasher.verify("", against: digest))
        XCTAssertFalse(hasher.verify(secret, against: digest.prefix(31)), "a stored value of another length never matches")
        XCTAssertFalse(CredentialHasher(key: SymmetricKey(size: .bits256)).verify(secret, against: digest), "another key")
    }
}

/// How `/oauth/token` outcomes are counted in `signet_token_requests_total`.
final class TokenResultTests: XCTestCase {
    func testEachRefusalIsCountedUnderItsResult() {
        var policyRefusal = OAuthError(.invalidScope, "none of the requested scopes is granted to this agent")
        policyRefusal.deniedByPolicy = true
        let cases: [(any Error, SignetMetrics.TokenResult)] = [
            (OAuthError(.invalidClient, "client authentication failed"), .invalidClient),
            (OAuthError(.invalidScope, "scope must be space-separated scope tokens"), .invalidScope),
            (policyRefusal, .policyDenied),
            (OAuthError(.unauthorizedClient, "the agent is suspended"), .policyDenied),
            (OAuthError(.invalidRequest, "grant_type is required"), .invalidRequest),
            (OAuthError(.unsupportedGrantType, "only client_credentials is supported"), .invalidRequest),
            (PolicyError.unavailable("OPA did not answer"), .unavailable),
            (DatabaseError.connectionFailed("refused"), .unavailable),
        ]
        for (error, expected) in cases {
            XCTAssertEqual(OAuthRoutes.result(of: error), expected, "\(error)")
        }
    }
}
