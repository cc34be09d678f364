import Foundation

/// Signet needs a server session of its own per connection: prepared statements, the change
/// listener's `LISTEN` and `statement_timeout` live in it. A pooler in front of PostgreSQL in
/// transaction or statement mode (PgBouncer's `pool_mode = transaction`) hands a client's server
/// session to whichever client runs a transaction next, so all three break, silently. Start-up
/// refuses that, with one line: two connections are opened, the first marks its session and the
/// second holds a transaction; if the second runs in the first's session, or the first finds its
/// mark gone, sessions are shared.
///
/// Positive only: a transaction pool kept busy by other clients may hand out other sessions
/// during the check and pass it, so session mode is what the documentation asks for.
enum SessionCheck {
    static func refuseSharedSessions(_ open: () throws -> PostgresConnection) throws {
        let first = try open()
        defer { first.close() }
        let second = try open()
        defer { second.close() }
        let mark = UUID().uuidString
        try first.query("SELECT set_config('signet.session_check', $1, false)", [mark])
        let firstSession = try backend(first)
        try second.query("BEGIN")
        let secondSession = try backend(second)
        let seen = try first.query("SELECT current_setting('signet.session_check', true) AS mark").records.first?["mark"]
        let firstAgain = try backend(first)
        try second.query("ROLLBACK")
        guard secondSession != firstSession, seen == mark, firstAgain == firstSession else {
            throw DatabaseError.unexpectedResult(
                "DATABASE_URL reaches a pooler that shares server sessions between clients (transaction or statement mode): "
                    + "Signet needs a session per connection for its prepared statements, LISTEN and statement_timeout; "
                    + "set pool_mode = session (PgBouncer) or connect to PostgreSQL directly")
        }
    }

    private static func backend(_ connection: PostgresConnection) throws -> String? {
        try connection.query("SELECT pg_backend_pid() AS pid").records.first?["pid"]
    }
}
