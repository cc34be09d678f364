import Foundation
import Service
import SignetFuzzing
import SignetJOSE
import XCTest

/// The libFuzzer corpus (`fixtures/fuzz/`, grown by `ci/fuzz`) replayed through the same probes
/// the fuzzer runs: every input that ever crashed a parser is kept there, so each stays a
/// regression test. A broken property traps, which fails this suite.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures/fuzz")

    func inputs(_ target: FuzzTarget) throws -> [URL] {
        let directory = Self.corpus.appendingPathComponent(target.rawValue)
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func replay(_ target: FuzzTarget) throws {
        let files = try inputs(target)
        XCTAssertGreaterThanOrEqual(files.count, 5, "fixtures/fuzz/\(target.rawValue) holds too few seeds")
        for file in files {
            ParserProbes.run(target, Array(try Data(contentsOf: file)))
        }
    }

    func testFormCorpus() throws { try replay(.form) }
    func testBasicCorpus() throws { try replay(.basic) }
    func testJSONCorpus() throws { try replay(.json) }
    func testJWTCorpus() throws { try replay(.jwt) }
    func testJOSECorpus() throws { try replay(.jose) }

    /// The jose corpus reaches past the proof's signature: its seed proof verifies at the instant
    /// it was made for, and does not a second past the skew.
    func testJOSESeedProofVerifies() throws {
        let seed = try String(contentsOf: Self.corpus.appendingPathComponent("jose/dpop-proof"), encoding: .utf8)
        let url = "https://signet.test/oauth/token"
        XCTAssertNoThrow(try DPoPProof(seed, method: "POST", url: url, at: ParserProbes.joseInstant, skew: 60))
        XCTAssertThrowsError(try DPoPProof(seed, method: "POST", url: url, at: ParserProbes.joseInstant.addingTimeInterval(61), skew: 60))
    }

    /// The jwt corpus reaches past the signature check: its seed verifies with the fuzz key, and
    /// the same token with one byte of its signature changed does not.
    /// Synchronous (the key ring is made by blocking on a task, which an async test's pool
    /// thread must not do).
    func testJWTSeedVerifiesAndATamperedOneDoesNot() throws {
        let seed = try String(contentsOf: Self.corpus.appendingPathComponent("jwt/valid-seed-token"), encoding: .utf8)
        XCTAssertEqual(ParserProbes.blocking { await FuzzKeys.ring.verify(seed) }, FuzzKeys.seedClaims)
        var tampered = Array(seed.utf8)
        let index = tampered.count - 10
        tampered[index] = tampered[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let forged = String(decoding: tampered, as: UTF8.self)
        XCTAssertNil(ParserProbes.blocking { await FuzzKeys.ring.verify(forged) })
        let fresh = FuzzKeys.seedToken()
        XCTAssertEqual(ParserProbes.blocking { await FuzzKeys.ring.verify(fresh) }, FuzzKeys.seedClaims)
    }

    /// Every target's probe accepts what it should, so the properties are checked on real values:
    /// a registration, a patch and a rotation body all parse, a posted and a Basic credential read.
    func testSeedsReachTheProperties() throws {
        let register = try XCTUnwrap(try JSONValue.object(fromBody: Array(try seed("json/register"))))
        XCTAssertEqual(try NewAgent(register).scopes, ["reports:read", "reports:write"])
        let patch = try XCTUnwrap(try JSONValue.object(fromBody: Array(try seed("json/patch"))))
        XCTAssertEqual(try AgentPatch(patch).status, .suspended)
        let rotation = try XCTUnwrap(try JSONValue.object(fromBody: Array(try seed("json/rotate"))))
        XCTAssertEqual(try RotationRequest(rotation).graceSeconds, 300)
        let form = try OAuthForm.parse(Array(try seed("form/token-post")))
        XCTAssertEqual(try ClientCredentials.from(authorization: nil, form: form)?.secret, "s3cr+t x")
        let header = String(decoding: try seed("basic/header"), as: UTF8.self)
        XCTAssertEqual(try ClientCredentials.basicCredentials(header: header)?.clientID, "sgc_0123456789abcdef")
    }

    func seed(_ name: String) throws -> Data {
        try Data(contentsOf: Self.corpus.appendingPathComponent(name))
    }
}
