import Foundation
import NIOConcurrencyHelpers

/// One spec scenario the Simulator can reproduce: a name, the spec text it proves, and the
/// steps that set up the world, act, and check the observable outcome.
public struct Scenario: Sendable {
    /// Short name for `signet-sim run <name>`, e.g. `pool-exhaustion`.
    public let name: String
    /// The spec's requirement heading.
    public let requirement: String
    /// The spec's scenario heading, e.g. "Pool exhaustion under load".
    public let specScenario: String
    /// What the scenario does, in a sentence.
    public let summary: String
    let body: @Sendable (ScenarioContext) async throws -> Void

    public init(
        name: String,
        requirement: String,
        specScenario: String,
        summary: String,
        body: @escaping @Sendable (ScenarioContext) async throws -> Void
    ) {
        self.name = name
        self.requirement = requirement
        self.specScenario = specScenario
        self.summary = summary
        self.body = body
    }
}

/// One observed check: what was expected, what was seen, and when.
public struct Check: Sendable {
    public enum Outcome: Sendable, Equatable {
        case passed, failed
        /// Not checked: the target lacks the feature. Never counted as a pass.
        case skipped
    }

    public let name: String
    public let outcome: Outcome
    public let expected: String
    public let observed: String
    /// Time since the scenario started.
    public let at: Duration

    public var passed: Bool { outcome == .passed }
    public var failed: Bool { outcome == .failed }
}

/// What a scenario run reports: every check, and the error that stopped it, if any.
public struct ScenarioReport: Sendable {
    public let scenario: String
    public let specScenario: String
    public let checks: [Check]
    public let duration: Duration
    /// Set when the scenario could not run to its end (set-up failed, a step threw).
    public let error: String?

    /// No check failed, at least one passed, and nothing stopped the run.
    public var passed: Bool { error == nil && checks.contains(where: \.passed) && !checks.contains(where: \.failed) }

    /// `N passed, N failed, N skipped`.
    public var totals: String {
        "\(checks.count(where: \.passed)) passed, \(checks.count(where: \.failed)) failed, \(checks.count { $0.outcome == .skipped }) skipped"
    }

    private static let symbol: [Check.Outcome: String] = [.passed: "✔", .failed: "✘", .skipped: "○"]

    /// A readable report, one line per check.
    public var rendered: String {
        var lines = ["\(passed ? "PASS" : "FAIL") \(scenario) — \(specScenario) (\(format(duration)))"]
        for check in checks {
            lines.append(
                "  \(Self.symbol[check.outcome]!) \(check.name): observed \(check.observed)"
                    + (check.failed ? ", expected \(check.expected)" : "") + " [+\(format(check.at))]"
            )
        }
        if let error { lines.append("  ✘ stopped: \(error)") }
        return lines.joined(separator: "\n")
    }
}

func format(_ duration: Duration) -> String {
    let milliseconds = duration.fractionalMilliseconds
    return milliseconds < 1000 ? String(format: "%.0f ms", milliseconds) : String(format: "%.2f s", milliseconds / 1000)
}

/// What a scenario works with: the shared stack, its own database, the instances it starts
/// (stopped when it ends), and the checks it records.
public final class ScenarioContext: Sendable {
    public let stack: LocalStack
    public let adminToken = "sim-admin-token-0123456789abcdefghijkl"
    private let started = ContinuousClock.now
    private let checks = NIOLockedValueBox<[Check]>([])
    private let instances = NIOLockedValueBox<[SignetInstance]>([])
    private let balancers = NIOLockedValueBox<[LoadBalancer]>([])
    private let cleanups = NIOLockedValueBox<[@Sendable () async -> Void]>([])

    init(stack: LocalStack) {
        self.stack = stack
    }

    // MARK: Checks

    /// Records a check.
    public func check(_ name: String, _ passed: Bool, expected: String, observed: String) {
        let at = ContinuousClock.now - started
        checks.withLockedValue {
            $0.append(Check(name: name, outcome: passed ? .passed : .failed, expected: expected, observed: observed, at: at))
        }
    }

