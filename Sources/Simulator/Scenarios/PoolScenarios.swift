import Foundation
import Service

/// The spec's "Database connection pool is explicitly configured" scenarios, end to end:
/// a real `signet` process on a real PostgreSQL. Requests are held inside PostgreSQL by a table
/// lock the scenario owns, so "all connections are in use" is a fact observed in
/// `pg_stat_activity`, not a guess about timing.
public enum PoolScenarios {
    static let requirement = "Database connection pool is explicitly configured"

    public static let exhaustion = Scenario(
        name: "pool-exhaustion",
        requirement: requirement,
        specScenario: "Pool exhaustion under load",
        summary: "With DB_POOL_MAX=2 held busy, a request waits DB_POOL_CONNECTION_TIMEOUT_MS and gets 503 + Retry-After; "
            + "a queued request resolves when a connection frees up in time."
    ) { context in
        let timeoutMs = 1000
        let (signet, database, application) = try await startPooledSignet(
            context,
            id: "exhaustion",
            pool: ["DB_POOL_MAX": "2", "DB_POOL_MIN": "0", "DB_POOL_CONNECTION_TIMEOUT_MS": String(timeoutMs)]
        )
        let exhausted = try await exhaust(
            context, signet: signet, database: database, application: application, timeoutMs: timeoutMs
        ) {
            try await context.stack.postgres.connectionCount(applicationName: application)
        }
        var lock = exhausted.lock
        let (held, agentURL) = (exhausted.held, exhausted.agentURL)
        let token = context.adminToken
        try await lock.release()
        for request in held {
            context.expect("held request once the lock is gone", try await request.value.status, equals: 200)
        }

        // Round 2: the same exhaustion, but a connection frees up within the deadline.
        lock = try await TableLock.take(stack: context.stack, database: database)
        let heldAgain = (0..<2).map { _ in Task { try await HTTP.admin(.GET, agentURL, token: token) } }
        try await waitUntil("both pooled connections wait on the lock again") {
            try await context.stack.postgres.connectionCount(applicationName: application, waitingOnLock: true) == 2
        }
        let queuedStart = ContinuousClock.now
        let queued = Task { try await HTTP.admin(.GET, agentURL, token: token) }
        let hold = Duration.milliseconds(timeoutMs / 3)
        try await Task.sleep(for: hold)  // a deliberate hold shorter than the deadline, not a wait for readiness
        try await lock.release()
        let resolved = try await queued.value
        let queuedFor = ContinuousClock.now - queuedStart
        context.expect("queued request resolved within the deadline", resolved.status, equals: 200)
        context.expect("time the queued request waited", queuedFor, in: hold...(.milliseconds(timeoutMs)), describe: format)
        for request in heldAgain { _ = try? await request.value }
    }

    public static let idleReaping = Scenario(
        name: "idle-reaping",
        requirement: requirement,
        specScenario: "Idle connections are reaped",
        summary: "After a burst opened 10 connections, idle ones close after DB_POOL_IDLE_TIMEOUT_MS until DB_POOL_MIN=2 remain."
    ) { context in
        let idleMs = 300
        let (signet, database, application) = try await startPooledSignet(
            context,
            id: "reaping",
            pool: ["DB_POOL_MAX": "10", "DB_POOL_MIN": "2", "DB_POOL_IDLE_TIMEOUT_MS": String(idleMs)]
        )
        let postgres = context.stack.postgres
        try await waitUntil("the pool opens DB_POOL_MIN connections") {
            try await postgres.connectionCount(applicationName: application) == 2
        }
        context.expect("connections at start", try await postgres.connectionCount(applicationName: application), equals: 2)

        var lock = try await TableLock.take(stack: context.stack, database: database)
        let token = context.adminToken
        let burst = (0..<10).map { _ in Task { try await HTTP.admin(.GET, "\(signet.url)/v1/agents", token: token) } }
        try await waitUntil("10 requests hold 10 connections") {
            try await postgres.connectionCount(applicationName: application, waitingOnLock: true) == 10
        }
        context.expect("connections during the burst", try await postgres.connectionCount(applicationName: application), equals: 10)
        try await lock.release()
        var statuses: [Int] = []
        for request in burst { statuses.append(try await request.value.status) }
        context.expect("burst requests answered", statuses.filter { $0 == 200 }.count, equals: 10)

        let burstEnded = ContinuousClock.now
        try await waitUntil("idle connections are closed down to DB_POOL_MIN", timeout: .seconds(10)) {
            try await postgres.connectionCount(applicationName: application) == 2
        }
        let shrinkTime = ContinuousClock.now - burstEnded
        context.expect(
            "time until the pool is back to min",
            shrinkTime,
            in: .milliseconds(idleMs)...(.milliseconds(idleMs + 2000)),
            describe: format
        )
        // Watch two more idle periods: the pool must not drop below min.
        var lowest = Int.max
        let watchUntil = ContinuousClock.now + .milliseconds(2 * idleMs)
        while ContinuousClock.now < watchUntil {
            lowest = min(lowest, try await postgres.connectionCount(applicationName: application))
            try await Task.sleep(for: .milliseconds(25))
        }
        context.expect("fewest connections over two more idle periods", lowest, equals: 2)
    }
}

