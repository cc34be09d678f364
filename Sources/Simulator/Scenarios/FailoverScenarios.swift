import Foundation
import NIOConcurrencyHelpers
import Service
import Spec

/// Past one machine (issue 28): a shared store fails over, and Signet follows it without losing
/// what it acknowledged.
public enum FailoverScenarios {
    static let requirement = "Past one machine: failover"

    /// The standby's name in the primary's `synchronous_standby_names`.
    static let standbyName = "standby1"

    public static let postgresFailover = Scenario(
        name: "postgres-failover",
        requirement: requirement,
        specScenario: "A PostgreSQL primary fails over to its synchronous standby under traffic, and nothing acknowledged is lost",
        summary: "A primary and a synchronous standby (pg_basebackup, synchronous_standby_names), two instances behind haproxy "
            + "with a two-host DATABASE_URL (target_session_attrs=read-write), under registrations, rotations, token requests "
            + "and token revocations from 8 clients: every process of the primary is SIGKILLed and the standby promoted 0.5 s "
            + "later. Every failed request is a 503 with Retry-After; full service within 5 s of the promotion; every "
            + "acknowledged registration, rotation and revocation is read back; a revocation after the failover reaches the "
            + "other instance within \(Defaults.revocationPropagationMilliseconds) ms (p95 of 20)."
    ) { context in
        let primary = try await PostgresServer.start(settings: ["synchronous_commit": "on", "synchronous_standby_names": standbyName])
        context.atTearDown { await primary.stop() }
        let standby = try await PostgresServer.startStandby(of: primary, name: standbyName)
        context.atTearDown { await standby.stop() }
        try await waitUntil("the standby replicates synchronously", timeout: .seconds(20)) {
            let rows = try await primary.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", [standbyName])
            return rows.first?["sync_state"] == "sync"
        }
        let database = try await primary.createDatabase(prefix: "failover")
        var variables = context.environment(database: database, applicationName: "sim-failover", CacheScenarios.unlimited())
        variables["DATABASE_URL"] =
            "postgresql://postgres@127.0.0.1:\(primary.port),127.0.0.1:\(standby.port)/\(database)"
            + "?target_session_attrs=read-write&application_name=sim-failover"
        // Migrations never run on a standby: an instance given only the standby stops at start.
        try await waitUntil("the standby has replayed the new database", timeout: .seconds(10)) {
            try await !standby.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]).isEmpty
        }
        var standbyOnly = variables
        standbyOnly["DATABASE_URL"] = standby.url(database: database)
        try await context.expectStartRefused(
            id: "on-standby", environment: standbyOnly, when: "on the standby alone", naming: "reached a standby")
        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let balancer = try await context.startLoadBalancer([first, second])
        let client = SignetClient(base: balancer.url, adminToken: context.adminToken)
        var agents: (token: [SignetClient.Agent], rotated: [SignetClient.Agent]) = ([], [])
        for _ in 0..<2 {
            agents.token.append(try await client.register(prefix: "failover-token", scopes: ["read"]))
            agents.rotated.append(try await client.register(prefix: "failover-rotated", scopes: ["read"]))
        }
        let (tokenAgents, rotatedAgents) = agents
        let log = FailoverLog()

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var turn = 0
                    while !log.stopped {
                        turn += 1
                        switch worker % 4 {
                        case 0: await register(client, log: log, turn: turn)
                        case 1: await token(client, agent: tokenAgents[worker / 4], log: log)
                        case 2: await rotate(client, agent: rotatedAgents[worker / 4], log: log)
                        default: await revoke(client, agent: tokenAgents[worker / 4], log: log)
                        }
                    }
                }
            }
            defer { log.stop() }
            try await waitUntil("both instances serve the traffic", timeout: .seconds(15)) {
                let now = log.snapshot()
                return now.served.isSuperset(of: [first.id, second.id]) && now.answers.count > 100
            }
            let crashed = ContinuousClock.now
            primary.crash()
            log.mark("primary crashed")
            let primaryURL = primary.url
            let refused = try await blocking {
                (try? PostgresConnection.connect(primaryURL, settings: [("connect_timeout", "2")])) == nil
            }
            context.check(
                "the crashed primary refuses connections", refused, expected: "refused", observed: refused ? "refused" : "accepted")
            try await Task.sleep(for: .milliseconds(500))
            try await standby.promote()
            let promoted = ContinuousClock.now
            log.mark("standby promoted")
            // Traffic goes on until 3 s pass without a failure, 10 s after the promotion at most.
            try? await waitUntil("3 s without a failed request after the promotion", timeout: .seconds(10)) {
                let last = log.snapshot().answers.last { !$0.succeeded }?.at ?? crashed
                return ContinuousClock.now - max(last, promoted) >= .seconds(3)
            }
            log.stop()
            try await group.waitForAll()
            report(context, log: log.snapshot(), crashed: crashed, promoted: promoted)
        }

        // Read back everything acknowledged, through the balancer, from the promoted standby.
        let acknowledged = log.snapshot()
        var missing: [String] = []
        for agent in acknowledged.registered {
            let read = try await HTTP.admin(.GET, "\(balancer.url)/v1/agents/\(agent)", token: context.adminToken)
            if read.status != 200 { missing.append("agent \(agent): \(read.status)") }
        }
        // One list per rotated agent (each holds every credential its rotations made).
        for (agent, rotations) in Dictionary(grouping: acknowledged.rotated, by: \.0) {
            let listed = try await HTTP.admin(.GET, "\(balancer.url)/v1/agents/\(agent)/credentials", token: context.adminToken)
            let ids = Set(((listed.json["items"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String })
            for (_, credential) in rotations where !ids.contains(credential) {
                missing.append("credential \(credential): \(listed.status)")
            }
        }
        for token in acknowledged.revoked {
            let answer = try await HTTP.request(
                .POST, "\(balancer.url)/oauth/introspect",
                headers: [("Authorization", "Bearer \(context.adminToken)"), ("Content-Type", "application/x-www-form-urlencoded")],
                body: "token=\(token)")
            if answer.status != 200 || answer.json["active"] as? Bool != false {
                missing.append("revoked token: introspection \(answer.status) \(answer.body.prefix(80))")
            }
        }
        // And straight from the promoted standby, not through Signet.
        let stored = try await standby.query(
            "SELECT count(*) AS n FROM agents WHERE id = ANY($1::uuid[])", ["{" + acknowledged.registered.joined(separator: ",") + "}"],
            database: database)
        if Int(stored.first?["n"] ?? "") != acknowledged.registered.count {
            missing.append("agents in the promoted standby: \(stored.first?["n"] ?? "?") of \(acknowledged.registered.count)")
        }
        context.check(
            "acknowledged writes read back after the failover", missing.isEmpty,
            expected: "all: \(acknowledged.registered.count) registrations, \(acknowledged.rotated.count) rotations, "
                + "\(acknowledged.revoked.count) revocations",
            observed: missing.isEmpty ? "all" : "\(missing.count) missing: " + missing.prefix(5).joined(separator: "; "))

        // The change listeners listen on the new primary: a revocation reaches the other instance.
        for instance in [first, second] {
            try await waitUntil("\(instance.id) reports its credential cache current", timeout: .seconds(15)) {
                try await CacheScenarios.cacheHealth(instance) == "healthy"
            }
        }
        var delays: [Duration] = []
        for _ in 0..<20 {
            delays.append(try await CacheScenarios.revocationTrial(context, revokeOn: first, askOn: second).after ?? .seconds(2))
        }
        let sorted = delays.sorted()
        context.expect(
            "p95 from a revocation on a to b's refusal, after the failover", sorted[18],
            in: .zero ... .milliseconds(Defaults.revocationPropagationMilliseconds), describe: format)
    }

    /// The checks on the traffic itself, and what it measured.
    static func report(
        _ context: ScenarioContext, log: FailoverLog.Snapshot, crashed: ContinuousClock.Instant, promoted: ContinuousClock.Instant
    ) {
        let failed = log.answers.filter { !$0.succeeded }
        context.check(
            "requests sent", log.answers.count > 200, expected: "more than 200", observed: "\(log.answers.count)")
        let wrong = failed.filter { $0.status != 503 || !$0.retryAfter }
        context.check(
            "failed requests that are not 503 with Retry-After", wrong.isEmpty, expected: "0",
            observed: wrong.isEmpty ? "0" : "\(wrong.count): " + wrong.prefix(5).map(\.summary).joined(separator: "; "))
        let byStatus = Dictionary(grouping: failed, by: \.status).mapValues(\.count).sorted { $0.key < $1.key }
        context.check(
            "failed requests, by status", true, expected: "reported",
            observed: failed.isEmpty
                ? "none"
                : byStatus.map { "\($0.key == 0 ? "no answer" : String($0.key)): \($0.value)" }
                    .joined(separator: ", ") + " of \(log.answers.count)")
        let lastFailure = failed.last?.at
        let afterPromotion = lastFailure.map { $0 > promoted ? $0 - promoted : .zero } ?? .zero
        context.expect(
            "last failed request after the promotion", afterPromotion, in: .zero ... .seconds(5), describe: format)
        let firstWrite = log.answers.first { $0.wrote && $0.at > promoted }.map { $0.at - promoted }
        context.expect(
            "first acknowledged write after the promotion", firstWrite ?? .seconds(60), in: .zero ... .seconds(5), describe: format)
        let around = log.answers.filter { $0.at > crashed }
        let slowest = around.map(\.took).max() ?? .zero
        context.check(
            "answers after the crash: slowest, and how many took over 1 s", true, expected: "reported",
            observed: "\(format(slowest)); \(around.filter { $0.took > .seconds(1) }.count) of \(around.count) "
                + "(crash to promotion \(format(promoted - crashed)))")
        if let firstFailure = failed.first?.at,
            let recovered = log.answers.first(where: { $0.succeeded && $0.at > (lastFailure ?? firstFailure) })?.at
        {
            context.check(
                "gap from the first failed to the first good answer after the last failure", true, expected: "reported",
                observed: "\(format(recovered - firstFailure)) (crash at +0, promotion at +\(format(promoted - crashed)), "
                    + "first failure at +\(format(firstFailure - crashed)))")
        }
    }

    static func register(_ client: SignetClient, log: FailoverLog, turn: Int) async {
        await log.send { () -> (HTTP.Response, FailoverLog.Write?) in
            let (response, agent) = try await client.registration(name: "failover-\(UUID().uuidString.prefix(8).lowercased())-\(turn)")
            return (response, agent.map { .registered($0.id) })
        }
    }

    static func token(_ client: SignetClient, agent: SignetClient.Agent, log: FailoverLog) async {
        await log.send { (try await client.token(agent), nil) }
    }

    static func rotate(_ client: SignetClient, agent: SignetClient.Agent, log: FailoverLog) async {
        await log.send { () -> (HTTP.Response, FailoverLog.Write?) in
            let response = try await HTTP.admin(
                .POST, "\(client.base)/v1/agents/\(agent.id)/credentials/rotate", token: client.adminToken,
                body: #"{"graceSeconds": 3600}"#)
            return (response, (response.json["id"] as? String).map { .rotated(agent: agent.id, credential: $0) })
        }
    }

    static func revoke(_ client: SignetClient, agent: SignetClient.Agent, log: FailoverLog) async {
        await log.send { () -> (HTTP.Response, FailoverLog.Write?) in
            let issued = try await client.token(agent)
            guard issued.status == 200, let token = issued.json["access_token"] as? String else { return (issued, nil) }
            let response = try await HTTP.request(
                .POST, "\(client.base)/oauth/revoke",
                headers: [("Authorization", "Basic \(agent.basic)"), ("Content-Type", "application/x-www-form-urlencoded")],
                body: "token=\(token)")
            return (response, .revoked(token))
        }
    }
}

/// Every answer of a failover run, in order, and the writes Signet acknowledged.
final class FailoverLog: Sendable {
    enum Write: Sendable {
        case registered(String)
        case rotated(agent: String, credential: String)
        case revoked(String)
    }

    struct Answer: Sendable {
        let at: ContinuousClock.Instant
        /// 0: no answer at all.
        let status: Int
        let retryAfter: Bool
        let succeeded: Bool
        /// A write (registration, rotation, revocation) was acknowledged.
        let wrote: Bool
        let took: Duration
        let summary: String
    }

    struct Snapshot: Sendable {
        var answers: [Answer] = []
        var served: Set<String> = []
        var registered: [String] = []
        var rotated: [(String, String)] = []
        var revoked: [String] = []
        var marks: [(String, ContinuousClock.Instant)] = []
    }

    private let state = NIOLockedValueBox(Snapshot())
    private let done = NIOLockedValueBox(false)

    var stopped: Bool { done.withLockedValue { $0 } }
    func stop() { done.withLockedValue { $0 = true } }
    func snapshot() -> Snapshot { state.withLockedValue { $0 } }
    func mark(_ event: String) { state.withLockedValue { $0.marks.append((event, ContinuousClock.now)) } }

    /// Sends one request; a 2xx is a success (and its write, if any, acknowledged).
    func send(_ request: () async throws -> (HTTP.Response, Write?)) async {
        let answer: Answer
        var write: Write?
        var instance: String?
        let started = ContinuousClock.now
        do {
            let (response, acknowledged) = try await request()
            let succeeded = (200..<300).contains(response.status)
            instance = response.header("Signet-Instance")
            write = succeeded ? acknowledged : nil
            let now = ContinuousClock.now
            answer = Answer(
                at: now, status: response.status, retryAfter: response.header("Retry-After") != nil, succeeded: succeeded,
                wrote: write != nil, took: now - started,
                summary: "\(response.status) from \(instance ?? "?"): \(response.body.prefix(120))")
        } catch {
            let now = ContinuousClock.now
            answer = Answer(
                at: now, status: 0, retryAfter: false, succeeded: false, wrote: false, took: now - started, summary: "no answer: \(error)")
        }
        state.withLockedValue { state in
            state.answers.append(answer)
            if answer.succeeded, let instance { state.served.insert(instance) }
            switch write {
            case .registered(let id): state.registered.append(id)
            case .rotated(let agent, let credential): state.rotated.append((agent, credential))
            case .revoked(let token): state.revoked.append(token)
            case nil: break
            }
        }
    }
}
