import Foundation

/// One invariant's verdict on a history: how many cases it looked at and the events that broke it.
public struct InvariantReport: Equatable, Sendable {
    public let name: String
    /// What it holds, in a sentence.
    public let rule: String
    public let checked: Int
    public let violations: [String]

    public var passed: Bool { violations.isEmpty }

    public var rendered: String {
        let head = "\(passed ? "PASS" : "FAIL")  \(name): \(rule) (\(checked) checked"
        guard !passed else { return head + ")" }
        let shown = violations.prefix(10).map { "        \($0)" }
        let more = violations.count > 10 ? ["        … and \(violations.count - 10) more"] : []
        return ([head + ", \(violations.count) broke it)"] + shown + more).joined(separator: "\n")
    }
}

/// The checkers `explore` runs over a history (and `explore --check` over a saved one): pure
/// functions of its events, so a history replays its verdict exactly.
public enum Invariants {
    /// How long after a revocation's answer an instance may still honour what was revoked: the
    /// documented worst case, the change listener's loss unseen (docs/api.md, the credential
    /// cache: heartbeat × 2 + the 1 s fallback).
    public static let revocationBoundMs = 3000
    /// How long a Redis fault's effect on the limiter may outlast the fault (the breaker's probe).
    public static let limiterRecoveryMs = 10_000
    /// How soon `/health/detailed` must report a fault, and report the dependency healthy after it.
    public static let healthDetectMs = 5000
    public static let healthRecoverMs = 10_000

    /// Operations whose 200 is a token issued to the credential in `credential`.
    static let tokenOperations: Set<String> = ["token.basic", "token.form", "probe.token"]

    public static func check(_ events: [HistoryEvent]) -> [InvariantReport] {
        [revocation(events), rateLimit(events), answers(events), acknowledgedWrites(events), health(events)]
    }

    static func requests(_ events: [HistoryEvent]) -> [HistoryEvent] { events.filter { $0.type == "request" } }

    static func seconds(_ ms: Int?) -> String { String(format: "%.3f s", Double(ms ?? 0) / 1000) }

    /// No token issued with a revoked credential, and no introspection saying `active` for a
    /// revoked token, once `revocationBoundMs` has passed since the revocation was answered.
    public static func revocation(_ events: [HistoryEvent]) -> InvariantReport {
        let all = requests(events)
        var credentialRevoked: [String: Int] = [:]
        var tokenRevoked: [String: Int] = [:]
        for event in all {
            if event.op == "credential.revoke", event.status == 204, let credential = event.credential, let answered = event.answered {
                credentialRevoked[credential] = min(credentialRevoked[credential] ?? .max, answered)
            }
            if event.op == "token.revoke", event.status == 200, let jti = event.jti, let answered = event.answered {
                tokenRevoked[jti] = min(tokenRevoked[jti] ?? .max, answered)
            }
        }
        var checked = 0
        var violations: [String] = []
        for event in all {
            guard let sent = event.sent else { continue }
            if let op = event.op, tokenOperations.contains(op), let credential = event.credential,
                let revoked = credentialRevoked[credential],
                sent > revoked + revocationBoundMs
            {
                if event.proves { checked += 1 }
                if event.status == 200 {
                    violations.append(
                        "a token (\(event.jti ?? "?")) was issued by \(event.instance ?? "?") at \(seconds(sent)) with credential "
                            + "\(credential), whose revocation was answered at \(seconds(revoked))")
                }
            }
            if event.op == "introspect", let jti = event.jti, let revoked = tokenRevoked[jti], sent > revoked + revocationBoundMs {
                if event.proves { checked += 1 }
                if event.active == true {
                    violations.append(
                        "\(event.instance ?? "?") said token \(jti) active at \(seconds(sent)); its revocation was answered at \(seconds(revoked))"
                    )
                }
            }
        }
        return InvariantReport(
            name: "revocation",
            rule:
                "no token from a revoked credential, no active introspection of a revoked token, \(revocationBoundMs) ms after the answer",
            checked: checked, violations: violations)
    }

