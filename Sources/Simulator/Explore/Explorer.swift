import Foundation
import NIOConcurrencyHelpers

/// What `signet-sim explore` runs: a seed, how long, how many instances, and what they are given.
public struct ExploreOptions: Sendable {
    public var seed: UInt64
    public var duration: Duration
    public var instances: Int
    /// Signet variables on top of explore's own (`--env`).
    public var env: [String: String]
    /// The kinds the schedule is drawn from; nil: every kind the stack allows.
    public var kinds: [FaultKind]?

    public init(seed: UInt64, duration: Duration, instances: Int, env: [String: String] = [:], kinds: [FaultKind]? = nil) {
        self.seed = seed
        self.duration = duration
        self.instances = instances
        self.env = env
        self.kinds = kinds
    }

    /// The kinds a schedule is drawn from: restarting an instance needs a second one to serve meanwhile.
    public var drawnKinds: [FaultKind] {
        (kinds ?? FaultKind.allCases).filter { $0 != .instanceRestart || instances > 1 }
    }

    public var schedule: FaultSchedule {
        FaultSchedule.draw(seed: seed, duration: duration, kinds: drawnKinds, instances: instances)
    }

    /// The command that runs this again.
    public var replay: String {
        var words = [
            "signet-sim", "explore", "--seed", String(seed), "--duration", "\(duration.components.seconds)s", "--instances",
            String(instances),
        ]
        for (name, value) in env.sorted(by: { $0.key < $1.key }) { words += ["--env", "\(name)=\(value)"] }
        if let kinds { words += ["--faults", kinds.map(\.rawValue).joined(separator: ",")] }
        return words.joined(separator: " ")
    }

    /// Explore's own settings, under `env`: a small limit and window, so bursts cross it often;
    /// short dependency deadlines, so a fault's answers come soon; a drain, so a restart fails nothing.
    public static let defaults: [String: String] = [
        "RATE_LIMIT_MAX_REQUESTS": "40", "RATE_LIMIT_WINDOW_MS": "5000",
        "RATE_LIMIT_ADMIN_MAX_REQUESTS": "100000", "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "100000",
        "DB_POOL_CONNECTION_TIMEOUT_MS": "2000", "DB_STATEMENT_TIMEOUT_MS": "2000", "SHUTDOWN_DRAIN_MS": "2000",
    ]
}

/// The outcome of an `explore` run: its history and each invariant's verdict.
public struct ExploreResult: Sendable {
    public let events: [HistoryEvent]
    public let invariants: [InvariantReport]
    public var passed: Bool { invariants.allSatisfy(\.passed) }
}

/// `signet-sim explore`: a local stack (PostgreSQL, Redis, Vault and OPA behind `signet-sim
/// proxy`, N instances behind haproxy), a workload of agents, and a fault schedule drawn from the
/// seed, applied through the Toxiproxy API (and, for the restarts, to the processes). Every request,
/// fault and health reading goes into the history; the invariants are checked on it afterwards.
public enum Explorer {
    static let adminToken = "sim-admin-token-0123456789abcdefghijkl"

    public static func run(_ options: ExploreOptions, say: @escaping @Sendable (String) -> Void) async throws -> ExploreResult {
        let schedule = options.schedule
        say("seed \(options.seed): \(schedule.faults.count) faults over \(options.duration.components.seconds) s")
        for fault in schedule.faults { say("  " + fault.rendered) }

        // A commit is acknowledged only once its WAL is written: the throwaway default
        // (synchronous_commit=off) loses acknowledged writes when PostgreSQL crash-restarts, as the
        // first runs of postgres-restart showed (a rotation answered 201 was gone afterwards).
        let stack = try await LocalStack.start(postgresSettings: ["synchronous_commit": "on"])
        let dependencies = try await ProxiedDependencies.start(stack: stack, databasePrefix: "explore")
        var variables = dependencies.environment(
            applicationName: "explore", adminToken: adminToken,
            ExploreOptions.defaults.merging(["REDIS_KEY_PREFIX": "explore-\(options.seed):"]) { _, new in new })
        let balancerPort = options.instances > 1 ? try freePort() : nil
        if let balancerPort {
            variables["SIGNET_ISSUER"] = "http://127.0.0.1:\(balancerPort)"
            variables["TRUSTED_PROXIES"] = LoadBalancer.trustedProxies
        }
        variables.merge(options.env) { _, given in given }
        var instances: [SignetInstance] = []
        var balancer: LoadBalancer?
        func stopAll() async {
            await balancer?.stop()
            for instance in instances { await instance.stop() }
            await dependencies.stop()
            await stack.stop()
        }
        do {
            for index in 0..<options.instances {
                instances.append(try await SignetInstance.start(id: "explore-\(index)", environment: variables))
            }
            if let balancerPort {
                balancer = try await LoadBalancer.start(backendPorts: instances.map(\.port), port: balancerPort)
            }
        } catch {
            await stopAll()
            throw error
        }
        let base = balancer?.url ?? instances[0].url
        let limit = Int(variables["RATE_LIMIT_MAX_REQUESTS"] ?? "") ?? 100
        let window = Int(variables["RATE_LIMIT_WINDOW_MS"] ?? "") ?? 60_000
        let pool = Int(variables["DB_POOL_CONNECTION_TIMEOUT_MS"] ?? "") ?? 5000
        let statement = Int(variables["DB_STATEMENT_TIMEOUT_MS"] ?? "") ?? 5000
        var run = HistoryEvent(type: "run")
        run.seed = options.seed
        run.durationMs = Int(options.duration.components.seconds) * 1000
        run.instances = options.instances
        run.limit = limit
        run.windowMs = window
        // Waiting for a connection, then one statement past its deadline, and a second for the rest.
        run.answerBoundMs = pool + statement + 250 + 1000
        run.env = options.env
        run.replay = options.replay

        let world = World(
            base: base, started: .now, answerBound: .milliseconds(run.answerBoundMs!), limit: limit,
            faults: ToxiproxyClient(base: dependencies.toxiproxy.url), runID: "explore-\(options.seed)")
        world.append(run)
        do {
            try await world.prepareAgents(count: 6)
            let instancesBox = NIOLockedValueBox(instances)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let end = ContinuousClock.now + options.duration
                var random = SeededGenerator(seed: options.seed)
                for worker in 0..<4 {
                    let generator = random.split(worker)
                    group.addTask { await world.work(until: end, random: generator) }
                }
                _ = random.next()
                group.addTask { await world.watchHealth(until: end + .seconds(4), instances: instancesBox) }
                group.addTask {
                    try await world.apply(schedule, stack: dependencies, instances: instancesBox)
                }
                try await group.waitForAll()
            }
            instances = instancesBox.withLockedValue { $0 }
            await world.finishProbes()
            _ = try? await dependencies.toxiproxy.reset()
            try await world.verify()
        } catch {
            await stopAll()
            throw error
        }
        await stopAll()
        let events = world.events
        return ExploreResult(events: events, invariants: Invariants.check(events))
    }
}