extension PoolScenarios {
    /// One instance on a fresh database with the given pool variables, its connections named
    /// so `pg_stat_activity` can count them. Statements may wait a minute: the scenarios hold
    /// them behind a lock on purpose.
    /// Round 1 of pool exhaustion, on an instance with `DB_POOL_MAX=2`: two requests held inside
    /// PostgreSQL by a table lock, a third answered 503 with `Retry-After` after
    /// `DB_POOL_CONNECTION_TIMEOUT_MS`, one log line with the pool's numbers, and the server
    /// connections `connections` counts never above 2. Returns the lock (still held), the held
    /// requests and the agent URL they read.
    static func exhaust(
        _ context: ScenarioContext, signet: SignetInstance, database: String, application: String, timeoutMs: Int,
        connections: () async throws -> Int
    ) async throws -> (lock: TableLock, held: [Task<HTTP.Response, any Error>], agentURL: String) {
        let id = try await SignetClient(base: signet.url, adminToken: context.adminToken).register(prefix: "held").id
        let agentURL = "\(signet.url)/v1/agents/\(id)"
        let token = context.adminToken

        // Round 1: both connections stuck behind the lock; a third request times out.
        let lock = try await TableLock.take(stack: context.stack, database: database)
        let held = (0..<2).map { _ in Task { try await HTTP.admin(.GET, agentURL, token: token) } }
        try await waitUntil("both pooled connections wait on the lock") {
            try await context.stack.postgres.connectionCount(applicationName: application, waitingOnLock: true) == 2
        }
        let started = ContinuousClock.now
        let rejected = try await HTTP.admin(.GET, agentURL, token: token)
        let waited = ContinuousClock.now - started
        context.expect("status when the pool stays exhausted", rejected.status, equals: 503)
        context.check(
            "Retry-After on the 503",
            Int(rejected.header("Retry-After") ?? "").map { $0 >= 1 } ?? false,
            expected: "a whole number of seconds ≥ 1",
            observed: rejected.header("Retry-After") ?? "absent"
        )
        context.expect("JSON error code", rejected.json["error"] as? String ?? rejected.body, equals: "temporarily_unavailable")
        context.expect(
            "time until the 503",
            waited,
            in: .milliseconds(timeoutMs)...(.milliseconds(timeoutMs + 1500)),
            describe: format
        )
        context.expect(
            "connections PostgreSQL sees (never above DB_POOL_MAX)",
            try await connections(),
            equals: 2
        )
        let logLine = signet.logLines(containing: LogLine.poolTimeout.text).first ?? "none"
        context.check(
            "one log line with the pool's numbers",
            logLine.contains("total=2") && logLine.contains("leased=2") && logLine.contains("waiting="),
            expected: "a warning with total=2 leased=2 idle waiting",
            observed: logLine
        )
        return (lock, held, agentURL)
    }

    static func startPooledSignet(
        _ context: ScenarioContext,
        id: String,
        pool: [String: String]
    ) async throws -> (signet: SignetInstance, database: String, application: String) {
        let database = try await context.database()
        let application = "sim-\(id)-\(UUID().uuidString.prefix(6).lowercased())"
        let variables = pool.merging(["DB_STATEMENT_TIMEOUT_MS": "60000"]) { own, _ in own }
        let signet = try await context.startSignet(
            id: id,
            environment: context.environment(database: database, applicationName: application, variables)
        )
        return (signet, database, application)
    }
}

/// An `ACCESS EXCLUSIVE` lock on `agents`, held in an open transaction: every request that
/// touches agents waits inside PostgreSQL, holding its pooled connection, until `release()`.
struct TableLock {
    let connection: PostgresConnection

    static func take(stack: LocalStack, database: String) async throws -> TableLock {
        let url = stack.postgres.url(database: database, applicationName: "sim-locker")
        let connection = try await blocking {
            let connection = try PostgresConnection.connect(url, settings: [])
            try connection.query("BEGIN")
            try connection.query("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
            return connection
        }
        return TableLock(connection: connection)
    }

    mutating func release() async throws {
        let connection = connection
        try await blocking {
            try connection.query("COMMIT")
            connection.close()
        }
    }
}
