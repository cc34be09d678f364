import Foundation
import Service

/// The spec's "Detailed health endpoint reports per-service status" scenarios, and the failure
/// modes around them: real `signet` processes, real PostgreSQL and Redis, the Vault and OPA
/// fakes, and the fault proxy in front of Redis or PostgreSQL.
public enum HealthScenarios {
    static let requirement = "Detailed health endpoint reports per-service status"
    /// `HEALTH_CHECK_TIMEOUT_MS` in these scenarios: the spec's 2000 ms.
    static let checkTimeout = Duration.milliseconds(2000)
    /// What a health answer may take at most: the check bound plus 0.5 s.
    static let answerBound = checkTimeout + .milliseconds(500)

    /// A running instance with Vault and OPA fakes configured.
    struct World {
        let signet: SignetInstance
        let vault: VaultFake
        let opa: OPAFake
        var detailedURL: String { "\(signet.opsURL)/health/detailed" }
    }

    static func startWorld(_ context: ScenarioContext, id: String, _ extra: [String: String] = [:]) async throws -> World {
        let vault = try await VaultFake.start()
        context.atTearDown { await vault.stop() }
        let opa = try await OPAFake.start()
        context.atTearDown { await opa.stop() }
        let database = try await context.database()
        var variables = [
            "VAULT_ADDR": vault.url, "VAULT_TOKEN": vault.token, "OPA_URL": opa.url,
            "REDIS_KEY_PREFIX": "sim-\(id)-\(UUID().uuidString.prefix(8)):",
        ]
        variables.merge(extra) { _, new in new }
        let signet = try await context.startSignet(
            id: id, environment: context.environment(database: database, applicationName: "health-\(id)", variables))
        let world = World(signet: signet, vault: vault, opa: opa)
        // An instance answers before its change listener has confirmed its first heartbeat (its
        // credential cache is `degraded` until then, by design); the health scenarios judge the
        // dependencies, so they begin once it has (a fresh-clone CI run, three test processes at
        // once, caught the first answer before it).
        try await waitUntil("the change listener of \(id) confirms its first heartbeat", timeout: .seconds(10)) {
            let (response, _) = try await detailed(world.detailedURL)
            return (response.json["credentialCache"] as? [String: Any])?["status"] as? String == "healthy"
        }
        return world
    }

    /// `GET /health/detailed` and how long it took.
    static func detailed(_ url: String) async throws -> (HTTP.Response, Duration) {
        let started = ContinuousClock.now
        let response = try await HTTP.request(.GET, url, timeout: .seconds(10))
        return (response, ContinuousClock.now - started)
    }

    /// Polls `/health/detailed` until `dependency` has `status` (the previous round's report is
    /// shared for about 1 s), checking that every answer came within the bound. Returns the
    /// first matching answer and its time.
    static func detailed(
        _ context: ScenarioContext, _ url: String, until dependency: String, is status: String
    ) async throws -> (HTTP.Response, Duration) {
        var found: (HTTP.Response, Duration)?
        var slowest = Duration.zero
        try await waitUntil("\(dependency) reports \(status)", timeout: .seconds(15)) {
            let (response, took) = try await detailed(url)
            slowest = max(slowest, took)
            guard (response.json[dependency] as? [String: Any])?["status"] as? String == status else { return false }
            found = (response, took)
            return true
        }
        context.expect(
            "slowest /health/detailed answer until \(dependency) is \(status)", slowest, in: .zero...answerBound, describe: format)
        return found!
    }

    static func dependency(_ response: HTTP.Response, _ name: String) -> [String: Any] {
        response.json[name] as? [String: Any] ?? [:]
    }

    // MARK: Scenarios

