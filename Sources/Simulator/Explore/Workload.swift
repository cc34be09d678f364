import Foundation
import NIOConcurrencyHelpers

/// The workload of `explore`: agents that take tokens (Basic and form), introspect and revoke them,
/// get rotated with a grace period and have the old credential revoked, are read by the admin, and
/// now and then burst past their rate limit. After each revocation, probes try what was revoked
/// again past the revocation bound, on whichever instance the balancer picks.
extension World {
    enum Operation: CaseIterable {
        case tokenBasic, tokenForm, introspect, revokeToken, rotate, revokeCredential, adminRead, register, burst

        var weight: Int {
            switch self {
            case .tokenBasic: 30
            case .tokenForm: 15
            case .introspect: 15
            case .revokeToken: 5
            case .rotate: 5
            case .revokeCredential: 5
            case .adminRead: 10
            case .register: 2
            case .burst: 2
            }
        }

        static func pick(_ random: inout SeededGenerator) -> Operation {
            var roll = random.int(in: 0...(allCases.map(\.weight).reduce(0, +) - 1))
            for operation in allCases {
                if roll < operation.weight { return operation }
                roll -= operation.weight
            }
            return .tokenBasic
        }
    }

    /// When each probe runs after a revocation's answer: past the bound, spread so the balancer
    /// sends them to more than one instance.
    static let probeDelays: [Duration] = [500, 1500, 3000, 6000].map { .milliseconds(Invariants.revocationBoundMs + $0) }

    func work(until end: ContinuousClock.Instant, random: SeededGenerator) async {
        var random = random
        while ContinuousClock.now < end {
            let operation = Operation.pick(&random)
            let count = state.withLockedValue { $0.agents.count }
            let index = random.int(in: 0...(max(1, count) - 1))
            let pick = random.int(in: 0...4)
            await perform(operation, agent: index, pick: pick)
            try? await Task.sleep(for: .milliseconds(random.int(in: 10...60)))
        }
    }

    func agent(_ index: Int) -> Agent? { state.withLockedValue { $0.agents.indices.contains(index) ? $0.agents[index] : nil } }

    func update(_ index: Int, _ change: (inout Agent) -> Void) { state.withLockedValue { change(&$0.agents[index]) } }

    /// Marks the agent busy with a credential change; false when another worker has it.
    func claim(_ index: Int) -> Bool { state.withLockedValue { $0.busy.insert(index).inserted } }
    func release(_ index: Int) { _ = state.withLockedValue { $0.busy.remove(index) } }

    /// - Parameter pick: which of the agent's tokens an introspection takes (modulo how many it holds).
    func perform(_ operation: Operation, agent index: Int, pick: Int) async {
        guard let agent = agent(index) else { return }
        switch operation {
        case .tokenBasic: await token(agent, index: index, form: false)
        case .tokenForm: await token(agent, index: index, form: true)
        case .introspect:
            guard !agent.tokens.isEmpty else { return await token(agent, index: index, form: false) }
            let held = agent.tokens[pick % agent.tokens.count]
            await introspect(held, by: agent.id, index: index)
        case .revokeToken:
            guard let held = agent.tokens.last else { return }
            update(index) { $0.tokens.removeAll { $0.jti == held.jti } }
            let answer = await record("token.revoke", agent: agent.id, jti: held.jti) {
                try await HTTP.request(
                    .POST, "\(base)/oauth/revoke", headers: [basic(agent.clientID, agent.secret), form], body: "token=\(held.token)",
                    timeout: timeout)
            }
            if answer?.status == 200 {
                for delay in Self.probeDelays { probe(after: delay) { await self.introspect(held, by: agent.id, index: index) } }
            }
        case .rotate:
            guard claim(index) else { return }
            defer { release(index) }
            guard let current = self.agent(index) else { return }
            let answer = await record("rotate", target: current.id) {
                try await HTTP.admin(
                    .POST, "\(base)/v1/agents/\(current.id)/credentials/rotate", token: adminToken,
                    body: #"{"graceSeconds":3600}"#,
                    timeout: timeout)
            } annotate: { answer, event in
                event.credential = answer.json["id"] as? String
            }
            if answer?.status == 201, let json = answer?.json, let id = json["id"] as? String, let secret = json["client_secret"] as? String
            {
                // The credential left in its grace is the one the answer names: ours, unless an
                // earlier rotation whose answer was lost made a newer one (then ours has ended, and
                // the one in grace has a secret nobody here knows).
                let inGrace = (json["previous"] as? [String: Any])?["id"] as? String
                update(index) { agent in
                    agent.previous = inGrace == agent.credential ? (agent.credential, agent.secret) : nil
                    agent.credential = id
                    agent.secret = secret
                }
            } else if answer.map({ $0.status >= 500 }) ?? true {
                // It may have been done: the credential we call previous may have ended with it.
                update(index) { $0.previous = nil }
            }
        case .revokeCredential:
            guard claim(index) else { return }
            defer { release(index) }
            guard let current = self.agent(index), let previous = current.previous else { return }
            let answer = await record("credential.revoke", target: current.id, credential: previous.credential) {
                try await HTTP.admin(
                    .DELETE, "\(base)/v1/agents/\(current.id)/credentials/\(previous.credential)", token: adminToken,
                    timeout: timeout)
            }
            guard answer?.status == 204 else { return }
            update(index) { $0.previous = nil }
            for delay in Self.probeDelays {
                probe(after: delay) {
                    await self.record("probe.token", agent: current.id, credential: previous.credential) {
                        try await HTTP.request(
                            .POST, "\(self.base)/oauth/token", headers: [self.basic(current.clientID, previous.secret), self.form],
                            body: "grant_type=client_credentials", timeout: self.timeout)
                    }
                }
            }
        case .adminRead:
            await record("admin.read", target: agent.id) {
                try await HTTP.admin(.GET, "\(base)/v1/agents/\(agent.id)", token: adminToken, timeout: timeout)
            }
        case .register:
            guard state.withLockedValue({ $0.agents.count }) < 12 else { return }
            _ = await register()
        case .burst:
            // Past the limit at once: five at a time until limit + 10 were sent (at most 200: a limit
            // set out of the way is not to be crossed).
            await withTaskGroup(of: Void.self) { group in
                for lane in 0..<5 {
                    group.addTask {
                        for _ in stride(from: lane, to: min(self.limit + 10, 200), by: 5) {
                            await self.token(agent, index: index, form: false)
                        }
                    }
                }
            }
        }
    }