    /// Records `observed == expected`.
    public func expect<Value: Equatable>(_ name: String, _ observed: Value, equals expected: Value) {
        check(name, observed == expected, expected: "\(expected)", observed: "\(observed)")
    }

    /// Records that `value` lies in `range`.
    public func expect<Value: Comparable>(_ name: String, _ observed: Value, in range: ClosedRange<Value>, describe: (Value) -> String) {
        check(
            name,
            range.contains(observed),
            expected: "\(describe(range.lowerBound))…\(describe(range.upperBound))",
            observed: describe(observed)
        )
    }

    var recordedChecks: [Check] { checks.withLockedValue { $0 } }

    // MARK: World

    /// A fresh database of the shared PostgreSQL; returns its name.
    public func database() async throws -> String {
        try await stack.postgres.createDatabase(prefix: "scenario")
    }

    /// The variables an instance needs to run on `database`, plus `extra`.
    public func environment(database: String, applicationName: String, _ extra: [String: String] = [:]) -> [String: String] {
        var variables = [
            "LOG_LEVEL": "info",
            // Behind `startLoadBalancer` the client's address comes from haproxy's X-Forwarded-For.
            "TRUSTED_PROXIES": LoadBalancer.trustedProxies,
        ]
        variables.merge(extra) { _, new in new }
        return stack.instanceEnvironment(database: database, applicationName: applicationName, adminToken: adminToken, variables)
    }

    /// Starts an instance; it is stopped when the scenario ends.
    public func startSignet(id: String, environment: [String: String]) async throws -> SignetInstance {
        let instance = try await SignetInstance.start(id: id, environment: environment)
        instances.withLockedValue { $0.append(instance) }
        return instance
    }

    /// Starts an instance that must refuse to start `when` something holds: checks that it exits
    /// `status` (1: it could not start; 2: its configuration is wrong) with exactly one line
    /// containing `naming`.
    public func expectStartRefused(
        id: String, environment: [String: String], when: String, naming text: String, status expectedStatus: Int32 = 1
    ) async throws {
        do {
            _ = try await startSignet(id: id, environment: environment)
            check("start \(when)", false, expected: "exit \(expectedStatus)", observed: "started")
        } catch SimulatorError.processExited(_, let status, let output) {
            expect("exit status \(when)", status, equals: expectedStatus)
            let lines = output.filter { $0.contains(text) }
            check(
                "one line naming \(text)", lines.count == 1, expected: "1 line mentioning \(text)",
                observed: lines.first ?? output.suffix(3).joined(separator: " | "))
        }
    }

    /// Starts haproxy in front of `instances`; it is stopped when the scenario ends.
    public func startLoadBalancer(_ instances: [SignetInstance]) async throws -> LoadBalancer {
        let balancer = try await LoadBalancer.start(backendPorts: instances.map(\.port))
        balancers.withLockedValue { $0.append(balancer) }
        return balancer
    }

    /// Runs `action` when the scenario ends (after its instances stop), last registered first:
    /// for proxies and fakes the scenario started.
    public func atTearDown(_ action: @escaping @Sendable () async -> Void) {
        cleanups.withLockedValue { $0.append(action) }
    }

    func tearDown() async {
        for balancer in balancers.withLockedValue({ $0 }) { await balancer.stop() }
        for instance in instances.withLockedValue({ $0 }) { await instance.stop() }
        for action in cleanups.withLockedValue({ $0 }).reversed() { await action() }
    }

    /// Time since the scenario started.
    public var elapsed: Duration { ContinuousClock.now - started }
}

/// Runs scenarios on a stack and reports.
public enum ScenarioRunner {
    public static func run(_ scenario: Scenario, on stack: LocalStack) async -> ScenarioReport {
        let context = ScenarioContext(stack: stack)
        var failure: String?
        do {
            try await scenario.body(context)
        } catch {
            failure = "\(error)"
        }
        await context.tearDown()
        return ScenarioReport(
            scenario: scenario.name,
            specScenario: scenario.specScenario,
            checks: context.recordedChecks,
            duration: context.elapsed,
            error: failure
        )
    }
}
