import Foundation
import JWTKit
import XCTest

@testable import Service

/// The hand-written token JSON must say what `JSONEncoder` says: decoded, the two are equal.
final class TokenJSONEncoderTests: XCTestCase {
    private func object(_ data: Data) throws -> NSDictionary {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    func testClaimsAreTheJSONThatJSONEncoderWrites() throws {
        let full = AccessTokenClaims(
            iss: "https://signet.test/a\"b\\c", sub: "8e3c…\u{1F600}", aud: "aud\n\r\t\u{1}\u{1F}", client_id: "sgc_AAAAAAAAAAAAAAAAAAAAAA",
            scope: "read write:all", iat: 1_700_000_000, exp: 1_700_000_900, jti: "j-_",
            credential_id: "5ecf2394-c901-4494-8486-777668ea7b65", generation: 3, nbf: -5)
        let bare = AccessTokenClaims(
            iss: "i", sub: "s", aud: "a", client_id: "c", scope: "", iat: 0, exp: Int64.max, jti: "")
        var bound = bare
        bound.aud = Audience(["https://a.example/", "urn:b"])
        bound.cnf = Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        var delegated = full
        delegated.act = Actor(sub: "c-agent", act: Actor(sub: "b-agent\"", act: Actor(sub: "a")))
        delegated.parents = [
            TokenLink(jti: "p1", agent: "a", credential_id: "5ecf2394-c901-4494-8486-777668ea7b65", generation: 2),
            TokenLink(jti: "p2", agent: "b", credential_id: nil, generation: 0),
        ]
        for claims in [full, bare, bound, delegated] {
            let written = try TokenJSONEncoder().encode(claims)
            XCTAssertEqual(try object(written), try object(JSONEncoder().encode(claims)))
            XCTAssertEqual(try JSONDecoder().decode(AccessTokenClaims.self, from: written), claims)
        }
        XCTAssertEqual(delegated.act?.chain, ["c-agent", "b-agent\"", "a"])
        XCTAssertEqual(delegated.act?.depth, 3)
        XCTAssertEqual(delegated.holder, "c-agent")
        let text = String(decoding: try TokenJSONEncoder().encode(full), as: UTF8.self)
        XCTAssertTrue(text.contains(#""aud":"aud\n\r\t\u0001\u001f""#), text)
        XCTAssertFalse(String(decoding: try TokenJSONEncoder().encode(bare), as: UTF8.self).contains("nbf"), "nil claims are left out")
    }

    func testAHeaderOfStringsIsWrittenSortedAndAnyOtherHeaderByJSONEncoder() throws {
        var header = JWTHeader()
        header.typ = "at+jwt"
        header.alg = "ES256"
        header.kid = "k\"1"
        let written = try TokenJSONEncoder().encode(header)
        XCTAssertEqual(String(decoding: written, as: UTF8.self), #"{"alg":"ES256","kid":"k\"1","typ":"at+jwt"}"#)
        XCTAssertEqual(try object(written), try object(JSONEncoder().encode(header)))
        header.fields["x5c"] = .array([.string("a")])
        XCTAssertNil(TokenJSONEncoder.json(header))
        XCTAssertEqual(try object(TokenJSONEncoder().encode(header)), try object(JSONEncoder().encode(header)))
    }

    func testATokenSignedThroughTheEncoderVerifies() async throws {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: ES256PrivateKey(), kid: "k", serializer: DefaultJWTSerializer(jsonEncoder: TokenJSONEncoder()))
        let claims = AccessTokenClaims(
            iss: "i", sub: "s", aud: "a", client_id: "c", scope: "read", iat: 1, exp: 2, jti: "j", credential_id: "c1", generation: 0)
        var header = JWTHeader()
        header.typ = "at+jwt"
        let token = try await keys.sign(claims, kid: "k", header: header)
        let parts = token.split(separator: ".").map { Data(base64URL: String($0)) }
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(parts[1], Data(TokenJSONEncoder.json(claims)), "the payload is the hand-written JSON")
        XCTAssertEqual(String(decoding: try XCTUnwrap(parts[0]), as: UTF8.self), #"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#)
        let verified = try await keys.verify(token, as: AccessTokenClaims.self)
        XCTAssertEqual(verified, claims)
    }
}