    /// While Redis answers, no agent is granted more than its limit in any window, across every
    /// instance; in a window that touches a Redis fault (or the `limiterRecoveryMs` after it), at
    /// most (instances + 1) × limit: each instance's memory, and what Redis counted on either side.
    ///
    /// Granted is an answer to a request the agent authenticated that the limiter let through: a
    /// 2xx, or any other answer but 429 carrying the agents' `RateLimit-Policy` (an OPA refusal
    /// made after the limiter counted it, say). A 503 thrown before the limiter's headers were set
    /// is not counted, so this is a lower bound. A set of granted requests was decided within one
    /// window for sure when the last answer came less than a window after the first was sent, so
    /// the check cannot blame the service for the client's delays.
    public static func rateLimit(_ events: [HistoryEvent]) -> InvariantReport {
        guard let run = events.first(where: { $0.type == "run" }), let limit = run.limit, let window = run.windowMs else {
            return InvariantReport(
                name: "rate-limit", rule: "no run event: no limit to check", checked: 0, violations: ["the history has no run event"])
        }
        let instances = run.instances ?? 1
        let policy = "\(limit);w=\(max(1, (window + 999) / 1000))"
        let redisSpans = events.filter { $0.type == "fault" && $0.kind?.dependency == "redis" }.compactMap { fault -> ClosedRange<Int>? in
            guard let at = fault.at, let until = fault.until else { return nil }
            return at...(until + limiterRecoveryMs)
        }
        let granted = Dictionary(
            grouping: requests(events).filter {
                $0.agent != nil && $0.granted(policy: policy) && $0.sent != nil && $0.answered != nil
            },
            by: { $0.agent! })
        var checked = 0
        var violations: [String] = []
        for (agent, requests) in granted.sorted(by: { $0.key < $1.key }) {
            let sorted = requests.sorted { $0.sent! < $1.sent! }
            var worst: (count: Int, allowed: Int, from: Int)?
            for (index, first) in sorted.enumerated() {
                let start = first.sent!
                let inside = sorted[index...].filter { $0.answered! < start + window }.count
                let touchesRedisFault = redisSpans.contains { $0.overlaps(start...(start + window)) }
                let allowed = touchesRedisFault ? (instances + 1) * limit : limit
                checked += 1
                if inside > allowed, inside - allowed > (worst.map { $0.count - $0.allowed } ?? 0) {
                    worst = (inside, allowed, start)
                }
            }
            if let worst {
                violations.append(
                    "agent \(agent) was granted \(worst.count) requests in the \(window) ms from \(seconds(worst.from)) "
                        + "(allowed \(worst.allowed)\(worst.allowed > limit ? ": a Redis fault was near" : ", Redis answering"))")
            }
        }
        return InvariantReport(
            name: "rate-limit",
            rule: "at most \(limit) granted per agent per \(window) ms while Redis answers, (instances + 1) × \(limit) near a Redis fault",
            checked: checked, violations: violations)
    }

    /// No 500 (no 5xx but 503), every 503 with `Retry-After`, every request answered within the
    /// run's documented bound.
    public static func answers(_ events: [HistoryEvent]) -> InvariantReport {
        let bound = events.first { $0.type == "run" }?.answerBoundMs ?? 10_000
        var violations: [String] = []
        let all = requests(events)
        for event in all {
            let what = "\(event.op ?? "?") sent at \(seconds(event.sent))"
            guard let status = event.status else {
                violations.append("\(what): no answer (\(event.error ?? "?"))")
                continue
            }
            if status >= 500, status != 503 { violations.append("\(what): \(status) from \(event.instance ?? "?")") }
            if status == 503, event.retryAfter == nil {
                violations.append("\(what): 503 without Retry-After from \(event.instance ?? "?")")
            }
            if let sent = event.sent, let answered = event.answered, answered - sent > bound {
                violations.append("\(what): answered after \(answered - sent) ms (bound \(bound) ms)")
            }
        }
        return InvariantReport(
            name: "answers", rule: "no 5xx but 503, every 503 with Retry-After, every answer within \(bound) ms", checked: all.count,
            violations: violations)
    }

