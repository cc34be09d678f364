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
    /// A deployed stack instead of the local one.
    public var target: ExploreTarget?

    public init(
        seed: UInt64, duration: Duration, instances: Int, env: [String: String] = [:], kinds: [FaultKind]? = nil,
        target: ExploreTarget? = nil
    ) {
        self.seed = seed
        self.duration = duration
        self.instances = instances
        self.env = env
        self.kinds = kinds
        self.target = target
    }

    /// The kinds a schedule is drawn from: restarting an instance needs a second one to serve
    /// meanwhile; against a deployed stack, only the toxics of the proxies it names.
    public var drawnKinds: [FaultKind] {
        (kinds ?? FaultKind.allCases).filter { kind in
            if let target { return !kind.localOnly && target.proxies[kind.dependency] != nil }
            return kind != .instanceRestart || instances > 1
        }
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
        if let target {
            // Never the admin token: the command is printed and kept in the history.
            words += ["--target", target.base, "--toxiproxy", target.toxiproxy]
            words += target.proxies.sorted { $0.key < $1.key }.map { "--proxy \($0.key)=\($0.value)" }
            words += target.operations.map { "--operations \($0)" }
            words += ["--answer-bound-ms", String(target.answerBoundMs)]
        }
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

/// A deployed Signet for `explore --target`: its base URL (a balancer), the admin token, the
/// Toxiproxy API in front of its dependencies and which proxy carries which, each instance's
/// operations listener (for `/health/detailed`), and the answer bound its settings give.
public struct ExploreTarget: Sendable {
    public var base: String
    public var adminToken: String
    public var toxiproxy: String
    /// Dependency (`redis`, `postgres`, `vault`, `opa`) → proxy name.
    public var proxies: [String: String]
    public var operations: [String]
    /// DB_POOL_CONNECTION_TIMEOUT_MS + DB_STATEMENT_TIMEOUT_MS + 250 ms + 1 s (11250 with the defaults).
    public var answerBoundMs: Int

    public init(
        base: String, adminToken: String, toxiproxy: String, proxies: [String: String], operations: [String], answerBoundMs: Int = 11_250
    ) {
        func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
        self.base = trimmed(base)
        self.adminToken = adminToken
        self.toxiproxy = trimmed(toxiproxy)
        self.proxies = proxies
        self.operations = operations.map(trimmed)
        self.answerBoundMs = answerBoundMs
    }
}

/// `signet-sim explore`: a local stack (PostgreSQL, Redis, Vault and OPA behind `signet-sim
/// proxy`, N instances behind haproxy), a workload of agents, and a fault schedule drawn from the
/// seed, applied through the Toxiproxy API (and, for the restarts, to the processes). Every request,
/// fault and health reading goes into the history; the invariants are checked on it afterwards.
public enum Explorer {
    static let adminToken = "sim-admin-token-0123456789abcdefghijkl"

    public static func run(_ options: ExploreOptions, say: @escaping @Sendable (String) -> Void) async throws -> [HistoryEvent] {
        let schedule = options.schedule
        say("seed \(options.seed): \(schedule.faults.count) faults over \(options.duration.components.seconds) s")
        for fault in schedule.faults { say("  " + fault.rendered) }
        if let target = options.target { return try await run(options, schedule: schedule, against: target, say: say) }

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
            variables.merge(LoadBalancer.instanceVariables(port: balancerPort)) { _, balancer in balancer }
        }
        variables.merge(options.env) { _, given in given }
        let instances = NIOLockedValueBox<[SignetInstance]>([])
        let balancer = NIOLockedValueBox<LoadBalancer?>(nil)
        func stopAll() async {
            await balancer.withLockedValue { $0 }?.stop()
            for instance in instances.withLockedValue({ $0 }) { await instance.stop() }
            await dependencies.stop()
            await stack.stop()
        }
        do {
            for index in 0..<options.instances {
                let started = try await SignetInstance.start(id: "explore-\(index)", environment: variables)
                instances.withLockedValue { $0.append(started) }
            }
            if let balancerPort {
                let ports = instances.withLockedValue { $0.map(\.port) }
                let started = try await LoadBalancer.start(backendPorts: ports, port: balancerPort)
                balancer.withLockedValue { $0 = started }
            }
        } catch {
            await stopAll()
            throw error
        }
        let base = balancer.withLockedValue { $0?.url } ?? instances.withLockedValue { $0[0].url }
        let pool = Int(variables["DB_POOL_CONNECTION_TIMEOUT_MS"] ?? "") ?? 5000
        let statement = Int(variables["DB_STATEMENT_TIMEOUT_MS"] ?? "") ?? 5000
        var run = HistoryEvent(type: "run")
        run.limit = Int(variables["RATE_LIMIT_MAX_REQUESTS"] ?? "") ?? 100
        run.windowMs = Int(variables["RATE_LIMIT_WINDOW_MS"] ?? "") ?? 60_000
        // Waiting for a connection, then one statement past its deadline, and a second for the rest.
        run.answerBoundMs = pool + statement + 250 + 1000
        let world = World(
            base: base, adminToken: adminToken, answerBound: .milliseconds(run.answerBoundMs!), limit: run.limit!,
            faults: ToxiproxyClient(base: dependencies.toxiproxy.url),
            proxies: Dictionary(uniqueKeysWithValues: ProxiedDependencies.names.map { ($0, $0) }), runID: "explore-\(options.seed)")
        do {
            try await drive(world, run: run, options: options, schedule: schedule) {
                instances.withLockedValue { $0.map { (id: $0.id, url: $0.opsURL) } }
            } restart: { fault in
                switch fault.kind {
                case .instanceRestart:
                    let index = fault.instance ?? 0
                    let victim = instances.withLockedValue { $0[index] }
                    // SIGTERM: it drains (SHUTDOWN_DRAIN_MS), the balancer moves on, then it exits.
                    await victim.stop()
                    let replacement = try await SignetInstance.start(id: victim.id, environment: victim.environment)
                    instances.withLockedValue { $0[index] = replacement }
                default:
                    try await stack.postgres.restartAfterBackendCrash()
                }
            }
            _ = try? await dependencies.toxiproxy.reset()
            try await world.verify()
        } catch {
            await stopAll()
            throw error
        }
        await stopAll()
        return world.events
    }

    /// Against a deployed stack: the toxics of its proxies only, health from its operations
    /// listeners, the limit from its `RateLimit-Policy`; the agents it registers are deactivated
    /// afterwards (their rows stay, as the audit log does).
    static func run(_ options: ExploreOptions, schedule: FaultSchedule, against target: ExploreTarget, say: @Sendable (String) -> Void)
        async throws -> [HistoryEvent]
    {
        let runID = "explore-\(options.seed)-\(UUID().uuidString.prefix(6).lowercased())"
        let client = ToxiproxyClient(base: target.toxiproxy)
        let leftovers = try await client.removeAll(named: ChaosFaults.toxicPrefix, from: Array(target.proxies.values))
        if leftovers > 0 { say("removed \(leftovers) toxics an earlier run left behind") }
        say("toxics of this run are named \(ChaosFaults.toxicPrefix)\(runID)-…")
        // The agents' budget, as the target announces it on a token answer.
        var registered: SignetClient.Agent?
        let deadline = ContinuousClock.now + .seconds(70)
        while registered == nil {
            let (answer, agent) = try await SignetClient(base: target.base, adminToken: target.adminToken).registration(
                name: "explore-policy-\(runID)", owner: "signet-sim-explore", scopes: ["explore:read"])
            registered = agent
            guard agent == nil else { break }
            // The admin's budget, spent by whatever ran before: wait it out.
            guard answer.status == 429, ContinuousClock.now < deadline else {
                throw SimulatorError.setupFailed("registering an agent on the target: \(answer.status) \(answer.body)")
            }
            try await Task.sleep(for: .seconds(min(10, max(1, Int(answer.header("Retry-After") ?? "") ?? 1))))
        }
        let probe = registered!
        let answer = try await SignetClient(base: target.base, adminToken: target.adminToken).token(probe)
        _ = try? await HTTP.admin(.DELETE, "\(target.base)/v1/agents/\(probe.id)", token: target.adminToken)
        guard let policy = answer.header("RateLimit-Policy"), let parsed = Self.policy(policy) else {
            throw SimulatorError.setupFailed("the target's token answer (\(answer.status)) has no RateLimit-Policy to read the limit from")
        }
        var run = HistoryEvent(type: "run")
        (run.limit, run.windowMs, run.answerBoundMs) = (parsed.limit, parsed.windowMs, target.answerBoundMs)
        let world = World(
            base: target.base, adminToken: target.adminToken, answerBound: .milliseconds(target.answerBoundMs), limit: parsed.limit,
            faults: client, proxies: target.proxies, runID: runID)
        let endpoints = target.operations.enumerated().map { (id: "instance-\($0.offset)", url: $0.element) }
        do {
            try await drive(world, run: run, options: options, schedule: schedule, endpoints: { endpoints }) { fault in
                throw SimulatorError.setupFailed("\(fault.kind.rawValue) needs the local stack")
            }
            try await world.verify()
        } catch {
            await world.injector.cleanUp()
            await world.deactivateAgents()
            throw error
        }
        await world.deactivateAgents()
        return world.events
    }

    /// `<limit>;w=<seconds>` → the limit and the window in milliseconds.
    static func policy(_ text: String) -> (limit: Int, windowMs: Int)? {
        let parts = text.split(separator: ";")
        guard parts.count >= 2, let limit = Int(parts[0]), parts[1].hasPrefix("w="), let seconds = Int(parts[1].dropFirst(2)) else {
            return nil
        }
        return (limit, seconds * 1000)
    }

    /// The run itself: the agents, the workers, the health readings and the schedule, then the
    /// probes still due.
    static func drive(
        _ world: World, run: HistoryEvent, options: ExploreOptions, schedule: FaultSchedule,
        endpoints: @escaping @Sendable () -> [(id: String, url: String)],
        restart: @escaping @Sendable (ScheduledFault) async throws -> Void
    ) async throws {
        var run = run
        run.seed = options.seed
        run.durationMs = Int(options.duration.components.seconds) * 1000
        run.instances = options.target.map { max(1, $0.operations.count, options.instances) } ?? options.instances
        run.env = options.env
        run.replay = options.replay
        world.append(run)
        try await world.prepareAgents(count: 6)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let origin = ContinuousClock.now
            let end = origin + options.duration
            let random = SeededGenerator(seed: options.seed)
            for worker in 0..<4 {
                let generator = random.split(worker)
                group.addTask { await world.work(until: end, random: generator) }
            }
            group.addTask { await world.watchHealth(until: end + .seconds(4), endpoints: endpoints) }
            group.addTask { try await world.apply(schedule, from: origin, restart: restart) }
            try await group.waitForAll()
        }
        await world.finishProbes()
    }
}

