import Foundation
import Logging
import XCTest

@testable import Service

final class MigrationTests: XCTestCase {
    /// Several instances starting together on an empty database apply each migration once.
    func testConcurrentStartersApplyEachMigrationOnce() async throws {
        let database = "signet_migrate_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await TestDatabase.query("CREATE DATABASE \(database)")
        let url = try TestDatabase.url(applicationName: "signet-migrations", database: database)
        let logger = Logger(label: "migrations")
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let connection = try PostgresConnection.connect(url, settings: [])
                    return try Migrations.apply(on: connection, logger: logger)
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(applied.sorted(), Migrations.all.map(\.version), "every migration applied by exactly one starter")
        let rows = try await TestDatabase.query("SELECT count(*) AS n FROM schema_migrations", url: url)
        XCTAssertEqual(rows.first?["n"], String(Migrations.all.count))
        _ = try await TestDatabase.query("DROP DATABASE \(database) WITH (FORCE)")
    }

    func testAFailingMigrationLeavesNoPartialSchema() async throws {
        let database = "signet_migrate_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await TestDatabase.query("CREATE DATABASE \(database)")
        let url = try TestDatabase.url(applicationName: "signet-migrations", database: database)
        let broken = Migration(version: 1, name: "broken", sql: "CREATE TABLE half (id int); SELECT no_such_function();")
        let connection = try PostgresConnection.connect(url, settings: [])
        XCTAssertThrowsError(try Migrations.apply([broken], on: connection, logger: Logger(label: "migrations")))
        let tables = try connection.query("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'half'").records
        XCTAssertEqual(tables.first?["n"], "0")
        let versions = try connection.query("SELECT count(*) AS n FROM schema_migrations").records
        XCTAssertEqual(versions.first?["n"], "0")
        _ = try await TestDatabase.query("DROP DATABASE \(database) WITH (FORCE)")
    }
}
