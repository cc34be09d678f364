import Foundation
import HummingbirdTesting
import Service
import Synchronization
import XCTest

/// Issue 14: prepared statements on the hot paths, and a credential cache that every instance
/// invalidates at once through PostgreSQL `NOTIFY`, against the real PostgreSQL of `ci/test`.
final class PreparedStatementTests: XCTestCase {
    /// Prepared on first use, once per session; a session that lost its statements prepares them
    /// again instead of failing.
    func testAStatementIsPreparedOncePerSessionAndAgainWhenLost() async throws {
        let database = try await TestDatabase.create()
        // Migrated by the instance's start.
        _ = try await TestSignet.make(database: database, listensForChanges: false)
        let url = try TestDatabase.url(applicationName: unique("prepared"), database: database)
        let counts = try await Task.detached { () throws -> [Int] in
            let connection = try PostgresConnection.connect(url, settings: [])
            defer { connection.close() }
            func preparedOnServer() throws -> Int {
                let rows = try connection.query(
                    "SELECT count(*) AS n FROM pg_prepared_statements WHERE name = $1", [AgentStore.byID.name]
                ).records
                return Int(rows.first?["n"] ?? "") ?? -1
            }
            var counts = [try preparedOnServer()]
            let missing = UUID().uuidString.lowercased()
            XCTAssertFalse(connection.hasPrepared(AgentStore.byID))
            XCTAssertEqual(try connection.query(AgentStore.byID, [missing]).rows.count, 0)
            XCTAssertEqual(try connection.query(AgentStore.byID, [missing]).rows.count, 0)
            XCTAssertTrue(connection.hasPrepared(AgentStore.byID))
            counts.append(try preparedOnServer())
            try connection.query("DEALLOCATE ALL")
            counts.append(try preparedOnServer())
            XCTAssertEqual(try connection.query(AgentStore.byID, [missing]).rows.count, 0, "prepared again")
            counts.append(try preparedOnServer())
            // Lost inside a transaction: the transaction is aborted, so the error is thrown; the
            // session forgets what it prepared, and after the rollback the statement works again.
            try connection.query("BEGIN")
            try connection.query("DEALLOCATE ALL")
            XCTAssertThrowsError(try connection.query(AgentStore.byID, [missing])) { error in
                guard case DatabaseError.server(let state, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(state, "26000")
            }
            XCTAssertFalse(connection.hasPrepared(AgentStore.byID))
            try connection.query("ROLLBACK")
            XCTAssertEqual(try connection.query(AgentStore.byID, [missing]).rows.count, 0, "prepared again after the rollback")
            counts.append(try preparedOnServer())
            return counts
        }.value
        XCTAssertEqual(counts, [0, 1, 0, 1, 1])
    }

    /// Every name is unique, so no statement replaces another on a session.
    func testStatementNamesAreUnique() {
        XCTAssertEqual(Set(PreparedStatement.all.map(\.name)).count, PreparedStatement.all.count)
    }

    /// A reconnect prepares again: every session of the instance is terminated (the pool's and
    /// the listener's), and the token path, introspection and the agent read still answer.
    func testTheHotPathsWorkAfterEverySessionIsTerminated() async throws {
        let name = unique("prepared-reconnect")
        let signet = try await TestSignet.make(applicationName: name)
        try await signet.test { client in
            let agent = try await client.agent()
            let token = try await client.accessToken(for: agent)
            try await assertEqual(try await client.introspect(token)["active"] as? Bool, true)
            let terminated = try await TestDatabase.query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name LIKE $1 || '%'", [name])
            XCTAssertGreaterThan(Int(terminated.first?["n"] ?? "") ?? 0, 0)
            let again = try await client.accessToken(for: agent)
            try await assertEqual(try await client.introspect(again)["active"] as? Bool, true)
            try await assertEqual(try await client.admin(.get, "/v1/agents/\(agent.id)").status, .ok)
        }
    }
}

final class CredentialCacheTests: XCTestCase {

