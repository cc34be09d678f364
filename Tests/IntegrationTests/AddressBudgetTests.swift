import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Service
import Simulator
import Synchronization
import XCTest

/// What an unauthenticated party sends never decides whose quota is spent (issue 10): attack
/// traffic comes from 127.0.0.2 and its neighbours, the victim from 127.0.0.1, over real sockets.
final class AddressBudgetTests: XCTestCase {
    static let form = [("Content-Type", "application/x-www-form-urlencoded")]

    func testAWrongSecretFloodNamingTheVictimDoesNotLockItOut() async throws {
        let signet = try await TestSignet.make(["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "20", "RATE_LIMIT_MAX_REQUESTS": "50"])
        try await signet.live { port, client in
            let victim = try await client.agent()
            let attack = "grant_type=client_credentials&client_id=\(victim.clientID)&client_secret=wrong"
            let statuses = try await blocking {
                try (0..<200).map { _ in
                    try LoopbackConnection(port: port, from: "127.0.0.2").exchange("POST", "/oauth/token", headers: Self.form, body: attack)
                        .status
                }
            }
            XCTAssertEqual(Array(statuses.prefix(20)), Array(repeating: 401, count: 20), "the address budget: wrong secrets are 401")
            XCTAssertEqual(Set(statuses.dropFirst(20)), [429], "then the attacker's address is cut off")
            let own = "grant_type=client_credentials&client_id=\(victim.clientID)&client_secret=\(formEncode(victim.secret))"
            let answer = try await blocking {
                try LoopbackConnection(port: port, from: "127.0.0.1").exchange("POST", "/oauth/token", headers: Self.form, body: own)
            }
            XCTAssertEqual(answer.status, 200, "the victim's own request: \(answer.body)")
            XCTAssertNotNil(answer.json["access_token"])
            XCTAssertEqual(answer.header("RateLimit")?.hasPrefix("limit=50, remaining=49"), true, "the victim's quota is untouched")
            let denied = try await ClientIDAbuseTests.deniedEvents(victim.id)
            XCTAssertEqual(denied.attempts, 20, "every attempt within the address budget counted, none past it")
            XCTAssertLessThanOrEqual(denied.rows, 2, "in one row per agent, address and minute (two if a minute turned)")
        }
    }

    func testRandomClientIDsCostOneQueryEachUntilTheAddressIsCutOff() async throws {
        let lookups = Atomic<Int>(0)
        let signet = try await TestSignet.make(
            ["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "25"], onClientLookup: { lookups.add(1, ordering: .relaxed) })
        try await signet.live { port, client in
            _ = try await client.agent()  // the admin's request: its key, not the attacker's
            let before = lookups.load(ordering: .relaxed)
            let statuses = try await blocking {
                try (0..<1000).map { index in
                    // Half well-formed unknown ids, half malformed (overlong, bad characters, NUL).
                    let id =
                        index % 2 == 0
                        ? randomClientID()
                        : ["sgc_" + String(repeating: "A", count: 40), "sgc_AAAAAAAAAAAAAAAAAAA%2B%2F", "sgc_AAAAAAAAAAAAAAAAAAAAAA%00"][
                            index % 3]
                    return try LoopbackConnection(port: port, from: "127.0.0.3").exchange(
                        "POST", "/oauth/token", headers: Self.form,
                        body: "grant_type=client_credentials&client_id=\(id)&client_secret=x"
                    ).status
                }
            }
            XCTAssertEqual(Array(statuses.prefix(25)), Array(repeating: 401, count: 25))
            XCTAssertEqual(Set(statuses.dropFirst(25)), [429])
            let queries = lookups.load(ordering: .relaxed) - before
            XCTAssertLessThanOrEqual(queries, 13, "at most one query per distinct well-formed id within the budget (13 of the 25)")
            XCTAssertGreaterThan(queries, 0)

            // The same unknown id again and again: one query (negative cache).
            let unknown = randomClientID()
            let again = lookups.load(ordering: .relaxed)
            for _ in 0..<10 {
                let status = try await blocking {
                    try LoopbackConnection(port: port, from: "127.0.0.4").exchange(
                        "POST", "/oauth/token", headers: Self.form,
                        body: "grant_type=client_credentials&client_id=\(unknown)&client_secret=x"
                    ).status
                }
                XCTAssertEqual(status, 401)
            }
            XCTAssertEqual(lookups.load(ordering: .relaxed) - again, 1)

            // Redis holds a key per address and principal, not per attempt.
            let keys = try await Self.redisKeys(prefix: signet.configuration.rateLimit.keyPrefix)
            XCTAssertLessThanOrEqual(keys.count, 4, "\(keys)")
            XCTAssertTrue(
                keys.allSatisfy { $0.utf8.count == signet.configuration.rateLimit.keyPrefix.utf8.count + 38 }, "fixed-size keys: \(keys)")
        }
    }

    func testABurstOfDistinctClientIDsIsNotLookedUpAllAtOnce() async throws {
        let lookups = Atomic<Int>(0)
        let answered = AnsweredCount()
        let database = try await TestDatabase.create()
        let signet = try await TestSignet.make(
            ["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "25"], database: database, onClientLookup: { lookups.add(1, ordering: .relaxed) },
            addressGate: AddressGate(concurrentWork: 8))
        try await signet.live { port, _ in
            // Lookups stall on a lock while the burst arrives: each one under way stays under way.
            let locker = try PostgresConnection.connect(try TestDatabase.url(applicationName: "locker", database: database), settings: [])
            defer { locker.close() }
            _ = try locker.query("BEGIN")
            _ = try locker.query("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
            let burst = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<200 {
                        group.addTask {
                            let status = try await blocking {
                                try LoopbackConnection(port: port, from: "127.0.0.7").exchange(
                                    "POST", "/oauth/token", headers: Self.form,
                                    body: "grant_type=client_credentials&client_id=\(randomClientID())&client_secret=x"
                                ).status
                            }
                            answered.value.add(1, ordering: .relaxed)
                            return status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            // All but the lookups one address may have under way are answered while the lock holds.
            let bound = 8
            try await eventually("the burst is answered but for the stalled lookups") {
                answered.value.load(ordering: .relaxed) >= 200 - bound
            }
            XCTAssertEqual(lookups.load(ordering: .relaxed), bound, "\(bound) queries under way for the address, not 200")
            _ = try locker.query("ROLLBACK")
            let statuses = try await burst.value
            XCTAssertEqual(statuses.filter { $0 == 429 }.count, 175, "past the address budget, whatever arrived at once")
            XCTAssertTrue(
                Set(statuses.filter { $0 != 429 }).isSubset(of: [401, 503]),
                "within it: 401, or 503 for a lookup past the bound: \(statuses)")
            XCTAssertLessThanOrEqual(lookups.load(ordering: .relaxed), bound + 25)
        }
    }

    func testAnOverBudgetAddressIsRefusedBeforeAnyLookupButTheAdminStillWorks() async throws {
        let lookups = Atomic<Int>(0)
        let signet = try await TestSignet.make(
            ["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "2"], onClientLookup: { lookups.add(1, ordering: .relaxed) })
        try await signet.live { port, _ in
            for expected in [401, 401, 429] {
                let status = try await blocking {
                    try LoopbackConnection(port: port, from: "127.0.0.5").exchange("GET", "/v1/agents").status
                }
                XCTAssertEqual(status, expected)
            }
            let before = lookups.load(ordering: .relaxed)
            let refused = try await blocking {
                try LoopbackConnection(port: port, from: "127.0.0.5").exchange(
                    "POST", "/oauth/token", headers: Self.form,
                    body: "grant_type=client_credentials&client_id=\(randomClientID())&client_secret=x")
            }
            XCTAssertEqual(refused.status, 429)
            XCTAssertNotNil(refused.header("Retry-After"))
            XCTAssertEqual(lookups.load(ordering: .relaxed), before, "no query for an address over its budget")
            let admin = try await blocking {
                try LoopbackConnection(port: port, from: "127.0.0.5").exchange(
                    "GET", "/v1/agents", headers: [("Authorization", "Bearer \(TestSignet.adminToken)")])
            }
            XCTAssertEqual(admin.status, 200, "the admin token is checked cheaply and spends its own budget")
            let jwks = try await blocking {
                try LoopbackConnection(port: port, from: "127.0.0.5").exchange("GET", "/.well-known/jwks.json")
            }
            XCTAssertEqual(jwks.status, 200, "the JWKS has a budget of its own per address")
        }
    }

    func testForwardedForIsBelievedOnlyFromTrustedProxies() async throws {
        let signet = try await TestSignet.make(["RATE_LIMIT_ADDRESS_MAX_REQUESTS": "2", "TRUSTED_PROXIES": "127.0.0.1/32"])
        try await signet.live { port, _ in
            func anonymous(from source: String, forwardedFor: String?) async throws -> Int {
                try await blocking {
                    try LoopbackConnection(port: port, from: source).exchange(
                        "GET", "/v1/agents", headers: forwardedFor.map { [("X-Forwarded-For", $0)] } ?? []
                    ).status
                }
            }
            // An untrusted peer's header is ignored: a fresh forwarded address each time still
            // spends 127.0.0.6's budget.
            var statuses: [Int] = []
            for index in 0..<3 { statuses.append(try await anonymous(from: "127.0.0.6", forwardedFor: "10.0.0.\(index)")) }
            XCTAssertEqual(statuses, [401, 401, 429])
            // Through the trusted proxy the forwarded address is the subject, and a client's own
            // entry further left is not.
            statuses = []
            for index in 0..<3 { statuses.append(try await anonymous(from: "127.0.0.1", forwardedFor: "192.0.2.\(index), 10.1.1.1")) }
            XCTAssertEqual(statuses, [401, 401, 429], "the rightmost untrusted hop, 10.1.1.1, is the client")
            let another = try await anonymous(from: "127.0.0.1", forwardedFor: "10.1.1.2")
            XCTAssertEqual(another, 401, "another client behind the same proxy has its own budget")
        }
    }

    func testWhoeverHoldsAnAgentsTokenCannotSpendItsQuota() async throws {
        // Resource servers hold an agent's tokens: a token counts as the agent only where it acts
        // (rotation) and only while it is live.
        let signet = try await TestSignet.make(["RATE_LIMIT_MAX_REQUESTS": "5"])
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read", "credentials:rotate"])
            let token = try await client.accessToken(for: agent)
            for _ in 0..<20 {
                let response = try await client.execute(uri: "/v1/agents", method: .get, headers: [.authorization: "Bearer \(token)"])
                XCTAssertEqual(
                    response.status, .unauthorized, "an access token is not taken by the admin API, and not counted as the agent")
            }
            let revoked = try await client.execute(
                uri: "/oauth/revoke", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(token)&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))")
            )
            XCTAssertEqual(revoked.status, .ok)
            for _ in 0..<10 {
                let response = try await client.execute(
                    uri: "/v1/agents/\(agent.id)/credentials/rotate", method: .post, headers: [.authorization: "Bearer \(token)"])
                XCTAssertEqual(response.status, .unauthorized, "a revoked token rotates nothing and spends no quota of the agent")
            }
            let own = try await client.tokenRequest("grant_type=client_credentials", basic: (agent.clientID, agent.secret))
            XCTAssertEqual(own.status, .ok, own.text)
            XCTAssertEqual(
                own.headers[HTTPField.Name("RateLimit")!].map { $0.hasPrefix("limit=5, remaining=2") }, true,
                "only the agent's own three requests counted: \(own.headers[HTTPField.Name("RateLimit")!] ?? "-")")
        }
    }

    static func redisKeys(prefix: String) async throws -> [String] {
        let url = ProcessInfo.processInfo.environment["SIGNET_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        let endpoint = try XCTUnwrap(RedisEndpoint(url: url))
        let reply = try await blocking {
            try RedisConnection.connect(endpoint, timeout: .seconds(2)).command([Array("KEYS".utf8), Array("\(prefix)*".utf8)])
        }
        guard case .array(let values) = reply else { return [] }
        return values.compactMap { if case .string(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { nil } }
    }
}

/// A client id of the shape Signet issues (`sgc_` and 22 base64url characters) that names no client.
func randomClientID() -> String {
    let bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
    let base64URL = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    return "sgc_" + base64URL.prefix(22)
}

/// Requests of a burst answered so far.
final class AnsweredCount: Sendable {
    let value = Atomic<Int>(0)
}