    var form: (String, String) { ("Content-Type", "application/x-www-form-urlencoded") }

    func basic(_ clientID: String, _ secret: String) -> (String, String) {
        ("Authorization", "Basic " + Data("\(clientID):\(secret)".utf8).base64EncodedString())
    }

    func token(_ agent: Agent, index: Int, form byForm: Bool) async {
        let answer = await record(byForm ? "token.form" : "token.basic", agent: agent.id, credential: agent.credential) {
            if byForm {
                let secret = agent.secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? agent.secret
                return try await HTTP.request(
                    .POST, "\(base)/oauth/token", headers: [form],
                    body: "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=\(secret)", timeout: timeout)
            }
            return try await HTTP.request(
                .POST, "\(base)/oauth/token", headers: [basic(agent.clientID, agent.secret), form], body: "grant_type=client_credentials",
                timeout: timeout)
        }
        if answer?.status == 200, let token = answer?.json["access_token"] as? String, let jti = Self.jti(of: token) {
            update(index) { agent in
                agent.tokens.append((jti, token))
                if agent.tokens.count > 5 { agent.tokens.removeFirst() }
            }
        }
    }

    /// Introspection by the agent (with its credentials as they are now) of one of its tokens.
    @discardableResult
    func introspect(_ held: (jti: String, token: String), by agentID: String, index: Int) async -> HTTP.Response? {
        guard let agent = agent(index) else { return nil }
        return await record("introspect", agent: agentID, jti: held.jti) {
            try await HTTP.request(
                .POST, "\(base)/oauth/introspect", headers: [basic(agent.clientID, agent.secret), form], body: "token=\(held.token)",
                timeout: timeout)
        }
    }

    /// Runs `body` after `delay`; while its answer proves nothing (429: the agent's budget is spent;
    /// 503; no answer), again after its `Retry-After` (at most 5 s), up to three times in all.
    func probe(after delay: Duration, _ body: @escaping @Sendable () async -> HTTP.Response?) {
        let task = Task {
            try? await Task.sleep(for: delay)
            for _ in 0..<3 {
                let answer = await body()
                if let answer, answer.status != 429, answer.status < 500 { return }
                let wait = min(5, Int(answer?.header("Retry-After") ?? "") ?? 1)
                try? await Task.sleep(for: .seconds(max(1, wait)))
            }
        }
        state.withLockedValue { $0.probes.append(task) }
    }

    /// Waits for every probe still due.
    func finishProbes() async {
        while true {
            let due = state.withLockedValue { state in
                defer { state.probes.removeAll() }
                return state.probes
            }
            if due.isEmpty { return }
            for task in due { await task.value }
        }
    }

    // MARK: Health

