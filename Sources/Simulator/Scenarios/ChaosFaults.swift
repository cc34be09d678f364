import Foundation

/// The fault scenarios `signet-sim chaos --allow-faults` runs against a deployed Signet whose
/// dependencies go through Toxiproxy proxies (a real Toxiproxy or `signet-sim proxy`), observing
/// only what staging offers: HTTP answers, `/health/detailed`, token requests of one test agent.
///
/// Every toxic it adds is named `signet-sim-<run id>-…` and removed when its scenario ends (and at
/// the start of the next run, when a crash left one behind: any `signet-sim-` toxic on the named
/// proxies).
public struct ChaosFaults: Sendable {
    public static let toxicPrefix = "signet-sim-"

    public let toxiproxy: ToxiproxyClient
    /// The proxy of each dependency: `redis`, `postgres`, `vault`, `opa`.
    public let proxies: [String: String]
    public let runID: String
    /// The target's `DB_POOL_CONNECTION_TIMEOUT_MS`: pool exhaustion is answered 503 past it.
    public let poolTimeout: Duration

    public init(
        toxiproxy: ToxiproxyClient, proxies: [String: String], runID: String = String(UUID().uuidString.prefix(8)).lowercased(),
        poolTimeout: Duration = .milliseconds(5000)
    ) {
        self.toxiproxy = toxiproxy
        self.proxies = proxies
        self.runID = runID
        self.poolTimeout = poolTimeout
    }

    var runPrefix: String { "\(Self.toxicPrefix)\(runID)-" }

    /// Removes what an earlier run left behind; how many toxics.
    public func removeLeftovers() async throws -> Int {
        try await toxiproxy.removeAll(named: Self.toxicPrefix, from: Array(proxies.values))
    }

    /// Removes this run's toxics (at the end, and on Ctrl-C).
    public func cleanUp() async {
        _ = try? await toxiproxy.removeAll(named: runPrefix, from: Array(proxies.values))
    }

    /// Adds `toxics` to `dependency`'s proxy, runs `body`, then removes them whatever happened.
    func with(_ dependency: String, _ toxics: [Toxic], _ body: () async throws -> Void) async throws {
        guard let proxy = proxies[dependency] else { return }
        let named = toxics.map { toxic in
            var named = toxic
            named.name = runPrefix + dependency + "-" + toxic.name
            return named
        }
        for toxic in named { try await toxiproxy.add(toxic, to: proxy) }
        do {
            try await body()
        } catch {
            for toxic in named { try? await toxiproxy.remove(toxic.name, from: proxy) }
            throw error
        }
        for toxic in named { try await toxiproxy.remove(toxic.name, from: proxy) }
    }

    static let blackhole = [Toxic(name: "blackhole-up", kind: .timeout, stream: .upstream), Toxic(name: "blackhole-down", kind: .timeout)]
    static let refused = [Toxic(name: "refused", kind: .resetPeer, stream: .upstream)]