    public static let allHealthy = Scenario(
        name: "health-all-healthy",
        requirement: requirement,
        specScenario: "All services healthy",
        summary: "Vault and OPA configured and answering: 200, database, redis, vault and opa all healthy, overall healthy."
    ) { context in
        let world = try await startWorld(context, id: "all-healthy")
        let (response, _) = try await detailed(world.detailedURL)
        context.expect("HTTP status", response.status, equals: 200)
        context.expect("overall status", response.json["status"] as? String ?? "absent", equals: "healthy")
        for name in ["database", "redis", "vault", "opa"] {
            let entry = dependency(response, name)
            context.expect("\(name).status", entry["status"] as? String ?? "absent", equals: "healthy")
            context.check(
                "\(name).latencyMs", (entry["latencyMs"] as? Int).map { $0 >= 0 } ?? false, expected: "a number ≥ 0",
                observed: "\(entry["latencyMs"] ?? "absent")")
        }
        context.check(
            "database message carries pool statistics",
            (dependency(response, "database")["message"] as? String)?.contains("leased=") ?? false,
            expected: "pool total=… leased=… idle=… waiting=…", observed: "\(dependency(response, "database")["message"] ?? "absent")")
        context.check(
            "checkedAt", response.json["checkedAt"] as? String != nil, expected: "an ISO 8601 time",
            observed: "\(response.json["checkedAt"] ?? "absent")")
        context.expect("Cache-Control", response.header("Cache-Control") ?? "absent", equals: "no-store")

        let ready = try await HTTP.request(.GET, "\(world.signet.url)/health/ready")
        context.expect("/health/ready", ready.status, equals: 200)

        // Token issuance asks OPA.
        let (clientID, secret) = try await registerAgent(context, base: world.signet.url, scopes: ["reports:read"])
        let before = world.opa.decisionCount
        let token = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("token request with OPA configured", token.status, equals: 200)
        context.expect("decisions OPA was asked for", world.opa.decisionCount - before, equals: 1)
    }

    public static let redisUnreachable = Scenario(
        name: "health-redis-unreachable",
        requirement: requirement,
        specScenario: "Redis unreachable",
        summary: "Fault proxy in front of Redis: black-holed → 503, redis unreachable, overall unhealthy within 2.5 s; "
            + "refused → the same, fast; passing again → 200."
    ) { context in
        let proxy = try await FaultProxy.start(upstreamPort: context.stack.redis.port)
        context.atTearDown { await proxy.stop() }
        let world = try await startWorld(context, id: "redis-down", ["REDIS_URL": "redis://127.0.0.1:\(proxy.port)"])
        let (healthy, _) = try await detailed(world.detailedURL)
        context.expect("before the fault", healthy.status, equals: 200)

        try await proxy.setMode(.blackhole)
        let (blackholed, took) = try await detailed(context, world.detailedURL, until: "redis", is: "unreachable")
        context.expect("black-holed: HTTP status", blackholed.status, equals: 503)
        context.expect("black-holed: overall status", blackholed.json["status"] as? String ?? "absent", equals: "unhealthy")
        context.expect("black-holed: answer time", took, in: .zero...answerBound, describe: format)
        context.check(
            "black-holed: message", dependency(blackholed, "redis")["message"] as? String != nil,
            expected: "a message", observed: "\(dependency(blackholed, "redis")["message"] ?? "absent")")
        context.expect(
            "black-holed: database still", dependency(blackholed, "database")["status"] as? String ?? "absent", equals: "healthy")

        try await proxy.setMode(.pass)
        _ = try await detailed(context, world.detailedURL, until: "redis", is: "healthy")

        try await proxy.setMode(.refuse)
        let (refused, refusedTook) = try await detailed(context, world.detailedURL, until: "redis", is: "unreachable")
        context.expect("refused: HTTP status", refused.status, equals: 503)
        context.expect("refused: overall status", refused.json["status"] as? String ?? "absent", equals: "unhealthy")
        context.expect("refused: answer time (fast)", refusedTook, in: .zero...(.milliseconds(1000)), describe: format)

        try await proxy.setMode(.pass)
        let (recovered, _) = try await detailed(context, world.detailedURL, until: "redis", is: "healthy")
        context.expect("after recovery: HTTP status", recovered.status, equals: 200)
    }

    public static let vaultDegraded = Scenario(
        name: "health-vault-degraded",
        requirement: requirement,
        specScenario: "Vault degraded",
        summary: "Vault answers after 1200 ms: 207, vault degraded with latencyMs ≥ 1200, overall degraded."
    ) { context in
        let world = try await startWorld(context, id: "vault-slow")
        world.vault.setLatency(.milliseconds(1200))
        try await expectDegraded(context, world, "vault")
    }

