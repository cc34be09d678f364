import Foundation
import NIOConcurrencyHelpers
import Service
import Spec

extension FailoverScenarios {
    /// The per-agent budget of the cluster scenario: small, so an agent's countdown is short.
    static let clusterAgentLimit = 3

    public static let redisCluster = Scenario(
        name: "redis-cluster",
        requirement: requirement,
        specScenario: "Redis Cluster: limits exact across instances with keys on every master, and a master's failover",
        summary: "Three masters with a replica each (cluster-node-timeout 1 s); an instance with REDIS_URL naming a host beside "
            + "REDIS_CLUSTER_NODES, or a key prefix with a brace, stops at start with one line (exit 2). Two instances with "
            + "REDIS_CLUSTER_NODES and a limit of \(clusterAgentLimit) per agent: 1000 agents each send 4 requests alternating "
            + "between the instances and get 200, 200, 200, 429; their keys are on every master. Under traffic from 48 source "
            + "addresses one master is SIGKILLed: its replica is promoted, no request fails, and each instance decides in Redis "
            + "on the new slot map within 3 s of the promotion (the breaker probes every 500 ms); 200 agents registered afterwards count exactly again, some of "
            + "them on the promoted replica."
    ) { context in
        let cluster = try await RedisClusterStack.start()
        context.atTearDown { await cluster.stop() }
        let database = try await context.database()
        let prefix = "sim-cluster-\(UUID().uuidString.prefix(8).lowercased()):"
        var variables = context.environment(
            database: database, applicationName: "sim-cluster",
            [
                "REDIS_CLUSTER_NODES": cluster.seeds,
                "REDIS_KEY_PREFIX": prefix,
                "RATE_LIMIT_MAX_REQUESTS": String(clusterAgentLimit),
                "RATE_LIMIT_WINDOW_MS": "600000",
                "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "1000000",
                "RATE_LIMIT_ADMIN_MAX_REQUESTS": "1000000",
            ])
        variables["REDIS_URL"] = nil
        var conflicting = variables
        conflicting["REDIS_URL"] = cluster.masters[0].url
        try await context.expectStartRefused(
            id: "conflict", environment: conflicting, when: "with REDIS_URL naming a host beside REDIS_CLUSTER_NODES",
            naming: "REDIS_CLUSTER_NODES chooses the nodes", status: 2)
        var braced = variables
        braced["REDIS_KEY_PREFIX"] = "{signet}:"
        try await context.expectStartRefused(
            id: "braces", environment: braced, when: "with a brace in REDIS_KEY_PREFIX beside REDIS_CLUSTER_NODES",
            naming: "REDIS_KEY_PREFIX must not contain { or }", status: 2)

        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let instances = [first, second]
        let client = SignetClient(base: first.url, adminToken: context.adminToken)

        // 1000 agents, each counted down through both instances in turn.
        let agents = try await register(1000, client: client, prefix: "cluster")
        let firstRound = try await countdowns(agents, instances: instances)
        let expected = Array(repeating: 200, count: clusterAgentLimit) + [429]
        let inexact = firstRound.filter { $0 != expected }
        context.check(
            "agents whose \(clusterAgentLimit + 1) alternating requests were \(expected)", inexact.isEmpty,
            expected: "\(agents.count) of \(agents.count)",
            observed: "\(agents.count - inexact.count) of \(agents.count)" + (inexact.first.map { "; e.g. \($0)" } ?? ""))
        var before: [Int] = []
        for master in cluster.masters {
            before.append(try await RedisClusterStack.keys(on: master, prefix: prefix + "rl:{g").count)
        }
        context.check(
            "agents' keys on each master", before.allSatisfy { $0 > 0 } && before.reduce(0, +) == agents.count,
            expected: "some on each of \(cluster.masters.count), \(agents.count) in all",
            observed: "\(before.map(String.init).joined(separator: ", ")) (\(before.reduce(0, +)) in all)")

        // A master dies under traffic that touches every master.
        let victim = cluster.masters[1]
        let heir = cluster.replicas[1]
        let heirAddress = "127.0.0.1:\(heir.port)"
        let log = FailoverLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for source in 0..<48 {
                let instance = instances[source % 2]
                group.addTask {
                    while !log.stopped { await unknownClient(instance, source: "127.0.1.\(source + 1)", log: log) }
                }
            }
            defer { log.stop() }
            try await waitUntil("the traffic is answered", timeout: .seconds(15)) { log.snapshot().answers.count >= 96 }
            let crashed = ContinuousClock.now
            victim.crash()
            log.mark("master crashed")
            try await waitUntil("the replica is promoted and the cluster serves every slot", timeout: .seconds(30)) {
                guard try await heir.role() == "master" else { return false }
                let state = try await RedisClusterStack.state(of: cluster.masters[0])
                let masters = try await RedisClusterStack.masters(seenBy: cluster.masters[0])
                return state == "ok" && masters.contains(heirAddress)
            }
            let promoted = ContinuousClock.now
            var back: [String: Duration] = [:]
            try? await waitUntil("both instances decide in Redis on the new slot map", timeout: .seconds(10)) {
                for instance in instances where back[instance.id] == nil {
                    if try await onNewMap(instance) { back[instance.id] = ContinuousClock.now - promoted }
                }
                return back.count == instances.count
            }
            // Traffic goes on for a second on the new map.
            try await Task.sleep(for: .seconds(1))
            log.stop()
            try await group.waitForAll()

            let answers = log.snapshot().answers
            let failed = answers.filter { $0.status != 401 }
            context.check(
                "requests sent, and how many after the crash", answers.count > 200, expected: "more than 200",
                observed: "\(answers.count) (\(answers.filter { $0.at > crashed }.count) after the crash)")
            context.check(
                "requests answered other than 401 (unknown client)", failed.isEmpty, expected: "0",
                observed: failed.isEmpty ? "0" : "\(failed.count): " + failed.prefix(5).map(\.summary).joined(separator: "; "))
            for instance in instances {
                expectLogged(context, instance, "the fallback to memory while the master was down", LogLine.redisDown)
                context.expect(
                    "\(instance.id) decides in Redis on the new slot map, after the promotion (\(format(promoted - crashed)) "
                        + "after the crash)",
                    back[instance.id] ?? .seconds(60), in: .zero ... .seconds(3), describe: format)
                expectLogged(context, instance, "the slot map's change", LogLine.redisClusterMapChanged, naming: heirAddress)
            }
            reportSlowest(context, "answer", answers, after: crashed)
        }

