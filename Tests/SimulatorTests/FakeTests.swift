import Foundation
import NIOHTTP1
import XCTest

@testable import Simulator

/// The Vault and OPA fakes speak the real endpoints with the real status codes.
final class VaultFakeTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures")

    func testHealthUsesVaultStatusCodes() async throws {
        let vault = try await VaultFake.start()
        let health = "\(vault.url)/v1/sys/health?standbyok=true&perfstandbyok=true"
        try await assertStatus(health, 200)
        vault.setStandby(true)
        try await assertStatus(health, 429)
        vault.setStandby(false)
        vault.setSealed(true)
        let sealed = try await HTTP.request(.GET, health)
        XCTAssertEqual(sealed.status, 503)
        XCTAssertEqual(sealed.json["sealed"] as? Bool, true)
        vault.setSealed(false)
        vault.setInitialized(false)
        try await assertStatus(health, 501)
        await vault.stop()
    }

    func testKVVersion2RoundTripBehindTheToken() async throws {
        let vault = try await VaultFake.start(token: "t0k3n")
        let base = "\(vault.url)/v1/secret/data/signet/keys"
        let token = [("X-Vault-Token", "t0k3n")]
        try await assertStatus(base, 404, headers: token)
        let written = try await HTTP.request(.POST, base, headers: token, body: #"{"data":{"current":"k1"}}"#)
        XCTAssertEqual(written.status, 200)
        XCTAssertEqual((written.json["data"] as? [String: Any])?["version"] as? Int, 1)
        _ = try await HTTP.request(.PUT, base, headers: token, body: #"{"data":{"current":"k2"}}"#)
        let read = try await HTTP.request(.GET, base, headers: token)
        let data = read.json["data"] as? [String: Any]
        XCTAssertEqual((data?["data"] as? [String: String])?["current"], "k2")
        XCTAssertEqual((data?["metadata"] as? [String: Any])?["version"] as? Int, 2)
        let metadata = try await HTTP.request(.GET, "\(vault.url)/v1/secret/metadata/signet/keys", headers: token)
        XCTAssertEqual((metadata.json["data"] as? [String: Any])?["current_version"] as? Int, 2)

        try await assertStatus(base, 403, headers: [("X-Vault-Token", "wrong")])
        try await assertStatus(base, 403)
        let denied = try await HTTP.request(.GET, base, headers: [("X-Vault-Token", "wrong")])
        XCTAssertEqual(denied.json["errors"] as? [String], ["permission denied"])

        try await assertStatus(base, 204, method: .DELETE, headers: token)
        try await assertStatus(base, 404, headers: token)
        await vault.stop()
    }

    func testSeedLatencyAndDown() async throws {
        let vault = try await VaultFake.start(seedDirectory: Self.fixtures.appendingPathComponent("vault"))
        XCTAssertEqual(vault.secret(path: "signet/admin")?["token"], "sim-admin-token-0123456789abcdefghijkl")
        vault.setLatency(.milliseconds(300))
        let started = ContinuousClock.now
        try await assertStatus("\(vault.url)/v1/sys/health", 200)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(300))
        vault.setLatency(.zero)
        try await vault.setDown(true)
        do {
            _ = try await HTTP.request(.GET, "\(vault.url)/v1/sys/health", timeout: .seconds(2))
            XCTFail("a down Vault must refuse connections")
        } catch {}
        try await vault.setDown(false)
        try await assertStatus("\(vault.url)/v1/sys/health", 200)
        await vault.stop()
    }
}

final class OPAFakeTests: XCTestCase {
    func testDefaultDecisionsMatchThePolicyCases() async throws {
        let opa = try await OPAFake.start()
        let cases =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: VaultFakeTests.fixtures.appendingPathComponent("opa/policy-cases.json"))
            ) as? [String: Any]
        let path = try XCTUnwrap(cases?["path"] as? String)
        let list = try XCTUnwrap(cases?["cases"] as? [[String: Any]])
        XCTAssertFalse(list.isEmpty)
        // First its fast path for the built-in policy, then the same policy as a set decision.
        for round in 0..<2 {
            if round == 1 { opa.setDecision(OPAFake.builtInPolicy) }
            for entry in list {
                let input = try JSONSerialization.data(withJSONObject: ["input": entry["input"]!])
                let response = try await HTTP.request(.POST, "\(opa.url)/v1/data/\(path)", body: String(decoding: input, as: UTF8.self))
                XCTAssertEqual(response.status, 200)
                let result = response.json["result"] as? [String: Any]
                XCTAssertEqual(result?["scopes"] as? [String], entry["scopes"] as? [String], "round \(round): \(entry["name"] ?? "")")
            }
        }
        XCTAssertEqual(opa.decisionCount, 2 * list.count)
        await opa.stop()
    }

    func testCustomDecisionFailuresAndDown() async throws {
        let opa = try await OPAFake.start()
        opa.setDecision { path, _ in ["scopes": ["from:\(path)"]] }
        let custom = try await HTTP.request(.POST, "\(opa.url)/v1/data/signet/token", body: #"{"input":{}}"#)
        XCTAssertEqual((custom.json["result"] as? [String: Any])?["scopes"] as? [String], ["from:signet/token"])
        try await assertStatus("\(opa.url)/health", 200)
        opa.setFailing(true)
        try await assertStatus("\(opa.url)/health", 500)
        let failed = try await HTTP.request(.POST, "\(opa.url)/v1/data/signet/token", body: #"{"input":{}}"#)
        XCTAssertEqual(failed.status, 500)
        opa.setFailing(false)
        try await opa.setDown(true)
        do {
            _ = try await HTTP.request(.GET, "\(opa.url)/health", timeout: .seconds(2))
            XCTFail("a down OPA must refuse connections")
        } catch {}
        await opa.stop()
    }
}

func assertStatus(
    _ url: String,
    _ status: Int,
    method: NIOHTTP1.HTTPMethod = .GET,
    headers: [(String, String)] = [],
    file: StaticString = #filePath,
    line: UInt = #line
) async throws {
    let response = try await HTTP.request(method, url, headers: headers)
    XCTAssertEqual(response.status, status, "\(method) \(url): \(response.body)", file: file, line: line)
}