    /// The scenarios the named proxies allow, in order: Redis refused and black-holed, Vault slow and
    /// down, OPA slow and down, PostgreSQL black-holed, the pool exhausted by a slow PostgreSQL.
    func run(base: String, operations: String, agent: SignetClient.Agent, adminToken: String, record: Chaos.Record) async throws {
        let client = SignetClient(base: base, adminToken: adminToken)
        /// `count` token requests of the test agent: their statuses and the slowest answer.
        func tokens(_ count: Int = 5) async throws -> (statuses: [Int], slowest: Duration) {
            var statuses: [Int] = []
            var slowest = Duration.zero
            for _ in 0..<count {
                let started = ContinuousClock.now
                statuses.append(try await client.token(agent).status)
                slowest = max(slowest, ContinuousClock.now - started)
            }
            return (statuses, slowest)
        }
        /// Polls `/health/detailed` until `dependency` is `status`; how long it took, nil when it never was.
        func health(_ dependency: String, is status: String, within bound: Duration) async throws -> Duration? {
            let started = ContinuousClock.now
            while ContinuousClock.now - started < bound {
                let answer = try await HTTP.request(.GET, "\(operations)/health/detailed", timeout: .seconds(5))
                if (answer.json[dependency] as? [String: Any])?["status"] as? String == status { return ContinuousClock.now - started }
                try await Task.sleep(for: .milliseconds(200))
            }
            return nil
        }
        func recordHealth(_ name: String, _ took: Duration?, bound: Duration) {
            record(name, took != nil, "within \(format(bound))", took.map(format) ?? "not within \(format(bound))")
        }

        for (fault, toxics) in [("refused", Self.refused), ("black-holed", Self.blackhole)] where proxies["redis"] != nil {
            try await with("redis", toxics) {
                let (statuses, slowest) = try await tokens()
                record(
                    "Redis \(fault): tokens keep flowing (limiter in memory)", statuses.allSatisfy { $0 == 200 }, "5 × 200", "\(statuses)")
                record("Redis \(fault): slowest token answer", slowest < .seconds(2), "under 2 s", format(slowest))
                recordHealth(
                    "Redis \(fault): health says unreachable", try await health("redis", is: "unreachable", within: .seconds(10)),
                    bound: .seconds(10))
            }
            recordHealth(
                "Redis \(fault): health recovers", try await health("redis", is: "healthy", within: .seconds(15)), bound: .seconds(15))
        }
        if proxies["vault"] != nil {
            try await with("vault", [Toxic(name: "slow", kind: .latency, attributes: ["latency": 1500])]) {
                recordHealth(
                    "Vault slow: health says degraded", try await health("vault", is: "degraded", within: .seconds(10)), bound: .seconds(10)
                )
            }
            try await with("vault", Self.blackhole) {
                let (statuses, _) = try await tokens(3)
                record("Vault down: tokens keep flowing", statuses.allSatisfy { $0 == 200 }, "3 × 200", "\(statuses)")
                recordHealth(
                    "Vault down: health says unreachable", try await health("vault", is: "unreachable", within: .seconds(10)),
                    bound: .seconds(10))
            }
            recordHealth("Vault: health recovers", try await health("vault", is: "healthy", within: .seconds(15)), bound: .seconds(15))
        }
        if proxies["opa"] != nil {
            // Past OPA_TIMEOUT_MS (500 ms by default): the decision is late, so the request fails closed.
            try await with("opa", [Toxic(name: "slow", kind: .latency, attributes: ["latency": 1500])]) {
                let started = ContinuousClock.now
                let response = try await client.token(agent)
                let took = ContinuousClock.now - started
                record(
                    "OPA slow: token requests fail closed", response.status == 503 && response.header("Retry-After") != nil,
                    "503 with Retry-After", "\(response.status) \(response.header("Retry-After") ?? "no Retry-After")")
                record(
                    "OPA slow: answered at OPA's deadline, not the proxy's delay", took < .milliseconds(1400), "under 1.4 s", format(took))
            }
            try await with("opa", Self.refused) {
                let response = try await client.token(agent)
                record(
                    "OPA down: token requests fail closed", response.status == 503 && response.header("Retry-After") != nil,
                    "503 with Retry-After", "\(response.status) \(response.header("Retry-After") ?? "no Retry-After")")
            }
            var recovered = false
            let started = ContinuousClock.now
            while !recovered, ContinuousClock.now - started < .seconds(10) {
                recovered = try await client.token(agent).status == 200
                if !recovered { try await Task.sleep(for: .milliseconds(200)) }
            }
            record("OPA back: tokens again", recovered, "200 within 10 s", recovered ? "200" : "not within 10 s")
        }
        if proxies["postgres"] != nil {
            try await with("postgres", Self.blackhole) {
                let started = ContinuousClock.now
                let read = try await HTTP.admin(.GET, "\(base)/v1/agents/\(agent.id)", token: adminToken, timeout: .seconds(15))
                let took = ContinuousClock.now - started
                record(
                    "PostgreSQL black-holed: a read is 503 with Retry-After", read.status == 503 && read.header("Retry-After") != nil,
                    "503 with Retry-After", "\(read.status) \(read.header("Retry-After") ?? "no Retry-After")")
                record("PostgreSQL black-holed: answered within its bound", took < .seconds(6), "under 6 s", format(took))
                let live = try await HTTP.request(.GET, "\(base)/health/live", timeout: .seconds(5))
                record("PostgreSQL black-holed: liveness", live.status == 200, "200", "\(live.status)")
            }
            var recovered: Duration?
            let started = ContinuousClock.now
            while recovered == nil, ContinuousClock.now - started < .seconds(20) {
                let read = try await HTTP.admin(.GET, "\(base)/v1/agents/\(agent.id)", token: adminToken, timeout: .seconds(10))
                if read.status == 200 { recovered = ContinuousClock.now - started } else { try await Task.sleep(for: .milliseconds(200)) }
            }
            record(
                "PostgreSQL back: reads recover without a restart", recovered != nil, "200 within 20 s",
                recovered.map(format) ?? "not within 20 s")
            try await poolExhaustion(base: base, operations: operations, agent: agent, adminToken: adminToken, record: record)
        }
    }

