import Foundation
import Logging
import Service
import Spec

extension FailoverScenarios {
    /// The master's name the sentinels watch.
    static let sentinelMasterName = "signet"

    public static let redisSentinelFailover = Scenario(
        name: "redis-sentinel-failover",
        requirement: requirement,
        specScenario: "The Redis master behind Sentinel fails over under token traffic, and no token request fails",
        summary: "A master, its replica and three sentinels (quorum 2, down after 1 s); two instances behind haproxy with "
            + "REDIS_SENTINELS under token requests from 6 clients: the master is SIGKILLed. No token request fails; each "
            + "instance decides in Redis again, on the promoted replica, within 2 s of the sentinels' switch; afterwards "
            + "alternating requests through both instances count down one shared budget exactly."
    ) { context in
        let master = try await RedisServer.start()
        context.atTearDown { await master.stop() }
        let replica = try await RedisServer.start(replicaOf: master)
        context.atTearDown { await replica.stop() }
        try await waitUntil("the replica is in sync with the master", timeout: .seconds(15)) {
            guard case .string(let info) = try await replica.command(["INFO", "replication"]) else { return false }
            return String(decoding: info, as: UTF8.self).contains("master_link_status:up")
        }
        var sentinels: [RedisSentinel] = []
        for _ in 0..<3 {
            let sentinel = try await RedisSentinel.start(monitoring: master, masterName: sentinelMasterName)
            context.atTearDown { await sentinel.stop() }
            sentinels.append(sentinel)
        }
        // A failover needs the replica and a quorum of sentinels that know each other.
        try await waitUntil("every sentinel knows the replica and the two other sentinels", timeout: .seconds(30)) {
            for sentinel in sentinels {
                let known = try await sentinel.known()
                if known.replicas < 1 || known.sentinels < 2 { return false }
            }
            return true
        }

        let database = try await context.database()
        var variables = context.environment(
            database: database, applicationName: "sim-sentinel",
            [
                "REDIS_SENTINELS": sentinels.map(\.address).joined(separator: ","),
                "REDIS_SENTINEL_MASTER": sentinelMasterName,
                "REDIS_KEY_PREFIX": "sim-sentinel-\(UUID().uuidString.prefix(8).lowercased()):",
                "RATE_LIMIT_MAX_REQUESTS": "1000000",
                "RATE_LIMIT_WINDOW_MS": "60000",
            ])
        variables["REDIS_URL"] = nil
        var conflicting = variables
        conflicting["REDIS_URL"] = master.url
        try await context.expectStartRefused(
            id: "conflict", environment: conflicting, when: "with REDIS_URL naming a host beside REDIS_SENTINELS",
            naming: "REDIS_SENTINELS chooses the master", status: 2)

        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let instances = [first, second]
        let balancer = try await context.startLoadBalancer(instances)
        let client = SignetClient(base: balancer.url, adminToken: context.adminToken)
        var agents: [SignetClient.Agent] = []
        for _ in 0..<6 { agents.append(try await client.register(prefix: "sentinel-token", scopes: ["read"])) }
        let oldMaster = "127.0.0.1:\(master.port)"
        let newMaster = "127.0.0.1:\(replica.port)"
        let log = FailoverLog()

        try await withThrowingTaskGroup(of: Void.self) { group in
            for agent in agents {
                group.addTask {
                    while !log.stopped { await token(client, agent: agent, log: log) }
                }
            }
            defer { log.stop() }
            try await waitUntil("both instances decide in Redis, on the first master", timeout: .seconds(15)) {
                guard log.snapshot().served.count == 2 else { return false }
                return try await allOnMaster(instances, oldMaster)
            }
            let crashed = ContinuousClock.now
            master.crash()
            log.mark("master crashed")
            try await waitUntil("the sentinels name the replica", timeout: .seconds(30)) {
                try await sentinels[0].master()?.description == newMaster
            }
            let switched = ContinuousClock.now
            var back: [String: Duration] = [:]
            try? await waitUntil("both instances decide in Redis on the new master", timeout: .seconds(10)) {
                for instance in instances where back[instance.id] == nil {
                    if try await allOnMaster([instance], newMaster) { back[instance.id] = ContinuousClock.now - switched }
                }
                return back.count == instances.count
            }
            // Traffic goes on for a second on the new master.
            try await Task.sleep(for: .seconds(1))
            log.stop()
            try await group.waitForAll()

            let answers = log.snapshot().answers
            let failed = answers.filter { !$0.succeeded }
            context.check(
                "token requests sent, and how many after the crash", answers.count > 200, expected: "more than 200",
                observed: "\(answers.count) (\(answers.filter { $0.at > crashed }.count) after the crash)")
            context.check(
                "token requests that failed", failed.isEmpty, expected: "0",
                observed: failed.isEmpty ? "0" : "\(failed.count): " + failed.prefix(5).map(\.summary).joined(separator: "; "))
            for instance in instances {
                context.expect(
                    "\(instance.id) decides in Redis on the new master, after the sentinels' switch (\(format(switched - crashed)) "
                        + "after the crash)",
                    back[instance.id] ?? .seconds(60), in: .zero ... .seconds(2), describe: format)
                expectLogged(context, instance, "the master's change", LogLine.redisMasterSwitched, naming: newMaster)
            }
            reportSlowest(context, "token answer", answers, after: crashed)
        }

        // The health report names the master in use.
        try await expectRedisHealthy(context, first, naming: newMaster)

        // One budget, counted exactly in the new master, through both instances.
        let probes = Probes(context)
        try await probes.register(balancer.url, subject: "after-failover")
        var remaining: [Int] = []
        var answeredBy: Set<String> = []
        for _ in 0..<20 {
            let answer = try await probes.probe(balancer.url, subject: "after-failover")
            answeredBy.insert(answer.header("Signet-Instance") ?? "?")
            let field = answer.header("RateLimit") ?? ""
            remaining.append(
                field.split(separator: ",").compactMap { part -> Int? in
                    let pair = part.split(separator: "=")
                    return pair.count == 2 && pair[0].trimmingCharacters(in: .whitespaces) == "remaining" ? Int(pair[1]) : nil
                }.first ?? -1)
        }
        context.expect("instances that answered the budget's requests", answeredBy, equals: Set(instances.map(\.id)))
        context.expect(
            "remaining budget after each of 20 alternating requests (one count in Redis)", remaining,
            equals: Array((1_000_000 - 20)..<1_000_000).reversed())
    }