    /// Reads every instance's `/health/detailed` (its operations listener: `endpoints` names each
    /// instance and its base URL, as they are now) twice a second until `end`.
    func watchHealth(until end: ContinuousClock.Instant, endpoints: @escaping @Sendable () -> [(id: String, url: String)]) async {
        while ContinuousClock.now < end {
            let current = endpoints()
            await withTaskGroup(of: HistoryEvent.self) { group in
                for instance in current {
                    group.addTask {
                        var event = HistoryEvent(type: "health")
                        event.instance = instance.id
                        do {
                            let answer = try await HTTP.request(.GET, "\(instance.url)/health/detailed", timeout: .seconds(3))
                            event.status = answer.status
                            var statuses: [String: String] = [:]
                            for (key, value) in answer.json {
                                if let status = (value as? [String: Any])?["status"] as? String { statuses[key] = status }
                            }
                            event.dependencies = statuses
                        } catch {
                            event.error = "\(error)"
                        }
                        // Stamped when answered: what it says held then, not when it was asked.
                        event.at = self.now()
                        return event
                    }
                }
                for await event in group { append(event) }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    // MARK: Faults

    /// Applies the schedule: each fault's toxics on its dependency's proxy from `at` to `until`
    /// (through `ChaosFaults.with`, as `chaos` adds its own), or the restart at `at`
    /// through `restart` (the local stack's processes).
    ///
    /// - Parameter origin: when the workload started, which the schedule's offsets count from (the
    ///   history's count from the run's start, agents' registration included).
    func apply(
        _ schedule: FaultSchedule, from origin: ContinuousClock.Instant, restart: @escaping @Sendable (ScheduledFault) async throws -> Void
    ) async throws {
        for fault in schedule.faults {
            try await Task.sleep(until: origin + .milliseconds(fault.at), clock: .continuous)
            // The event says what happened: from when the fault was in place to when it was gone
            // (the schedule's offsets, unless a restart before it ran late).
            var happened = fault
            happened.at = now()
            switch fault.kind {
            case .instanceRestart, .postgresRestart:
                try await restart(fault)
            default:
                guard proxies[fault.kind.dependency] != nil else { continue }
                // Named signet-sim-<run>-<dependency>-…, removed whatever happens, as chaos's are.
                try await injector.with(fault.kind.dependency, fault.kind.toxics) {
                    happened.at = now()
                    try await Task.sleep(until: origin + .milliseconds(fault.until), clock: .continuous)
                }
            }
            happened.until = now()
            append(.fault(happened))
        }
    }

    // MARK: After the run

    /// An admin read after the run, again after `Retry-After` while it is 429 (a deployed target's
    /// admin budget, spent by the run) or 503, for up to a minute.
    func read(_ path: String) async throws -> HTTP.Response {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let answer = try await HTTP.admin(.GET, "\(base)\(path)", token: adminToken, timeout: .seconds(10))
            guard answer.status == 429 || answer.status == 503, ContinuousClock.now < deadline else { return answer }
            try await Task.sleep(for: .seconds(min(5, max(1, Int(answer.header("Retry-After") ?? "") ?? 1))))
        }
    }

    /// Reads back every agent the run registered: the agent, its credentials, its audit rows.
    func verify() async throws {
        try await waitUntil("Signet answers admin reads after the run", timeout: .seconds(30)) {
            let status = (try? await HTTP.admin(.GET, "\(base)/v1/agents?limit=1", token: adminToken, timeout: .seconds(5)))?.status
            return status == 200 || status == 429
        }
        let registered = events.filter { $0.op == "register" && $0.status == 201 }.compactMap(\.target)
        for id in registered {
            let shown = try await read("/v1/agents/\(id)")
            var agent = HistoryEvent(type: "verify")
            agent.op = "agent"
            agent.agent = id
            agent.found = shown.status == 200
            agent.state = shown.json["status"] as? String
            append(agent)
            let listed = try await read("/v1/agents/\(id)/credentials")
            guard listed.status == 200 else {
                throw SimulatorError.setupFailed("reading the credentials of \(id): \(listed.status) \(listed.body)")
            }
            for item in listed.json["items"] as? [[String: Any]] ?? [] {
                var credential = HistoryEvent(type: "verify")
                credential.op = "credential"
                credential.agent = id
                credential.credential = item["id"] as? String
                credential.found = true
                credential.state = item["state"] as? String
                append(credential)
            }
            var actions: [String] = []
            var cursor: String?
            repeat {
                let page = try await read("/v1/audit?agentId=\(id)&limit=100" + (cursor.map { "&after=\($0)" } ?? ""))
                guard page.status == 200 else {
                    throw SimulatorError.setupFailed("reading the audit log of \(id): \(page.status) \(page.body)")
                }
                for row in page.json["items"] as? [[String: Any]] ?? [] {
                    guard let action = row["action"] as? String else { continue }
                    let details = row["details"] as? [String: Any] ?? [:]
                    let subject = details["jti"] as? String ?? (action == "agent.register" ? nil : details["credentialId"] as? String)
                    actions.append(subject.map { "\(action):\($0)" } ?? action)
                }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            var audit = HistoryEvent(type: "verify")
            audit.op = "audit"
            audit.agent = id
            audit.actions = actions
            append(audit)
        }
    }

    /// Deactivates every agent the run registered (against a deployed stack: nothing is left active).
    func deactivateAgents() async {
        for id in events.filter({ $0.op == "register" && $0.status == 201 }).compactMap(\.target) {
            _ = try? await HTTP.admin(.DELETE, "\(base)/v1/agents/\(id)", token: adminToken, timeout: .seconds(10))
        }
    }
}