        // The health report names the masters in use.
        try await expectRedisHealthy(context, first, naming: heirAddress)

        // Exact again, on the new map, some keys on the promoted replica.
        let heirBefore = try await RedisClusterStack.keys(on: heir, prefix: prefix + "rl:{g").count
        let later = try await register(200, client: client, prefix: "cluster-after")
        let laterCountdowns = try await countdowns(later, instances: instances)
        let laterInexact = laterCountdowns.filter { $0 != expected }
        context.check(
            "agents registered after the failover whose alternating requests were \(expected)", laterInexact.isEmpty,
            expected: "\(later.count) of \(later.count)",
            observed: "\(later.count - laterInexact.count) of \(later.count)" + (laterInexact.first.map { "; e.g. \($0)" } ?? ""))
        let heirAfter = try await RedisClusterStack.keys(on: heir, prefix: prefix + "rl:{g").count
        context.check(
            "their keys on the promoted replica", heirAfter > heirBefore, expected: "more than the \(heirBefore) it held",
            observed: "\(heirAfter)")
    }

    /// `count` agents, registered 16 at a time.
    static func register(_ count: Int, client: SignetClient, prefix: String) async throws -> [SignetClient.Agent] {
        try await inParallel(count) { _ in try await client.register(prefix: prefix, scopes: ["read"]) }
    }

    /// Each agent's statuses for `clusterAgentLimit + 1` introspection requests under its own
    /// credentials, alternating between the instances; 16 agents at a time.
    static func countdowns(_ agents: [SignetClient.Agent], instances: [SignetInstance]) async throws -> [[Int]] {
        try await inParallel(agents.count) { index in
            var statuses: [Int] = []
            for turn in 0...clusterAgentLimit {
                let answer = try await HTTP.request(
                    .POST, "\(instances[(index + turn) % instances.count].url)/oauth/introspect",
                    headers: [("Authorization", "Basic \(agents[index].basic)"), ("Content-Type", "application/x-www-form-urlencoded")],
                    body: "token=probe")
                statuses.append(answer.status)
            }
            return statuses
        }
    }

    /// `work(0..<count)`, 16 at a time, results in order.
    static func inParallel<Result: Sendable>(
        _ count: Int, width: Int = 16, _ work: @escaping @Sendable (Int) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: count)
            var next = 0
            while next < min(width, count) {
                let index = next
                group.addTask { (index, try await work(index)) }
                next += 1
            }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < count {
                    let index = next
                    group.addTask { (index, try await work(index)) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }

    /// A token request from `source` naming a client that does not exist: 401, counted against the
    /// source address's budget (one key per address, so the traffic touches every master).
    static func unknownClient(_ instance: SignetInstance, source: String, log: FailoverLog) async {
        await log.send {
            (
                try await HTTP.request(
                    from: source, port: instance.port, "POST", "/oauth/token",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: "grant_type=client_credentials&client_id=nobody-\(source)&client_secret=wrong"),
                nil
            )
        }
    }

    /// Whether the instance decides in Redis, on a slot map that changed since it started.
    static func onNewMap(_ instance: SignetInstance) async throws -> Bool {
        let backend = try await instance.metric(#"signet_rate_limit_backend{backend="redis"}"#)
        let changes = try await instance.metric("signet_redis_cluster_map_changes_total") ?? 0
        let masters = try await instance.metric("signet_redis_cluster_masters")
        return backend == 1 && changes >= 1 && masters == 3
    }
}