    public static let vaultSealed = Scenario(
        name: "vault-sealed",
        requirement: requirement,
        specScenario: "(failure mode) Vault sealed",
        summary: "A sealed Vault is unreachable with that message: /health/detailed 503; /health/ready stays 200 and "
            + "tokens keep flowing on the keys in memory (a Vault outage must not empty the load balancer)."
    ) { context in
        let world = try await startWorld(context, id: "vault-sealed")
        let (clientID, secret) = try await registerAgent(context, base: world.signet.url, scopes: ["reports:read"])
        world.vault.setSealed(true)
        let (response, _) = try await detailed(context, world.detailedURL, until: "vault", is: "unreachable")
        context.expect("HTTP status", response.status, equals: 503)
        context.expect("vault.message", dependency(response, "vault")["message"] as? String ?? "absent", equals: "Vault is sealed")
        let ready = try await HTTP.request(.GET, "\(world.signet.url)/health/ready")
        context.expect("/health/ready while sealed", ready.status, equals: 200)
        context.expect("/health/ready shows Vault", ready.json["vault"] as? String ?? "absent", equals: "unreachable")
        let token = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("token while Vault is sealed", token.status, equals: 200)
        world.vault.setSealed(false)
        let (unsealed, _) = try await detailed(context, world.detailedURL, until: "vault", is: "healthy")
        context.expect("once unsealed", unsealed.status, equals: 200)

        // An expired or revoked VAULT_TOKEN: Vault answers sys/health, but not for us.
        let accepted = world.vault.token
        world.vault.setToken("some-other-token")
        let (refused, _) = try await detailed(context, world.detailedURL, until: "vault", is: "unreachable")
        context.check(
            "a refused token is reported", (dependency(refused, "vault")["message"] as? String)?.contains("refuses VAULT_TOKEN") ?? false,
            expected: "a message naming VAULT_TOKEN", observed: "\(dependency(refused, "vault")["message"] ?? "absent")")
        world.vault.setToken(accepted)
        _ = try await detailed(context, world.detailedURL, until: "vault", is: "healthy")
    }

    public static let opaSlow = Scenario(
        name: "opa-slow",
        requirement: requirement,
        specScenario: "(failure mode) OPA slow",
        summary: "OPA answers after 1200 ms: 207, opa degraded with latencyMs ≥ 1200, overall degraded."
    ) { context in
        let world = try await startWorld(context, id: "opa-slow")
        world.opa.setLatency(.milliseconds(1200))
        try await expectDegraded(context, world, "opa")
    }

    /// `slow` answers after 1200 ms: 207, it is degraded with that latency, the others healthy,
    /// and the answer came within the bound.
    static func expectDegraded(_ context: ScenarioContext, _ world: World, _ slow: String) async throws {
        let (response, took) = try await detailed(context, world.detailedURL, until: slow, is: "degraded")
        context.expect("HTTP status", response.status, equals: 207)
        context.expect("overall status", response.json["status"] as? String ?? "absent", equals: "degraded")
        let latency = dependency(response, slow)["latencyMs"] as? Int ?? -1
        context.expect("\(slow).latencyMs", latency, in: 1200...2000, describe: { "\($0) ms" })
        context.expect("answer time", took, in: .zero...answerBound, describe: format)
        for name in ["database", "redis", "vault", "opa"] where name != slow {
            context.expect("\(name).status", dependency(response, name)["status"] as? String ?? "absent", equals: "healthy")
        }
    }