    /// Every acknowledged registration, rotation and revocation is there after the run, and the
    /// audit log holds exactly one row for each.
    public static func acknowledgedWrites(_ events: [HistoryEvent]) -> InvariantReport {
        let verified = events.filter { $0.type == "verify" }
        let agents = Dictionary(verified.filter { $0.op == "agent" }.compactMap { e in e.agent.map { ($0, e) } }) { first, _ in first }
        let credentials = Dictionary(verified.filter { $0.op == "credential" }.compactMap { e in e.credential.map { ($0, e) } }) {
            first, _ in first
        }
        let audit = Dictionary(verified.filter { $0.op == "audit" }.compactMap { e in e.agent.map { ($0, e.actions ?? []) } }) { first, _ in
            first
        }
        var checked = 0
        var violations: [String] = []
        func auditRow(_ agent: String, _ action: String, _ what: String) {
            guard let actions = audit[agent] else {
                violations.append("\(what): the audit log of agent \(agent) was not read")
                return
            }
            let rows = actions.filter { $0 == action }.count
            if rows != 1 { violations.append("\(what): \(rows) audit rows \(action), expected 1") }
        }
        for event in requests(events) {
            guard let agent = event.agent ?? event.target, let sent = event.sent else { continue }
            let what = "\(event.op ?? "?") answered \(event.status ?? 0) (sent at \(seconds(sent)))"
            switch (event.op, event.status) {
            case ("register", 201):
                checked += 1
                if agents[agent]?.found != true { violations.append("\(what): agent \(agent) is not there afterwards") }
                auditRow(agent, "agent.register", what)
            case ("rotate", 201):
                checked += 1
                guard let credential = event.credential else { continue }
                if credentials[credential]?.found != true { violations.append("\(what): credential \(credential) is not there afterwards") }
                auditRow(agent, "credential.rotate:\(credential)", what)
            case ("credential.revoke", 204):
                checked += 1
                guard let credential = event.credential else { continue }
                let state = credentials[credential]?.state
                if state != "revoked" {
                    violations.append("\(what): credential \(credential) is \(state ?? "missing") afterwards, not revoked")
                }
                auditRow(agent, "credential.revoke:\(credential)", what)
            case ("token.revoke", 200):
                checked += 1
                guard let jti = event.jti else { continue }
                auditRow(agent, "token.revoke:\(jti)", what)
            default: continue
            }
        }
        return InvariantReport(
            name: "acknowledged-writes",
            rule: "every acknowledged registration, rotation and revocation is there afterwards, with one audit row", checked: checked,
            violations: violations)
    }

    /// Health reports each fault that claims it within `healthDetectMs` on every instance, and the
    /// dependency healthy within `healthRecoverMs` after the fault is taken away.
    public static func health(_ events: [HistoryEvent]) -> InvariantReport {
        let readings = events.filter { $0.type == "health" && $0.dependencies != nil }
        let instances = Set(readings.compactMap(\.instance)).sorted()
        let faults = events.filter { $0.type == "fault" }.sorted { ($0.at ?? 0) < ($1.at ?? 0) }
        var checked = 0
        var violations: [String] = []
        for (index, fault) in faults.enumerated() {
            guard let kind = fault.kind, let at = fault.at, let until = fault.until, kind.dependency != "instance" else { continue }
            let key = kind.dependency == "postgres" ? "database" : kind.dependency
            // Only where the dependency was healthy before the fault (Redis reports otherwise when the
            // limiter runs in memory by configuration, say).
            let watched = instances.filter { instance in
                readings.last { $0.instance == instance && ($0.at ?? 0) < at }?.dependencies?[key] == "healthy"
            }
            // An instance restarting meanwhile answers no health check: not held against this fault.
            // A reading answered up to 1 s after the fault was taken away was made while it held.
            let detectBy = min(at + healthDetectMs, until + 1000)
            if kind.claimsHealth {
                for instance in watched {
                    checked += 1
                    let seen = readings.contains {
                        $0.instance == instance && ($0.at ?? 0) >= at && ($0.at ?? 0) <= detectBy
                            && (($0.dependencies?[key]).map { $0 != "healthy" } ?? false)
                    }
                    if !seen {
                        violations.append(
                            "\(kind.rawValue) at \(seconds(at)): \(instance) did not report \(key) unhealthy within \(detectBy - at) ms")
                    }
                }
            }
            // Recovery: until the next fault on the same dependency, at most healthRecoverMs.
            let next = faults[(index + 1)...].first { $0.kind?.dependency == kind.dependency }?.at ?? .max
            let end = min(until + healthRecoverMs, next)
            guard end - until >= 3000 else { continue }
            for instance in watched {
                checked += 1
                let back = readings.contains {
                    $0.instance == instance && ($0.at ?? 0) >= until && ($0.at ?? 0) <= end && $0.dependencies?[key] == "healthy"
                }
                if !back {
                    violations.append(
                        "\(kind.rawValue) ended at \(seconds(until)): \(instance) did not report \(key) healthy within \(end - until) ms")
                }
            }
        }
        return InvariantReport(
            name: "health",
            rule: "each fault reported within \(healthDetectMs) ms on every instance, healthy again within \(healthRecoverMs) ms",
            checked: checked, violations: violations)
    }
}

extension HistoryEvent {
    /// An answer that says something about what was revoked: not a 429 (the agent's budget was
    /// spent first), not a 5xx, not a missing answer.
    var proves: Bool { status.map { $0 != 429 && $0 < 500 } ?? false }

    /// The limiter let it through on the agents' budget `agentPolicy`.
    func granted(policy agentPolicy: String) -> Bool {
        guard let status, status != 429, status != 401 else { return false }
        return (200..<300).contains(status) || policy == agentPolicy
    }
}
