import Foundation

/// One dependency's state in `GET /health/detailed`: `{status, latencyMs, message?}`.
public struct DependencyHealth: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Encodable, CaseIterable {
        case healthy, degraded, unreachable
    }

    public var status: Status
    public var latencyMs: Int64
    public var message: String?

    public init(status: Status, latencyMs: Int64, message: String? = nil) {
        self.status = status
        self.latencyMs = latencyMs
        self.message = message
    }
}

/// How one bounded check ended, before it is judged.
public enum CheckOutcome: Sendable, Equatable {
    /// The dependency answered as a healthy one does; `note` is shown as the message.
    case answered(note: String?)
    /// It answered, but says it cannot serve (Vault sealed, OPA non-200), or the call failed
    /// (connection refused, an error reply).
    case failed(String)
    /// No answer within `HEALTH_CHECK_TIMEOUT_MS`.
    case timedOut
}

/// The pure rules of `/health/detailed`: how a check's outcome and latency become a status, and
/// how the statuses roll up into the overall status and the HTTP status code.
public enum HealthRules {
    /// An answer slower than `degradedAfter` is `degraded`; a failure or no answer in time is
    /// `unreachable`.
    public static func judge(_ outcome: CheckOutcome, latency: Duration, degradedAfter: Duration, timeout: Duration) -> DependencyHealth {
        let milliseconds = latency.milliseconds
        switch outcome {
        case .answered(let note):
            guard latency <= degradedAfter else {
                return DependencyHealth(
                    status: .degraded,
                    latencyMs: milliseconds,
                    message: "answered in \(milliseconds) ms, slower than \(degradedAfter.milliseconds) ms" + (note.map { "; \($0)" } ?? "")
                )
            }
            return DependencyHealth(status: .healthy, latencyMs: milliseconds, message: note)
        case .failed(let message):
            return DependencyHealth(status: .unreachable, latencyMs: milliseconds, message: message)
        case .timedOut:
            return DependencyHealth(
                status: .unreachable, latencyMs: milliseconds, message: "no answer within \(timeout.milliseconds) ms")
        }
    }

    /// The overall status word: any unreachable → `unhealthy`; else any degraded → `degraded`;
    /// else `healthy`.
    public static func overall(_ dependencies: some Collection<DependencyHealth>) -> String {
        if dependencies.contains(where: { $0.status == .unreachable }) { return "unhealthy" }
        if dependencies.contains(where: { $0.status == .degraded }) { return "degraded" }
        return "healthy"
    }

    /// The credential cache: `healthy` while its change listener is current (entries may live
    /// `CREDENTIAL_CACHE_TTL_MS`), `degraded` while it is not (entries live the short fallback).
    public static func credentialCache(_ status: ClientDirectory.Status) -> DependencyHealth {
        let entries = "\(status.entries) entries, each kept up to \(status.ttl.milliseconds) ms"
        guard status.listening else {
            return DependencyHealth(status: .degraded, latencyMs: 0, message: "not listening for client changes; \(entries)")
        }
        return DependencyHealth(status: .healthy, latencyMs: 0, message: "listening for client changes; \(entries)")
    }

    /// 200 all healthy; 207 any degraded and none unreachable; 503 any unreachable.
    public static func httpStatus(_ dependencies: some Collection<DependencyHealth>) -> Int {
        switch overall(dependencies) {
        case "unhealthy": 503
        case "degraded": 207
        default: 200
        }
    }
}

/// One round of checks, as `/health/detailed` answers it.
public struct HealthReport: Sendable, Encodable {
    public var status: String
    public var checkedAt: String
    public var database: DependencyHealth
    public var redis: DependencyHealth?
    public var vault: DependencyHealth?
    public var opa: DependencyHealth?
    /// The credential cache's change listener (`HealthRules.credentialCache`): never
    /// `unreachable`, since the cache then falls back to a short lifetime and tokens still flow.
    public var credentialCache: DependencyHealth?
    /// The keys of trusted issuers that publish them at a URL (`TrustedIssuers.health`): never
    /// `unreachable`, since cached keys keep verifying assertions.
    public var trustedIssuers: DependencyHealth?

    public init(
        checkedAt: Date, database: DependencyHealth, redis: DependencyHealth?, vault: DependencyHealth?, opa: DependencyHealth?,
        credentialCache: DependencyHealth? = nil, trustedIssuers: DependencyHealth? = nil
    ) {
        self.checkedAt = checkedAt.formatted(.iso8601)
        self.database = database
        self.redis = redis
        self.vault = vault
        self.opa = opa
        self.credentialCache = credentialCache
        self.trustedIssuers = trustedIssuers
        self.status = HealthRules.overall(Self.present(database, redis, vault, opa, credentialCache, trustedIssuers))
    }

    var dependencies: [DependencyHealth] { Self.present(database, redis, vault, opa, credentialCache, trustedIssuers) }

    public var httpStatus: Int { HealthRules.httpStatus(dependencies) }

    private static func present(_ items: DependencyHealth?...) -> [DependencyHealth] { items.compactMap { $0 } }
}