/// The run's shared state: the agents, the history, the probes due.
final class World: Sendable {
    let base: String
    let adminToken: String
    let started: ContinuousClock.Instant
    let answerBound: Duration
    let limit: Int
    /// Adds and removes the faults' toxics, named after the run.
    let injector: ChaosFaults
    /// Dependency → the proxy that carries it.
    var proxies: [String: String] { injector.proxies }
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

    init(
        base: String, adminToken: String, answerBound: Duration, limit: Int, faults: ToxiproxyClient, proxies: [String: String],
        runID: String
    ) {
        self.base = base
        self.adminToken = adminToken
        self.started = .now
        self.answerBound = answerBound
        self.limit = limit
        injector = ChaosFaults(toxiproxy: faults, proxies: proxies, runID: runID)
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
    static func jti(of token: String) -> String? { DelegationScenarios.claims(of: token)["jti"] as? String }

    var timeout: Duration { answerBound + .seconds(5) }

    // MARK: The workload

    /// Registers the first agents; a 429 (a deployed target's admin budget, spent by whatever ran
    /// before) is waited out for up to 70 s.
    func prepareAgents(count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(70)
        var made = 0
        while made < count {
            if await register() {
                made += 1
                continue
            }
            let last = events.last { $0.op == "register" }
            guard last?.status == 429, ContinuousClock.now < deadline else {
                throw SimulatorError.setupFailed(
                    "registering the workload's agents failed: \(last?.status.map(String.init) ?? last?.error ?? "?")")
            }
            try await Task.sleep(for: .seconds(min(10, max(1, Int(last?.retryAfter ?? "") ?? 1))))
        }
    }

    /// Registers an agent (recorded); whether it was.
    @discardableResult
    func register() async -> Bool {
        let client = SignetClient(base: base, adminToken: adminToken)
        let answer = await record("register") {
            try await client.registration(
                name: "explore-\(UUID().uuidString.prefix(8).lowercased())", owner: "signet-sim-explore",
                scopes: ["explore:read", "explore:write"], timeout: timeout
            ).0
        } annotate: { answer, event in
            guard answer.status == 201, let agent = SignetClient.Agent(answer.json) else { return }
            (event.target, event.credential) = (agent.id, agent.credentialID)
        }
        guard answer?.status == 201, let made = answer.flatMap({ SignetClient.Agent($0.json) }) else { return false }
        state.withLockedValue {
            $0.agents.append(Agent(id: made.id, clientID: made.clientID, secret: made.secret, credential: made.credentialID))
        }
        return true
    }
}
