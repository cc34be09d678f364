import Foundation
import Logging
import Synchronization

/// A health check's failure, with a message safe to show in `/health/detailed` (no secret, no
/// SQL, no server text that could name a value).
public struct HealthCheckError: Error, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// Runs the dependency checks of `/health/detailed` and `/health/ready`.
///
/// Checks run in parallel, each bounded by `HEALTH_CHECK_TIMEOUT_MS` with `withDeadline`, so a
/// frozen dependency makes its check `unreachable` at the bound instead of holding the answer.
/// A round's report is shared for `sharedFor` (about 1 s), and callers arriving while a round
/// runs join it: a flood of health requests makes at most one round of dependency calls per
/// `sharedFor`.
public final class HealthMonitor: Sendable {
    /// One dependency's check: returns a note for the message, or throws `HealthCheckError`.
    /// It is given the bound it runs under, to pass on to its own client.
    public typealias Check = @Sendable (_ timeout: Duration) async throws -> String?

    private struct State {
        var rounds: HealthRounds<HealthReport>
        /// The round under way, by its number.
        var task: (round: Int, task: Task<HealthReport, Never>)?
    }

    private let database: Check
    private let redis: Check?
    private let vault: Check?
    private let opa: Check?
    private let credentialCache: (@Sendable () -> DependencyHealth)?
    private let trustedIssuers: (@Sendable () -> DependencyHealth?)?
    private let timeout: Duration
    private let degradedAfter: Duration
    private let logger: Logger
    /// Monotonic for the shared rounds, wall for the report's `checkedAt`.
    private let clock: SignetClock
    private let state: Mutex<State>

    public init(
        database: @escaping Check,
        redis: Check?,
        vault: Check?,
        opa: Check?,
        credentialCache: (@Sendable () -> DependencyHealth)? = nil,
        trustedIssuers: (@Sendable () -> DependencyHealth?)? = nil,
        timeout: Duration,
        degradedAfter: Duration,
        sharedFor: Duration = .seconds(1),
        logger: Logger,
        clock: SignetClock = .system
    ) {
        self.clock = clock
        self.database = database
        self.redis = redis
        self.vault = vault
        self.opa = opa
        self.credentialCache = credentialCache
        self.trustedIssuers = trustedIssuers
        self.timeout = timeout
        self.degradedAfter = degradedAfter
        self.logger = logger
        state = Mutex(State(rounds: HealthRounds(sharedFor: sharedFor)))
    }

    /// The latest report when it is younger than `sharedFor`, else the running round's, else a
    /// new round's (`HealthRounds`).
    public func report() async -> HealthReport {
        enum Next {
            case report(HealthReport)
            case wait(Task<HealthReport, Never>)
        }
        let now = clock.monotonic()
        let next: Next = state.withLock { state in
            let action = state.rounds.request(now: now)
            switch action {
            case .answer(let report):
                return .report(report)
            case .join(let round) where state.task?.round == round:
                return .wait(state.task!.task)
            case .join(let round), .start(let round):
                // A round the state machine runs always has its task (both change under the lock).
                let task = Task { await self.runRound(round) }
                state.task = (round, task)
                return .wait(task)
            }
        }
        switch next {
        case .report(let report): return report
        case .wait(let task): return await task.value
        }
    }

    /// Ready to serve: the database answers. Vault is reported but does not decide: the secret
    /// material is loaded before the listener opens and kept in memory, so a Vault outage must
    /// not take every instance out of the load balancer while tokens still flow.
    public func readiness() async -> (ready: Bool, report: HealthReport) {
        let report = await report()
        return (report.database.status != .unreachable, report)
    }

    private func runRound(_ round: Int) async -> HealthReport {
        async let database = run("database", self.database)
        async let redis = run("redis", self.redis)
        async let vault = run("vault", self.vault)
        async let opa = run("opa", self.opa)
        let report = HealthReport(
            checkedAt: clock.wall(), database: await database ?? unreachable("not checked"), redis: await redis, vault: await vault,
            opa: await opa, credentialCache: credentialCache?(), trustedIssuers: trustedIssuers?() ?? nil)
        let now = clock.monotonic()
        state.withLock { state in
            state.rounds.finished(round: round, report: report, now: now)
            if state.task?.round == round { state.task = nil }
        }
        return report
    }

    private func run(_ name: String, _ check: Check?) async -> DependencyHealth? {
        guard let check else { return nil }
        let timeout = self.timeout
        let started = ContinuousClock.now
        let outcome = await withDeadline(timeout) { try await check(timeout) }
        let latency = ContinuousClock.now - started
        let judged: CheckOutcome
        switch outcome {
        case .success(let note): judged = .answered(note: note)
        case .timedOut: judged = .timedOut
        case .failure(let error as HealthCheckError): judged = .failed(error.message)
        case .failure(is BoundedHTTP.TimedOut): judged = .timedOut
        case .failure(let error):
            logger.debug("health check failed", metadata: ["dependency": "\(name)", "error": "\(error)"])
            judged = .failed("the check failed")
        }
        let health = HealthRules.judge(judged, latency: latency, degradedAfter: degradedAfter, timeout: timeout)
        if health.status != .healthy {
            logger.debug(
                "health check",
                metadata: ["dependency": "\(name)", "status": "\(health.status.rawValue)", "latencyMs": "\(health.latencyMs)"])
        }
        return health
    }

    private func unreachable(_ message: String) -> DependencyHealth {
        DependencyHealth(status: .unreachable, latencyMs: 0, message: message)
    }
}
