import Foundation
import Logging
import Service
import Simulator
import Synchronization
import XCTest

/// The spec's "Database connection pool is explicitly configured" scenarios, against a real
/// PostgreSQL, through the real HTTP routes.
final class PoolIntegrationTests: XCTestCase {
    /// Spec: Pool exhaustion under load — past `DB_POOL_CONNECTION_TIMEOUT_MS`, a 503.
    func testPoolExhaustionAnswers503WithRetryAfterAtTheDeadline() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "2", "DB_POOL_MIN": "0", "DB_POOL_CONNECTION_TIMEOUT_MS": "300"])
        let pool = signet.pool
        try await signet.test { client in
            let id = try await client.registerID(owner: unique("owner"))
            let first = try await pool.lease()
            let second = try await pool.lease()
            XCTAssertEqual(pool.statistics.leased, 2)

            let started = ContinuousClock.now
            let response = try await client.admin(.get, "/v1/agents/\(id)")
            let elapsed = ContinuousClock.now - started
            XCTAssertEqual(response.status, .serviceUnavailable)
            XCTAssertEqual(response.headers[.retryAfter], "1")
            XCTAssertEqual(response.errorCode, "temporarily_unavailable")
            XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300), "it waited for the whole deadline")
            XCTAssertLessThan(elapsed, .milliseconds(2000), "and not much longer")
            XCTAssertEqual(pool.statistics.acquireTimeouts, 1)
            XCTAssertEqual(pool.statistics.total, 2, "never more than DB_POOL_MAX")

            first.release()
            second.release()
            let after = try await client.admin(.get, "/v1/agents/\(id)")
            XCTAssertEqual(after.status, .ok)
        }
        let line = try XCTUnwrap(signet.logs.entries.first { "\($0.message)".contains("DB_POOL_CONNECTION_TIMEOUT_MS") })
        XCTAssertEqual(line.level, .warning)
        XCTAssertEqual(line.metadata["total"], "2")
        XCTAssertEqual(line.metadata["leased"], "2")
        XCTAssertEqual(line.metadata["idle"], "0")
        XCTAssertEqual(line.metadata["waiting"], "0")
    }

    /// Spec: Pool exhaustion under load — a queued request resolves when a lease comes back in time.
    func testQueuedRequestSucceedsWhenALeaseIsReleasedWithinTheDeadline() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "2", "DB_POOL_MIN": "0", "DB_POOL_CONNECTION_TIMEOUT_MS": "3000"])
        let pool = signet.pool
        try await signet.test { client in
            let id = try await client.registerID(owner: unique("owner"))
            let first = try await pool.lease()
            let second = try await pool.lease()
            async let queued = client.admin(.get, "/v1/agents/\(id)")
            try await eventually("the request waits in the queue") { pool.statistics.waiting == 1 }
            first.release()
            let response = try await queued
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.object["id"] as? String, id)
            XCTAssertEqual(pool.statistics.acquireTimeouts, 0)
            second.release()
        }
    }

    /// Spec: Idle connections are reaped — back to `min`, in the pool and in PostgreSQL.
    func testIdleConnectionsAreReapedBackToMinimum() async throws {
        let name = unique("reap")
        let signet = try await TestSignet.make(
            ["DB_POOL_MAX": "10", "DB_POOL_MIN": "2", "DB_POOL_IDLE_TIMEOUT_MS": "200"],
            applicationName: name
        )
        let pool = signet.pool
        try await signet.test { _ in
            try await eventually("min connections are open") { pool.statistics.idle == 2 }
            // A burst that needs 10 connections at once.
            let leases = try await withThrowingTaskGroup(of: ConnectionPool.Lease.self) { group in
                for _ in 0..<10 { group.addTask { try await pool.lease() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            XCTAssertEqual(pool.statistics.total, 10)
            let open = try await TestDatabase.connectionCount(applicationName: name)
            XCTAssertEqual(open, 10)
            for lease in leases { lease.release() }

            try await eventually("the pool shrinks to min") { pool.statistics.total == 2 }
            try await eventually("PostgreSQL sees min connections") { try await TestDatabase.connectionCount(applicationName: name) == 2 }
            XCTAssertEqual(pool.statistics.idle, 2)
            XCTAssertGreaterThanOrEqual(pool.statistics.connectionsClosed, 8)
        }
    }

    /// A server-side kill of every pooled connection: none is handed out again, requests succeed.
    func testBrokenConnectionsAreDiscardedAndReplaced() async throws {
        let name = unique("broken")
        let signet = try await TestSignet.make(["DB_POOL_MAX": "4", "DB_POOL_MIN": "2"], applicationName: name)
        let pool = signet.pool
        try await signet.test { client in
            try await eventually("min connections are open") { pool.statistics.idle == 2 }
            let killed = try await TestDatabase.query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1",
                [name]
            )
            XCTAssertEqual(killed.first?["n"], "2")
            for _ in 0..<5 {
                let response = try await client.execute(uri: "/health/ready", method: .get)
                XCTAssertEqual(response.status, .ok, response.text)
            }
            XCTAssertGreaterThanOrEqual(pool.statistics.connectionsClosed, 2)
            try await eventually("PostgreSQL sees min connections again") {
                try await TestDatabase.connectionCount(applicationName: name) == 2
            }
        }
    }

    /// `DB_STATEMENT_TIMEOUT_MS` is the server's `statement_timeout` on every pooled connection,
    /// set once connected (`set_config`), not through the startup packet PgBouncer refuses.
    func testEveryPooledConnectionCarriesTheStatementTimeout() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "2", "DB_POOL_MIN": "2", "DB_STATEMENT_TIMEOUT_MS": "1234"])
        let pool = signet.pool
        try await signet.test { _ in
            try await eventually("both connections are open") { pool.statistics.idle == 2 }
            let leases = [try await pool.lease(), try await pool.lease()]
            for lease in leases {
                XCTAssertEqual(try lease.connection.query("SHOW statement_timeout").records.first?["statement_timeout"], "1234ms")
                lease.release()
            }
        }
    }

    /// SQLSTATE 25006 on a primary (a session or server set read-only) is the caller's error: the
    /// connection stays, nothing is run again, no new connection is opened.
    func testAWriteRefusedByAReadOnlyPrimaryReachesTheCallerAndKeepsTheConnection() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "1", "DB_POOL_MIN": "1"])
        let pool = signet.pool
        let table = unique("readonly_probe").replacingOccurrences(of: "-", with: "_")
        try await signet.test { _ in
            try await eventually("the one connection is open") { pool.statistics.idle == 1 }
            _ = try await pool.withConnection { try $0.query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY") }
            let before = pool.statistics
            do {
                _ = try await pool.withConnection { try $0.query("CREATE TABLE \(table) (x int)") }
                XCTFail("a refused write must reach the caller")
            } catch let error as DatabaseError {
                XCTAssertTrue(error.isReadOnlyServer, "\(error)")
            }
            XCTAssertEqual(pool.statistics.connectionsClosed, before.connectionsClosed, "the connection stays")
            XCTAssertEqual(pool.statistics.connectionsOpened, before.connectionsOpened)
        }
    }

    /// On a standby (a connection that reached it before a failover) a refused write discards the
    /// connection: the work is run again on a new one, three connections at most, then the
    /// caller gets the 25006.
    func testAWriteRefusedByAStandbyDiscardsTheConnectionThreeTimesAtMost() async throws {
        let primary = try await PostgresServer.start()
        addTeardownBlock { await primary.stop() }
        let standby = try await PostgresServer.startStandby(of: primary, name: "pool_test")
        addTeardownBlock { await standby.stop() }
        let pool = ConnectionPool(
            configuration: PoolConfiguration(
                minimumConnections: 0, maximumConnections: 1, idleTimeout: .seconds(60), connectionTimeout: .seconds(5)),
            connectionString: standby.url(database: "postgres"), logger: Logger(label: "test"))
        let running = Task { try await pool.run() }
        do {
            _ = try await pool.withConnection { try $0.query("CREATE TABLE pool_standby_probe (x int)") }
            XCTFail("a standby cannot write")
        } catch let error as DatabaseError {
            XCTAssertTrue(error.isReadOnlyServer, "\(error)")
        }
        XCTAssertEqual(pool.statistics.connectionsOpened, ConnectionPool.maxAttempts)
        XCTAssertEqual(pool.statistics.connectionsClosed, ConnectionPool.maxAttempts)
        running.cancel()
        _ = await running.result
    }

    /// A write whose outcome is unknown is never run blindly again: a transaction whose connection
    /// dies after `BEGIN` succeeded (here between its INSERT and its COMMIT) reaches the caller
    /// after one run, and nothing of it was written; a lone statement whose connection dies
    /// before anything succeeded runs again on another connection, three times at most.
    func testATransactionWhoseConnectionDiesIsNeverRunAgainAndWritesNothing() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "2", "DB_POOL_MIN": "1"])
        let pool = signet.pool
        let table = unique("commit_unknown").replacingOccurrences(of: "-", with: "_")
        try await signet.test { _ in
            _ = try await pool.withConnection { try $0.query("CREATE TABLE \(table) (x int)") }
            let runs = Counter()
            do {
                _ = try await pool.transaction { connection in
                    runs.increment()
                    try connection.query("INSERT INTO \(table) VALUES (1)")
                    // The server ends this session, as a crash or a failover would, before COMMIT.
                    try connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
                }
                XCTFail("the transaction's connection died: the caller must hear of it")
            } catch let error as DatabaseError {
                XCTAssertTrue(error.isConnectionFailure, "\(error)")
            }
            XCTAssertEqual(runs.value, 1, "never run again")
            let rows = try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM \(table)").records.first?["n"] }
            XCTAssertEqual(rows, "0", "nothing of it was written")

            let lone = Counter()
            do {
                _ = try await pool.withConnection { connection in
                    lone.increment()
                    try connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
                }
                XCTFail("every run's connection died")
            } catch let error as DatabaseError {
                XCTAssertTrue(error.isConnectionFailure, "\(error)")
            }
            XCTAssertEqual(lone.value, ConnectionPool.maxAttempts, "a statement that never succeeded runs again, three times at most")
        }
    }

    /// Readiness reports 503 when no connection can be had within the health timeout.
    func testReadinessFailsWhenTheDatabaseCannotAnswerInTime() async throws {
        let signet = try await TestSignet.make([
            "DB_POOL_MAX": "1", "DB_POOL_MIN": "0", "DB_POOL_CONNECTION_TIMEOUT_MS": "5000", "HEALTH_CHECK_TIMEOUT_MS": "200",
        ])
        let pool = signet.pool
        try await signet.test { client in
            try await assertEqual(await client.execute(uri: "/health/ready", method: .get).status, .ok)
            let held = try await pool.lease()
            // A round's result is shared for about 1 s, so the next rounds see the held pool.
            try await eventually("readiness reports the database unreachable") {
                let response = try await client.execute(uri: "/health/ready", method: .get)
                return response.status == .serviceUnavailable && response.object["database"] as? String == "unreachable"
            }
            try await assertEqual(await client.execute(uri: "/health/live", method: .get).status, .ok, "liveness checks no dependency")
            try await eventually("the timed-out health check left the queue") { pool.statistics.waiting == 0 }
            held.release()
            try await eventually("readiness recovers") { try await client.execute(uri: "/health/ready", method: .get).status == .ok }
        }
    }
}

/// A count the pool's worker threads add to.
private final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