    public static let opaDown = Scenario(
        name: "opa-down",
        requirement: requirement,
        specScenario: "(failure mode) OPA down: token requests fail closed",
        summary: "OPA refusing connections, answering 500 or a malformed result: health 503, /oauth/token 503 "
            + "temporarily_unavailable and never a token, one warning per outage; back up → tokens again."
    ) { context in
        let world = try await startWorld(context, id: "opa-down")
        let (clientID, secret) = try await registerAgent(context, base: world.signet.url, scopes: ["reports:read"])
        context.expect(
            "token before the outage", try await requestToken(base: world.signet.url, clientID: clientID, secret: secret).status,
            equals: 200)

        try await world.opa.setDown(true)
        let (health, _) = try await detailed(context, world.detailedURL, until: "opa", is: "unreachable")
        context.expect("health while OPA is down", health.status, equals: 503)
        for attempt in 1...3 {
            let denied = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
            context.expect("token request \(attempt) while OPA is down: status", denied.status, equals: 503)
            context.expect(
                "token request \(attempt): error", denied.json["error"] as? String ?? denied.body, equals: "temporarily_unavailable")
            context.check(
                "token request \(attempt): no token", denied.json["access_token"] == nil, expected: "no access_token",
                observed: denied.json["access_token"] == nil ? "none" : "a token")
            context.check(
                "token request \(attempt): Retry-After", denied.header("Retry-After") != nil, expected: "present",
                observed: denied.header("Retry-After") ?? "absent")
        }
        context.expect("warnings logged for the outage", world.signet.logLines(containing: LogLine.opaDown.text).count, equals: 1)

        try await world.opa.setDown(false)
        world.opa.setFailing(true)
        let failing = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("OPA answering 500: token status", failing.status, equals: 503)
        world.opa.setFailing(false)
        world.opa.setDecision { _, _ in ["granted": "everything"] }
        let malformed = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("OPA answering without result.scopes: token status", malformed.status, equals: 503)
        world.opa.setDecision { _, _ in ["scopes": ["reports:read", "admin:everything"]] }
        let widened = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("OPA granting an unregistered scope: token status", widened.status, equals: 200)
        context.expect(
            "OPA granting an unregistered scope: scope narrowed", widened.json["scope"] as? String ?? "absent", equals: "reports:read")

        world.opa.setDecision(OPAFake.builtInPolicy)
        let recovered = try await requestToken(base: world.signet.url, clientID: clientID, secret: secret)
        context.expect("token once OPA is back", recovered.status, equals: 200)
        context.expect("recovery logged", world.signet.logLines(containing: LogLine.opaBack.text).count, equals: 1)
    }