    /// A slow PostgreSQL (each answer held 60 % of the pool's timeout) under four times the pool's
    /// size in concurrent admin reads: the pool runs out, and the requests that waited past
    /// `DB_POOL_CONNECTION_TIMEOUT_MS` are answered 503 with `Retry-After`, no sooner than it and
    /// within a statement's deadline after it; the rest 200.
    func poolExhaustion(base: String, operations: String, agent: SignetClient.Agent, adminToken: String, record: Chaos.Record) async throws
    {
        // The documented default when the target does not say.
        let poolMax = await Self.poolMax(operations: operations) ?? 20
        let timeoutMs = Int(poolTimeout.components.seconds * 1000 + poolTimeout.components.attoseconds / 1_000_000_000_000_000)
        let concurrent = poolMax * 4
        var answers: [(status: Int, retryAfter: String?, took: Duration)] = []
        try await with("postgres", [Toxic(name: "slow", kind: .latency, attributes: ["latency": timeoutMs * 6 / 10])]) {
            answers = try await withThrowingTaskGroup(of: (Int, String?, Duration).self) { group in
                for _ in 0..<concurrent {
                    group.addTask {
                        let started = ContinuousClock.now
                        let read = try await HTTP.admin(.GET, "\(base)/v1/agents/\(agent.id)", token: adminToken, timeout: .seconds(30))
                        return (read.status, read.header("Retry-After"), ContinuousClock.now - started)
                    }
                }
                var all: [(status: Int, retryAfter: String?, took: Duration)] = []
                for try await answer in group { all.append(answer) }
                return all
            }
        }
        let refused = answers.filter { $0.status == 503 }
        let statuses = Dictionary(grouping: answers, by: \.status).mapValues(\.count).sorted { $0.key < $1.key }
        let observed = statuses.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
        record(
            "pool exhausted: \(concurrent) concurrent reads (pool \(poolMax)), some 503 with Retry-After, the rest 200",
            !refused.isEmpty && refused.allSatisfy { $0.retryAfter != nil } && answers.allSatisfy { [200, 503].contains($0.status) },
            "200s and 503s with Retry-After", observed)
        let fastest = refused.map(\.took).min() ?? .zero
        let slowest = refused.map(\.took).max() ?? .zero
        record(
            "pool exhausted: a 503 comes past DB_POOL_CONNECTION_TIMEOUT_MS (\(timeoutMs) ms)", !refused.isEmpty && fastest >= poolTimeout,
            "at least \(format(poolTimeout))", refused.isEmpty ? "no 503" : "\(format(fastest)) – \(format(slowest))")
        record(
            "pool exhausted: and within the timeout plus a statement's deadline",
            !refused.isEmpty && slowest < poolTimeout * 2 + .seconds(1),
            "under \(format(poolTimeout * 2 + .seconds(1)))", refused.isEmpty ? "no 503" : format(slowest))
    }

    /// The target's `DB_POOL_MAX`, read from `signet_db_pool_max` on the operations listener's
    /// `/metrics`; nil when it is not served there.
    static func poolMax(operations: String) async -> Int? {
        guard let scrape = try? await HTTP.request(.GET, "\(operations)/metrics", timeout: .seconds(5)), scrape.status == 200 else {
            return nil
        }
        for line in scrape.body.split(separator: "\n") where line.hasPrefix("signet_db_pool_max ") {
            return Double(line.split(separator: " ").last ?? "").map { Int($0) }
        }
        return nil
    }
}