/// The run's shared state: the agents, the history, the probes due.
final class World: Sendable {
    let base: String
    let started: ContinuousClock.Instant
    let answerBound: Duration
    let limit: Int
    let faults: ToxiproxyClient
    let runID: String
    let state = NIOLockedValueBox(State())

    struct Agent: Sendable {
        var id: String
        var clientID: String
        var secret: String
        var credential: String
        /// The credential before the last rotation, still in its grace period, with its secret.
        var previous: (credential: String, secret: String)?
        /// Tokens it holds: (jti, token).
        var tokens: [(jti: String, token: String)] = []
    }

    struct State {
        var events: [HistoryEvent] = []
        var agents: [Agent] = []
        var probes: [Task<Void, Never>] = []
        /// Agents a worker is changing the credentials of.
        var busy: Set<Int> = []
    }

    init(base: String, started: ContinuousClock.Instant, answerBound: Duration, limit: Int, faults: ToxiproxyClient, runID: String) {
        self.base = base
        self.started = started
        self.answerBound = answerBound
        self.limit = limit
        self.faults = faults
        self.runID = runID
    }

    var events: [HistoryEvent] { state.withLockedValue { $0.events } }

    func append(_ event: HistoryEvent) { state.withLockedValue { $0.events.append(event) } }

    /// Milliseconds since the run started.
    func now() -> Int {
        let elapsed = ContinuousClock.now - started
        return Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Sends one request and records it: when it was sent and answered, who answered, its status.
    @discardableResult
    func record(
        _ op: String, agent: String? = nil, target: String? = nil, credential: String? = nil, jti: String? = nil,
        _ send: () async throws -> HTTP.Response, annotate: (HTTP.Response, inout HistoryEvent) -> Void = { _, _ in }
    ) async -> HTTP.Response? {
        let sent = now()
        var event = HistoryEvent.request(op, sent: sent, answered: sent, status: nil)
        (event.agent, event.target, event.credential, event.jti) = (agent, target, credential, jti)
        var response: HTTP.Response?
        do {
            let answer = try await send()
            response = answer
            event.status = answer.status
            event.instance = answer.header("Signet-Instance")
            event.retryAfter = answer.header("Retry-After")
            event.policy = answer.header("RateLimit-Policy")
            if op == "introspect", answer.status == 200 { event.active = answer.json["active"] as? Bool }
            if Invariants.tokenOperations.contains(op), answer.status == 200, let token = answer.json["access_token"] as? String {
                event.jti = Self.jti(of: token)
            }
            annotate(answer, &event)
        } catch {
            event.error = "\(error)"
        }
        event.answered = now()
        append(event)
        return response
    }

    /// The `jti` claim of a JWT, read without verifying it (the Simulator only names tokens).
    static func jti(of token: String) -> String? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        payload += String(repeating: "=", count: (4 - payload.count % 4) % 4)
        guard let data = Data(base64Encoded: payload), let claims = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            return nil
        }
        return claims["jti"] as? String
    }

    var timeout: Duration { answerBound + .seconds(5) }

    // MARK: The workload

    func prepareAgents(count: Int) async throws {
        for _ in 0..<count {
            guard try await register() else { throw SimulatorError.setupFailed("registering the workload's agents failed") }
        }
    }

    /// Registers an agent (recorded); whether it was.
    @discardableResult
    func register() async throws -> Bool {
        let name = "explore-\(UUID().uuidString.prefix(8).lowercased())"
        let body = #"{"name":"\#(name)","owner":"signet-sim-explore","scopes":["explore:read","explore:write"]}"#
        let sent = now()
        var event = HistoryEvent.request("register", sent: sent, answered: sent, status: nil)
        do {
            let answer = try await HTTP.admin(.POST, "\(base)/v1/agents", token: Explorer.adminToken, body: body, timeout: timeout)
            event.status = answer.status
            event.instance = answer.header("Signet-Instance")
            event.retryAfter = answer.header("Retry-After")
            let json = answer.json
            if answer.status == 201, let id = json["id"] as? String, let clientID = json["client_id"] as? String,
                let secret = json["client_secret"] as? String, let credential = (json["credential"] as? [String: Any])?["id"] as? String
            {
                event.target = id
                event.credential = credential
                state.withLockedValue { $0.agents.append(Agent(id: id, clientID: clientID, secret: secret, credential: credential)) }
            }
        } catch {
            event.error = "\(error)"
        }
        event.answered = now()
        append(event)
        return event.status == 201
    }
}