    /// Each change that affects a client, made on the first instance, drops the second's entry
    /// through `NOTIFY`: the second keeps entries a minute even without its listener here, so
    /// only the notification can make it refuse. Token uses (`last_used_at` writes) announce
    /// nothing and cost no read.
    func testEveryChangeOnOneInstanceDropsTheEntryOnTheOther() async throws {
        let database = try await TestDatabase.create()
        let lookups = Atomic<Int>(0)
        let first = try await TestSignet.make(["SIGNET_INSTANCE_ID": "first"], database: database)
        let second = try await TestSignet.make(
            ["SIGNET_INSTANCE_ID": "second"], database: database, onClientLookup: { lookups.add(1, ordering: .relaxed) },
            credentialCacheFallbackTTL: .seconds(60))
        try await first.test { one in
            try await second.test { two in
                // The second instance's listener listening: its start drops every entry cached
                // before it (by design), which under load could land after the entry below.
                try await eventually("the second instance's change listener is confirmed") {
                    let health = try await two.operations("/health/detailed").object
                    return (health["credentialCache"] as? [String: Any])?["status"] as? String == "healthy"
                }
                func refused(_ agent: TestAgent, secret: String? = nil) async throws -> Bool {
                    let form =
                        "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))"
                        + "&client_secret=\(formEncode(secret ?? agent.secret))"
                    return try await two.tokenRequest(form).status != .ok
                }

                // Revoking the credential.
                let revoked = try await one.agent()
                try await cached(revoked, on: two, lookups: lookups)
                let uses = lookups.load(ordering: .relaxed)
                for _ in 0..<5 { _ = try await two.accessToken(for: revoked) }
                let credentials = try await one.admin(.get, "/v1/agents/\(revoked.id)/credentials").object["items"] as? [[String: Any]]
                let credentialID = try XCTUnwrap(credentials?.first?["id"] as? String)
                // The uses above are written as lastUsedAt (every 50 ms here) without announcing a change.
                try await eventually("lastUsedAt is written") {
                    let items = try await one.admin(.get, "/v1/agents/\(revoked.id)/credentials").object["items"] as? [[String: Any]]
                    return items?.first?["lastUsedAt"] is String
                }
                _ = try await two.accessToken(for: revoked)
                XCTAssertEqual(lookups.load(ordering: .relaxed), uses, "cached throughout: a use is not a change")
                try await assertEqual(
                    try await one.admin(.delete, "/v1/agents/\(revoked.id)/credentials/\(credentialID)").status, .noContent)
                try await eventually("the second instance refuses the revoked secret", timeout: .seconds(2)) { try await refused(revoked) }

                // Suspending the agent, then making it active again.
                let suspended = try await one.agent()
                _ = try await two.accessToken(for: suspended)
                try await assertEqual(
                    try await one.admin(.patch, "/v1/agents/\(suspended.id)", json: #"{"status":"suspended"}"#).status, .ok)
                try await eventually("the second instance refuses a suspended agent", timeout: .seconds(2)) {
                    try await refused(suspended)
                }
                try await assertEqual(try await one.admin(.patch, "/v1/agents/\(suspended.id)", json: #"{"status":"active"}"#).status, .ok)
                try await eventually("the second instance serves it again", timeout: .seconds(2)) { try await !refused(suspended) }

                // Rotating without grace: the old secret ends at once.
                let rotated = try await one.agent()
                _ = try await two.accessToken(for: rotated)
                let rotation = try await one.admin(.post, "/v1/agents/\(rotated.id)/credentials/rotate", json: #"{"graceSeconds":0}"#)
                XCTAssertEqual(rotation.status, .created, rotation.text)
                try await eventually("the second instance refuses the rotated-out secret", timeout: .seconds(2)) {
                    try await refused(rotated)
                }
                let newSecret = try XCTUnwrap(rotation.object["client_secret"] as? String)
                let newSecretRefused = try await refused(rotated, secret: newSecret)
                XCTAssertFalse(newSecretRefused)

                // Removing a scope.
                let descoped = try await one.agent(scopes: ["read", "write"])
                _ = try await two.accessToken(for: descoped, scope: "write")
                try await assertEqual(try await one.admin(.patch, "/v1/agents/\(descoped.id)", json: #"{"scopes":["read"]}"#).status, .ok)
                try await eventually("the second instance no longer grants the removed scope", timeout: .seconds(2)) {
                    let form =
                        "grant_type=client_credentials&client_id=\(formEncode(descoped.clientID))"
                        + "&client_secret=\(formEncode(descoped.secret))&scope=write"
                    return try await two.tokenRequest(form).status != .ok
                }

                // Deactivating.
                let deactivated = try await one.agent()
                _ = try await two.accessToken(for: deactivated)
                try await assertEqual(try await one.admin(.delete, "/v1/agents/\(deactivated.id)").status, .noContent)
                try await eventually("the second instance refuses a deactivated agent", timeout: .seconds(2)) {
                    try await refused(deactivated)
                }
            }
        }
    }

    /// The listener's session is terminated: the cache is flushed, the listener connects again,
    /// flushes once more (changes went unannounced meanwhile) and entries live long again. The
    /// fallback lifetime is a minute here, so only a flush can make the entry go.
    func testALostListenerFlushesTheCacheAndRecovers() async throws {
        let name = unique("listener-lost")
        let lookups = Atomic<Int>(0)
        let signet = try await TestSignet.make(
            applicationName: name, onClientLookup: { lookups.add(1, ordering: .relaxed) }, credentialCacheFallbackTTL: .seconds(60))
        try await signet.test { client in
            let agent = try await client.agent()
            try await cached(agent, on: client, lookups: lookups)
            let health = try await client.operations("/health/detailed")
            let cache = health.object["credentialCache"] as? [String: Any]
            XCTAssertEqual(cache?["status"] as? String, "healthy", health.text)
            XCTAssertTrue((cache?["message"] as? String)?.hasPrefix("listening for client changes") == true, health.text)

            let terminated = try await TestDatabase.query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1",
                [name + ChangeListener.applicationNameSuffix])
            XCTAssertEqual(terminated.first?["n"], "1", "one listener session")
            try await eventually("the listener listens again") {
                signet.logs.entries.contains { $0.message == LogLine.listenerBack }
            }
            XCTAssertTrue(signet.logs.entries.contains { $0.message == LogLine.listenerLost })
            let before = lookups.load(ordering: .relaxed)
            _ = try await client.accessToken(for: agent)
            _ = try await client.accessToken(for: agent)
            XCTAssertEqual(lookups.load(ordering: .relaxed) - before, 1, "flushed, then cached again")
        }
    }

    /// Changes no row trigger sees, and triggers someone disabled: a `TRUNCATE` announces every
    /// client, and with a change trigger not enabled `ALWAYS` the listener does not count as
    /// current (health degraded, entries the short fallback) until it is again.
    func testTruncateAnnouncesEveryClientAndADisabledTriggerEndsTheLongLifetime() async throws {
        let database = try await TestDatabase.create()
        let url = try TestDatabase.url(applicationName: unique("operator"), database: database)
        let first = try await TestSignet.make(["SIGNET_INSTANCE_ID": "first"], database: database)
        let second = try await TestSignet.make(
            ["SIGNET_INSTANCE_ID": "second"], database: database, credentialCacheFallbackTTL: .seconds(60))
        try await first.test { one in
            try await second.test { two in
                func cacheStatus() async throws -> String? {
                    let health = try await two.operations("/health/detailed")
                    return (health.object["credentialCache"] as? [String: Any])?["status"] as? String
                }
                let agent = try await one.agent()
                _ = try await two.accessToken(for: agent)
                _ = try await TestDatabase.query("TRUNCATE agents, agent_credentials CASCADE", url: url)
                try await eventually("the second instance forgets every client", timeout: .seconds(2)) {
                    let form =
                        "grant_type=client_credentials&client_id=\(formEncode(agent.clientID))&client_secret=\(formEncode(agent.secret))"
                    return try await two.tokenRequest(form).status == .unauthorized
                }

                _ = try await TestDatabase.query("ALTER TABLE agents DISABLE TRIGGER agents_changed", url: url)
                try await eventually("health reports the cache degraded", timeout: .seconds(8)) { try await cacheStatus() == "degraded" }
                XCTAssertTrue(second.logs.entries.contains { "\($0.message)".hasPrefix("a client change trigger is not enabled") })
                _ = try await TestDatabase.query("ALTER TABLE agents ENABLE ALWAYS TRIGGER agents_changed", url: url)
                try await eventually("health reports the cache healthy again", timeout: .seconds(8)) {
                    try await cacheStatus() == "healthy"
                }
            }
        }
    }

    /// Without a listener the cache keeps entries only the fallback lifetime (none here), and
    /// health says so.
    func testWithoutAListenerEntriesLiveOnlyTheFallback() async throws {
        let lookups = Atomic<Int>(0)
        let signet = try await TestSignet.make(
            onClientLookup: { lookups.add(1, ordering: .relaxed) }, credentialCacheFallbackTTL: .zero, listensForChanges: false)
        try await signet.test { client in
            let agent = try await client.agent()
            for _ in 0..<3 { _ = try await client.accessToken(for: agent) }
            XCTAssertEqual(lookups.load(ordering: .relaxed), 3)
            let health = try await client.operations("/health/detailed")
            XCTAssertEqual(health.status.code, 207, health.text)
            let cache = health.object["credentialCache"] as? [String: Any]
            XCTAssertEqual(cache?["status"] as? String, "degraded", health.text)
            XCTAssertTrue((cache?["message"] as? String)?.hasPrefix("not listening for client changes") == true, health.text)
        }
    }
}

/// Asks for tokens until one costs no read: the registration's own notification may arrive
/// after the first request cached the client, and drops it once (an extra read, never a
/// stale answer).
private func cached(_ agent: TestAgent, on client: any TestClientProtocol, lookups: borrowing Atomic<Int>) async throws {
    var answeredFromCache = false
    for _ in 0..<50 where !answeredFromCache {
        let before = lookups.load(ordering: .relaxed)
        _ = try await client.accessToken(for: agent)
        answeredFromCache = lookups.load(ordering: .relaxed) == before
    }
    XCTAssertTrue(answeredFromCache, "a token request answered from the cache")
}
