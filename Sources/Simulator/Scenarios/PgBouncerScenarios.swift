import Foundation
import Service
import Spec

extension FailoverScenarios {
    public static let pgbouncerSession = Scenario(
        name: "pgbouncer-session",
        requirement: requirement,
        specScenario: "Signet through PgBouncer in session mode serves tokens, cache invalidation and pool exhaustion as directly",
        summary: "Two instances with DATABASE_URL through PgBouncer (pool_mode = session): tokens issued and introspected, a "
            + "revocation on one instance refused by the other within \(Defaults.revocationPropagationMilliseconds) ms (LISTEN "
            + "through PgBouncer), pool exhaustion answered 503 + Retry-After at DB_POOL_CONNECTION_TIMEOUT_MS; an instance "
            + "through PgBouncer in transaction mode refuses to start, with one line."
    ) { context in
        let postgres = context.stack.postgres
        let session = try await PgBouncer.start(before: postgres, mode: .session)
        context.atTearDown { await session.stop() }
        let transaction = try await PgBouncer.start(before: postgres, mode: .transaction)
        context.atTearDown { await transaction.stop() }
        let database = try await context.database()
        let timeoutMs = 1000
        func environment(_ application: String, through bouncer: PgBouncer) -> [String: String] {
            var variables = context.environment(
                database: database, applicationName: application,
                [
                    "DB_POOL_MAX": "2", "DB_POOL_MIN": "0", "DB_POOL_CONNECTION_TIMEOUT_MS": String(timeoutMs),
                    "DB_STATEMENT_TIMEOUT_MS": "60000",
                    // One issuer for both instances, so either verifies the other's tokens.
                    "SIGNET_ISSUER": "http://signet.pgbouncer.test",
                ])
            variables["DATABASE_URL"] = bouncer.url(database: database, applicationName: application)
            return variables
        }
        let suffix = UUID().uuidString.prefix(6).lowercased()
        try await context.expectStartRefused(
            id: "transaction-mode", environment: environment("sim-bouncer-t-\(suffix)", through: transaction),
            when: "through PgBouncer in transaction mode", naming: "pool_mode = session")

        let application = "sim-bouncer-a-\(suffix)"
        let first = try await context.startSignet(id: "a", environment: environment(application, through: session))
        let second = try await context.startSignet(id: "b", environment: environment("sim-bouncer-b-\(suffix)", through: session))

        // Tokens: issued by one instance, introspected by the other.
        let agent = try await SignetClient(base: first.url, adminToken: context.adminToken).register(prefix: "bouncer", scopes: ["read"])
        let issued = try await SignetClient(base: first.url, adminToken: context.adminToken).token(agent)
        context.expect("token request through PgBouncer", issued.status, equals: 200)
        let introspected = try await HTTP.request(
            .POST, "\(second.url)/oauth/introspect",
            headers: [("Authorization", "Bearer \(context.adminToken)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: "token=\(issued.json["access_token"] as? String ?? "")")
        context.expect("the token, introspected by the other instance", introspected.json["active"] as? Bool, equals: true)

        // Cache invalidation: both listeners LISTEN through PgBouncer.
        for instance in [first, second] {
            try await waitUntil("\(instance.id) reports its credential cache current", timeout: .seconds(15)) {
                try await CacheScenarios.cacheHealth(instance) == "healthy"
            }
        }
        var delays: [Duration] = []
        for _ in 0..<10 {
            delays.append(try await CacheScenarios.revocationTrial(context, revokeOn: first, askOn: second).after ?? .seconds(2))
        }
        context.expect(
            "p90 from a revocation on a to b's refusal, through PgBouncer", delays.sorted()[8],
            in: .zero ... .milliseconds(Defaults.revocationPropagationMilliseconds), describe: format)

        // Pool exhaustion: PgBouncer keeps server connections of its own, so the pool's size is
        // read from Signet's metrics.
        let exhausted = try await PoolScenarios.exhaust(
            context, signet: first, database: database, application: application, timeoutMs: timeoutMs
        ) {
            Int(try await first.metric(#"signet_db_pool_connections{state="total"}"#) ?? -1)
        }
        var lock = exhausted.lock
        try await lock.release()
        for request in exhausted.held {
            context.expect("held request once the lock is gone", try await request.value.status, equals: 200)
        }
    }
}
