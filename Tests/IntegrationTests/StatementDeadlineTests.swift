import Foundation
import Service
import XCTest

/// Every statement has a client-side deadline: past it the caller gets `timedOut`, the server
/// gets a cancel request, and the connection is never reused.
final class StatementDeadlineTests: XCTestCase {
    func testAStatementPastItsDeadlineIsAbandonedAndCancelledOnTheServer() async throws {
        let application = unique("deadline")
        let url = try TestDatabase.url(applicationName: application)
        let outcome = try await Task.detached { () throws -> (error: DatabaseError?, usable: Bool) in
            let connection = try PostgresConnection.connect(url, settings: [])
            defer { connection.close() }
            connection.timeout = .milliseconds(200)
            do {
                try connection.query("SELECT pg_sleep(30)")
                return (nil, connection.isUsable)
            } catch {
                return (error as? DatabaseError, connection.isUsable)
            }
        }.value
        guard case .timedOut(let timeout) = outcome.error else {
            return XCTFail("expected timedOut, got \(String(describing: outcome.error))")
        }
        XCTAssertEqual(timeout, Duration.milliseconds(200))
        XCTAssertFalse(outcome.usable, "an abandoned connection is never used again")
        // The cancel request (and closing the connection) ends the statement on the server.
        try await eventually("no pg_sleep left running for \(application)") {
            let rows = try await TestDatabase.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'",
                [application])
            return rows.first?["n"] == "0"
        }
    }

    func testThePoolDiscardsAConnectionWhoseStatementTimedOutAndAnswersTheNextCaller() async throws {
        let signet = try await TestSignet.make(["DB_POOL_MAX": "2", "DB_POOL_MIN": "1"])
        let pool = signet.pool
        try await signet.test { _ in
            let before = pool.statistics.connectionsClosed
            do {
                try await pool.withConnection(timeout: .milliseconds(150)) { connection in
                    _ = try connection.query("SELECT pg_sleep(30)")
                }
                XCTFail("the statement should have timed out")
            } catch DatabaseError.timedOut {
            }
            XCTAssertEqual(pool.statistics.connectionsClosed, before + 1, "the stuck connection was closed, not returned")
            XCTAssertEqual(pool.statistics.leased, 0)
            let value = try await pool.withConnection { connection in try connection.query("SELECT 7 AS n").records.first?["n"] }
            XCTAssertEqual(value, "7")
        }
    }

    func testAMultiStatementScriptReportsTheFailingStatement() async throws {
        let url = try TestDatabase.url()
        let error = try await Task.detached { () throws -> DatabaseError? in
            let connection = try PostgresConnection.connect(url, settings: [])
            defer { connection.close() }
            do {
                try connection.execute(script: "SELECT 1; SELECT * FROM no_such_table_here; SELECT 2;")
                return nil
            } catch {
                return error as? DatabaseError
            }
        }.value
        guard case .server(let state, _, _) = error else { return XCTFail("expected a server error, got \(String(describing: error))") }
        XCTAssertEqual(state, "42P01")
    }

    /// A transaction whose body fails is rolled back and its connection goes back to the pool
    /// (a 409 or a 404 inside a transaction must not cost a reconnect).
    func testAFailedTransactionIsRolledBackAndItsConnectionKept() async throws {
        struct Refused: Error {}
        let signet = try await TestSignet.make(["DB_POOL_MAX": "1", "DB_POOL_MIN": "1"])
        let pool = signet.pool
        try await signet.test { _ in
            let closed = pool.statistics.connectionsClosed
            do {
                try await pool.transaction { connection in
                    _ = try connection.query("SELECT 1")
                    throw Refused()
                }
                XCTFail("the body's error should come through")
            } catch is Refused {}
            XCTAssertEqual(pool.statistics.connectionsClosed, closed, "the connection was kept")
            let state = try await pool.withConnection { connection in
                try connection.query("SELECT 1 AS n").records.first?["n"]
            }
            XCTAssertEqual(state, "1", "and it is usable: out of the failed transaction")
        }
    }
}
