import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Service
import Simulator
import Synchronization
import XCTest

/// Issue 26: what a stranger holding one of an agent's tokens, or one busy address, could make
/// Signet do. Each test is one of the review's probes; each failed on the main it was filed against.
final class TokenHolderTests: XCTestCase {
    static let form = [("Content-Type", "application/x-www-form-urlencoded")]

    /// Probe 1: a token from a default grant, replayed from another address with grace 0, took the
    /// agent's credential for good.
    func testALeakedTokenCannotTakeItsAgentsCredential() async throws {
        let signet = try await TestSignet.make()
        try await signet.live { port, client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let token = try await client.accessToken(for: agent)
            let replay = try await blocking {
                try LoopbackConnection(port: port, from: "127.0.0.2").exchange(
                    "POST", "/v1/agents/\(agent.id)/credentials/rotate",
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: #"{"graceSeconds":0}"#)
            }
            XCTAssertEqual(replay.status, 401, replay.body)
            XCTAssertNil(replay.json["client_secret"])
            let own = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(own.status, .ok, "the agent's real secret still works")
            let events = try await client.admin(.get, "/v1/audit?agentId=\(agent.id)")
            let actions = (events.object["items"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            XCTAssertFalse(actions.contains("credential.rotate"), "\(actions)")
        }
    }

    /// Probe 2: replays spent the agent's budget and ran a liveness query each. Now a token spends
    /// nothing of its agent's, and once the agent's own budget is spent a request naming it is
    /// answered 429 before any lookup, secret check or limiter call.
    func testWhatTheLimiterRefusesCostsNoWork() async throws {
        let lookups = Atomic<Int>(0)
        let signet = try await TestSignet.make(
            ["RATE_LIMIT_MAX_REQUESTS": "3"], onClientLookup: { lookups.add(1, ordering: .relaxed) })
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read"])
            let token = try await client.accessToken(for: agent)
            for _ in 0..<20 {
                let replay = try await client.execute(
                    uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post, headers: [.authorization: "Bearer \(token)"])
                XCTAssertEqual(replay.status, .unauthorized)
            }
            for _ in 0..<2 {
                try await assertEqual(
                    await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret)).status, .ok,
                    "the replays spent none of the agent's budget")
            }
            try await assertEqual(
                await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret)).status,
                .tooManyRequests, "the agent's fourth request")
            let decisions = try await Self.limiterDecisions(client)
            let lookupsBefore = lookups.load(ordering: .relaxed)
            for secret in [agent.secret, "sgs_wrong", agent.secret] {
                let held = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, secret))
                XCTAssertEqual(held.status, .tooManyRequests)
                XCTAssertNotNil(held.headers[.retryAfter])
            }
            XCTAssertEqual(lookups.load(ordering: .relaxed), lookupsBefore, "no lookup for a held client")
            try await assertEqual(await Self.limiterDecisions(client), decisions, "and no limiter call")
        }
    }

    /// Probe 10: a fleet restarting at once behind one address got 503s from the bound on lookups
    /// under way per address. Now a request waits briefly for a slot: with lookups stalled on a
    /// table lock, 4 under way and 16 waiting, every one of the 20 gets its token once it lifts.
    func testAFleetColdStartBehindOneAddressGetsNoError() async throws {
        let lookups = Atomic<Int>(0)
        let database = try await TestDatabase.create()
        let gate = AddressGate(concurrentWork: 4)
        let signet = try await TestSignet.make(
            database: database, onClientLookup: { lookups.add(1, ordering: .relaxed) }, addressGate: gate)
        try await signet.live { port, client in
            var agents: [TestAgent] = []
            for _ in 0..<20 { agents.append(try await client.agent(scopes: ["read"])) }
            let locker = try PostgresConnection.connect(try TestDatabase.url(applicationName: "locker", database: database), settings: [])
            defer { locker.close() }
            _ = try locker.query("BEGIN")
            _ = try locker.query("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
            let fleet = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for agent in agents {
                        group.addTask {
                            try await blocking {
                                try LoopbackConnection(port: port, from: "127.0.0.6").exchange(
                                    "POST", "/oauth/token", headers: Self.form,
                                    body:
                                        "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=\(formEncode(agent.secret))"
                                ).status
                            }
                        }
                    }
                    return try await group.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
                }
            }
            try await eventually("4 lookups stall on the lock and the other 16 wait for a slot") {
                gate.working("127.0.0.6") == 4 && gate.waiting("127.0.0.6") == 16
            }
            XCTAssertEqual(lookups.load(ordering: .relaxed), 4, "never more lookups under way for one address than its bound")
            _ = try locker.query("ROLLBACK")
            let statuses = try await fleet.value
            XCTAssertEqual(statuses, [200: 20], "every agent of the cold start got its token")
        }
    }

    /// Probe 7 through a balancer: wrong secrets from addresses of one IPv6 /64 (each request
    /// another /128) are one aggregated row, as the limiter counts them, not a row per address.
    func testDenialsFromOneIPv6SiteAreOneRowAMinute() async throws {
        let signet = try await TestSignet.make(["TRUSTED_PROXIES": "127.0.0.1/32"])
        try await signet.live { port, client in
            let agent = try await client.agent(scopes: ["read"])
            for index in 1...12 {
                let refused = try await blocking {
                    try LoopbackConnection(port: port, from: "127.0.0.1").exchange(
                        "POST", "/oauth/token", headers: Self.form + [("X-Forwarded-For", "2001:db8:7:7::\(index)")],
                        body: "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=sgs_wrong")
                }
                XCTAssertEqual(refused.status, 401)
            }
            let denied = try await ClientIDAbuseTests.deniedEvents(agent.id)
            XCTAssertEqual(denied.attempts, 12)
            XCTAssertLessThanOrEqual(denied.rows, 2, "one row per /64 and minute (two if a minute turned), not twelve")
        }
    }

    /// Probe 8: readiness logged a warning per request while the database was down.
    func testReadinessLogsAChangeOfStateNotEachRequest() async throws {
        let database = try await TestDatabase.create()
        let signet = try await TestSignet.make(["HEALTH_CHECK_TIMEOUT_MS": "500"], database: database)
        try await signet.test { client in
            try await assertEqual(await client.execute(uri: "/health/ready", method: .get).status, .ok)
            _ = try await TestDatabase.query("ALTER DATABASE \(database) ALLOW_CONNECTIONS false")
            _ = try await TestDatabase.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database])
            try await eventually("readiness fails", timeout: .seconds(10)) {
                try await client.execute(uri: "/health/ready", method: .get).status == .serviceUnavailable
            }
            for _ in 0..<30 { _ = try await client.execute(uri: "/health/ready", method: .get) }
            _ = try await TestDatabase.query("ALTER DATABASE \(database) ALLOW_CONNECTIONS true")
            try await eventually("readiness recovers", timeout: .seconds(10)) {
                try await client.execute(uri: "/health/ready", method: .get).status == .ok
            }
        }
        let lines = signet.logs.entries.map { "\($0.message)" }
        XCTAssertEqual(lines.filter { $0 == "readiness: the database is unreachable" }.count, 1, "one line for the change")
        XCTAssertEqual(lines.filter { $0 == "readiness: the database answers again" }.count, 1)
    }

    /// Probe 9: `VAULT_TOKEN` followed a Vault impostor's cross-origin redirect.
    func testVaultAndOPAClientsNeverFollowARedirect() async throws {
        let seen = Mutex<[String]>([])
        let collector = Router()
        collector.get("**") { request, _ in
            seen.withLock { $0.append(request.headers[HTTPField.Name("X-Vault-Token")!] ?? "(none)") }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        try await Application(router: collector).test(.live) { collectorClient in
            let target = "http://127.0.0.1:\(try XCTUnwrap(collectorClient.port))"
            let impostor = Router()
            impostor.get("**") { request, _ in
                Response(status: .temporaryRedirect, headers: [.location: target + request.uri.path])
            }
            impostor.post("**") { request, _ in
                Response(status: .temporaryRedirect, headers: [.location: target + request.uri.path])
            }
            try await Application(router: impostor).test(.live) { impostorClient in
                let address = "http://127.0.0.1:\(try XCTUnwrap(impostorClient.port))"
                let vault = VaultClient(address: address, token: "s.never-leaves-vault-addr", mount: "secret", timeout: .seconds(2))
                let health = try? await vault.health(timeout: .seconds(2))
                XCTAssertNil(health, "a redirect is a failure, not a hop")
                let opa = OPAClient(url: address, decisionPath: "signet/token", timeout: .seconds(2))
                let decided = try? await opa.health(timeout: .seconds(2))
                XCTAssertNil(decided)
            }
        }
        XCTAssertEqual(seen.withLock { $0 }, [], "nothing reached the other origin, and no token with it")
    }

    /// `signet_rate_limit_decisions_total`, summed over backends and results.
    static func limiterDecisions(_ client: any TestClientProtocol) async throws -> Double {
        let scrape = try await client.operations("/metrics")
        return scrape.text.split(separator: "\n").filter { $0.hasPrefix("signet_rate_limit_decisions_total{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}
