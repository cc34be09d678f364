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
        var latest: (report: HealthReport, at: ContinuousClock.Instant)?
        var round: Task<HealthReport, Never>?
    }

    private let database: Check
    private let redis: Check?
    private let vault: Check?
    private let opa: Check?
    private let credentialCache: (@Sendable () -> DependencyHealth)?
    private let timeout: Duration
    private let degradedAfter: Duration
    private let sharedFor: Duration
    private let logger: Logger
    private let state = Mutex(State())

    public init(
        database: @escaping Check,
        redis: Check?,
        vault: Check?,
        opa: Check?,
        credentialCache: (@Sendable () -> DependencyHealth)? = nil,
        timeout: Duration,
        degradedAfter: Duration,
        sharedFor: Duration = .seconds(1),
        logger: Logger
    ) {
        self.database = database
        self.redis = redis
        self.vault = vault
        self.opa = opa
        self.credentialCache = credentialCache
        self.timeout = timeout
        self.degradedAfter = degradedAfter
        self.sharedFor = sharedFor
        self.logger = logger
    }

    /// The latest report when it is younger than `sharedFor`, else the running round's, else a
    /// new round's.
    public func report() async -> HealthReport {
        enum Answer {
            case fresh(HealthReport)
            case join(Task<HealthReport, Never>)
        }
        let now = ContinuousClock.now
        let answer: Answer = state.withLock { state in
            if let latest = state.latest, now - latest.at < sharedFor { return .fresh(latest.report) }
            if let round = state.round { return .join(round) }
            let round = Task { await self.runRound() }
            state.round = round
            return .join(round)
        }
        switch answer {
        case .fresh(let report): return report
        case .join(let round): return await round.value
        }
    }

    /// Ready to serve: the database answers. Vault is reported but does not decide: the secret
    /// material is loaded before the listener opens and kept in memory, so a Vault outage must
    /// not take every instance out of the load balancer while tokens still flow.
    public func readiness() async -> (ready: Bool, report: HealthReport) {
        let report = await report()
        return (report.database.status != .unreachable, report)
    }

    private func runRound() async -> HealthReport {
        async let database = run("database", self.database)
        async let redis = run("redis", self.redis)
        async let vault = run("vault", self.vault)
        async let opa = run("opa", self.opa)
        let report = HealthReport(
            checkedAt: Date(), database: await database ?? unreachable("not checked"), redis: await redis, vault: await vault,
            opa: await opa, credentialCache: credentialCache?())
        state.withLock { state in
            state.latest = (report, ContinuousClock.now)
            state.round = nil
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
