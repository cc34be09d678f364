import Foundation
import Simulator
import XCTest

/// `signet-sim chaos --allow-faults` (issue 27) against a deployed-like stack: one Signet whose
/// PostgreSQL, Redis, Vault and OPA each go through a proxy of `signet-sim proxy` (in process,
/// Toxiproxy's API), observed only through HTTP as staging offers it.
final class ChaosFaultTests: XCTestCase {
    func testEveryFaultScenarioPassesAgainstAStackBehindTheProxyAndLeavesNoToxic() async throws {
        let stack = try await SharedStack.shared.get()
        let server = try await ToxiproxyServer.start(port: 0)
        let vault = try await VaultFake.start(seedDirectory: URL(fileURLWithPath: "fixtures/vault"))
        let opa = try await OPAFake.start()
        func port(_ url: String) -> Int { Int(url.split(separator: ":").last ?? "0") ?? 0 }
        let upstreams = [
            "redis": stack.redis.port, "postgres": stack.postgres.port, "vault": port(vault.url), "opa": port(opa.url),
        ]
        var listening: [String: Int] = [:]
        for (name, upstream) in upstreams {
            let proxy = try await server.create(name: "staging-\(name)", listen: "127.0.0.1:0", upstream: "127.0.0.1:\(upstream)")
            listening[name] = Int(proxy.listen.split(separator: ":").last ?? "0")
        }
        // A crash of an earlier run left a toxic behind.
        try await server.proxy("staging-redis")?.addToxic(
            Toxic(name: "signet-sim-crashed-redis-x", kind: .latency, attributes: ["latency": 1]))

        let database = try await stack.postgres.createDatabase(prefix: "chaosfaults")
        let token = "sim-admin-token-0123456789abcdefghijkl"
        var environment = stack.instanceEnvironment(
            database: database, adminToken: token,
            [
                "DB_POOL_CONNECTION_TIMEOUT_MS": "1000", "DB_STATEMENT_TIMEOUT_MS": "1000", "VAULT_TOKEN": vault.token,
                "REDIS_KEY_PREFIX": "chaos-\(UUID().uuidString.prefix(8)):",
            ])
        environment["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:\(listening["postgres"]!)/\(database)?application_name=chaos"
        environment["REDIS_URL"] = "redis://127.0.0.1:\(listening["redis"]!)"
        environment["VAULT_ADDR"] = "http://127.0.0.1:\(listening["vault"]!)"
        environment["OPA_URL"] = "http://127.0.0.1:\(listening["opa"]!)"
        let instance = try await SignetInstance.start(id: "staging", environment: environment)

        let faults = ChaosFaults(
            toxiproxy: ToxiproxyClient(base: server.url),
            proxies: ["redis": "staging-redis", "postgres": "staging-postgres", "vault": "staging-vault", "opa": "staging-opa"])
        let report = await Chaos.run(target: instance.url, adminToken: token, operations: instance.opsURL, faults: faults)
        print(report.rendered)
        XCTAssertTrue(report.passed, report.rendered)
        let names = report.checks.map(\.name)
        for expected in [
            "Redis refused: tokens keep flowing (limiter in memory)", "Redis black-holed: health says unreachable",
            "Vault slow: health says degraded", "OPA down: token requests fail closed",
            "PostgreSQL black-holed: a read is 503 with Retry-After",
            "PostgreSQL back: reads recover without a restart",
        ] {
            XCTAssertTrue(names.contains(expected), "\(expected) not checked")
        }
        XCTAssertEqual(report.checks.first { $0.name.hasPrefix("toxics an earlier run") }?.observed, "1")
        for name in upstreams.keys { XCTAssertEqual(server.proxy("staging-\(name)")?.toxics, [], "\(name): every toxic removed") }
        XCTAssertTrue(ReportFiles.junit([report]).contains("<testsuite name=\"chaos\""))

        await instance.stop()
        await server.stop()
        await vault.stop()
        await opa.stop()
    }
}