    public static let flood = Scenario(
        name: "health-flood",
        requirement: requirement,
        specScenario: "(failure mode) a flood of health requests",
        summary: "Waves of 200 parallel /health/detailed requests for over 2 s: every one answers, and the fakes see at most "
            + "one round of checks per started second (one per second plus the round in flight), never one per request."
    ) { context in
        let world = try await startWorld(context, id: "flood")
        // Let start-up's own checks (readiness probes) finish before counting.
        let (first, _) = try await detailed(world.detailedURL)
        context.expect("first answer", first.status, equals: 200)
        let vaultBefore = world.vault.healthCheckCount
        let opaBefore = world.opa.healthCheckCount
        let url = world.detailedURL
        let started = ContinuousClock.now
        var statuses: [Int] = []
        // Whole waves of 200 parallel requests until more than 2 s have passed, so the flood spans
        // rounds that expire and must be renewed.
        while ContinuousClock.now - started < .milliseconds(2200) {
            statuses += try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 { group.addTask { try await HTTP.request(.GET, url).status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
        }
        let seconds = Int((ContinuousClock.now - started).components.seconds) + 1
        context.expect("answers with 200", statuses.count(where: { $0 == 200 }), equals: statuses.count)
        context.check(
            "requests in the flood", statuses.count >= 400, expected: "at least two waves of 200", observed: "\(statuses.count)")
        let vaultRounds = world.vault.healthCheckCount - vaultBefore
        let opaRounds = world.opa.healthCheckCount - opaBefore
        context.expect("Vault sys/health calls during the flood", vaultRounds, in: 1...(seconds + 1), describe: { "\($0)" })
        context.expect("OPA /health calls during the flood", opaRounds, in: 1...(seconds + 1), describe: { "\($0)" })
    }

    public static let postgresFrozen = Scenario(
        name: "postgres-frozen",
        requirement: requirement,
        specScenario: "(failure mode) PostgreSQL frozen",
        summary: "Fault proxy black-holes PostgreSQL (TCP open, nothing answers): readiness and /health/detailed 503 within "
            + "2.5 s, API requests 503 within their bound; after thaw everything recovers with no restart."
    ) { context in
        let proxy = try await FaultProxy.start(upstreamPort: context.stack.postgres.port)
        context.atTearDown { await proxy.stop() }
        let database = try await context.database()
        var environment = context.environment(
            database: database, applicationName: "frozen",
            [
                "DB_POOL_CONNECTION_TIMEOUT_MS": "1000", "DB_STATEMENT_TIMEOUT_MS": "1000", "DB_POOL_MIN": "2",
                "REDIS_KEY_PREFIX": "sim-frozen-\(UUID().uuidString.prefix(8)):",
            ])
        environment["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:\(proxy.port)/\(database)?application_name=frozen"
        let signet = try await context.startSignet(id: "frozen", environment: environment)
        let (_, _) = try await registerAgent(context, base: signet.url, scopes: ["reports:read"])
        let list = "\(signet.url)/v1/agents"
        context.expect("before the freeze", try await HTTP.admin(.GET, list, token: context.adminToken).status, equals: 200)

        try await proxy.setMode(.blackhole)
        // Pool wait (1 s) or one statement (1 s + 0.25 s margin), whichever applies, plus slack.
        let apiBound = Duration.milliseconds(1000 + 1250 + 500)
        let token = context.adminToken
        let timed = try await withThrowingTaskGroup(of: (Int, String?, Duration).self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let started = ContinuousClock.now
                    let response = try await HTTP.admin(.GET, list, token: token, timeout: .seconds(30))
                    return (response.status, response.header("Retry-After"), ContinuousClock.now - started)
                }
            }
            return try await group.reduce(into: [(Int, String?, Duration)]()) { $0.append($1) }
        }
        context.expect("API requests while frozen: statuses", Set(timed.map(\.0)), equals: [503])
        context.check(
            "API requests while frozen: Retry-After", timed.allSatisfy { $0.1 != nil }, expected: "on every 503",
            observed: timed.map { $0.1 ?? "absent" }.joined(separator: ","))
        context.expect("API requests while frozen: slowest answer", timed.map(\.2).max() ?? .zero, in: .zero...apiBound, describe: format)

        let (detailedResponse, _) = try await detailed(context, "\(signet.opsURL)/health/detailed", until: "database", is: "unreachable")
        context.expect("/health/detailed while frozen", detailedResponse.status, equals: 503)
        let readyStarted = ContinuousClock.now
        let ready = try await HTTP.request(.GET, "\(signet.url)/health/ready", timeout: .seconds(30))
        context.expect("/health/ready while frozen", ready.status, equals: 503)
        context.expect("/health/ready answer time", ContinuousClock.now - readyStarted, in: .zero...answerBound, describe: format)
        let live = try await HTTP.request(.GET, "\(signet.url)/health/live")
        context.expect("/health/live while frozen", live.status, equals: 200)

        try await proxy.setMode(.pass)
        let thawed = ContinuousClock.now
        try await waitUntil("readiness after the thaw", timeout: .seconds(20)) {
            try await HTTP.request(.GET, "\(signet.url)/health/ready").status == 200
        }
        try await waitUntil("the API after the thaw", timeout: .seconds(20)) {
            try await HTTP.admin(.GET, list, token: token).status == 200
        }
        context.expect("recovery after the thaw", ContinuousClock.now - thawed, in: .zero...(.seconds(20)), describe: format)
        context.check(
            "the instance kept running", signet.process.isRunning, expected: "running",
            observed: signet.process.isRunning ? "running" : "exited")
    }

    // MARK: Helpers

    /// Registers an agent; returns its client id and secret.
    static func registerAgent(_ context: ScenarioContext, base: String, scopes: [String]) async throws -> (String, String) {
        let agent = try await SignetClient(base: base, adminToken: context.adminToken).register(prefix: "health", scopes: scopes)
        return (agent.clientID, agent.secret)
    }

    static func requestToken(base: String, clientID: String, secret: String) async throws -> HTTP.Response {
        let basic = Data("\(clientID):\(secret)".utf8).base64EncodedString()
        return try await HTTP.request(
            .POST, "\(base)/oauth/token",
            headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: "grant_type=client_credentials")
    }
}