    /// Whether each instance decides in Redis, on `master` (its `/metrics`).
    static func allOnMaster(_ instances: [SignetInstance], _ master: String) async throws -> Bool {
        for instance in instances {
            guard try await instance.metric(#"signet_rate_limit_backend{backend="redis"}"#) == 1,
                try await instance.metric(#"signet_redis_master{address="\#(master)"}"#) == 1
            else { return false }
        }
        return true
    }

    /// Checks that `instance` logged `line` once at least, in a line that names `text` if given.
    static func expectLogged(
        _ context: ScenarioContext, _ instance: SignetInstance, _ what: String, _ line: Logger.Message, naming text: String? = nil
    ) {
        let lines = instance.logLines(containing: line.text)
        context.check(
            "\(instance.id) logged \(what)", lines.contains { text.map($0.contains) ?? true },
            expected: text.map { "a line naming \($0)" } ?? "the line",
            observed: lines.first.map { String($0.prefix(240)) } ?? "none")
    }

    /// Reports the slowest answer after `instant` (a measurement, not a bound).
    static func reportSlowest(
        _ context: ScenarioContext, _ what: String, _ answers: [FailoverLog.Answer], after instant: ContinuousClock.Instant
    ) {
        let slowest = answers.filter { $0.at > instant }.map(\.took).max() ?? .zero
        context.check("slowest \(what) after the crash", true, expected: "reported", observed: format(slowest))
    }

    /// Checks that `/health/detailed` on `instance` says Redis is healthy and names `text`.
    static func expectRedisHealthy(_ context: ScenarioContext, _ instance: SignetInstance, naming text: String) async throws {
        let health = try await HTTP.request(.GET, "\(instance.opsURL)/health/detailed")
        let redis = health.json["redis"] as? [String: Any]
        context.check(
            "the health report's Redis entry",
            redis?["status"] as? String == "healthy" && (redis?["message"] as? String ?? "").contains(text),
            expected: "healthy, naming \(text)", observed: "\(redis?["status"] ?? "-"): \(redis?["message"] ?? "-")")
    }
}
