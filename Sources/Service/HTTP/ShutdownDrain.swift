import Hummingbird
import Logging
import ServiceLifecycle
import Spec
import Synchronization

/// Whether this instance is draining: set once, on the first SIGTERM, and read by
/// `/health/ready` on every check.
public final class DrainState: Sendable {
    private let draining = Atomic<Bool>(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// True only for the call that started the drain.
    @discardableResult
    func begin() -> Bool {
        !draining.exchange(true, ordering: .relaxed)
    }
}

/// The first step of a graceful shutdown (DESIGN.md, `SHUTDOWN_DRAIN_MS`): readiness answers 503
/// at once while the listener keeps accepting and serving for `duration`, so a load balancer's
/// health checks take the instance out of rotation before it stops accepting. Then the
/// application's own graceful shutdown runs: the server stops accepting, requests in flight
/// finish, background services stop, the pool closes.
///
/// Run it after the application in one `ServiceGroup`: the group shuts services down in reverse
/// order, so this one is asked first and the application waits until it returns.
public struct ShutdownDrain: Service {
    let state: DrainState
    let duration: Duration
    let logger: Logger

    public init(state: DrainState, duration: Duration, logger: Logger) {
        self.state = state
        self.duration = duration
        self.logger = logger
    }

    public func run() async throws {
        // Cancellation (a failed service) ends the wait and skips the drain.
        do {
            try await gracefulShutdown()
        } catch {
            return
        }
        guard state.begin() else { return }
        logger.info(
            "shutting down: /health/ready answers 503; serving on while the load balancer notices",
            metadata: ["drainMs": "\(duration.milliseconds)"])
        try? await Task.sleep(for: duration)
        logger.info("drained: no longer accepting connections; finishing requests in flight")
    }
}

/// Runs the application until SIGTERM or SIGINT, then shuts it down gracefully: the drain first,
/// then the server and its services. Requests still in flight
/// `Defaults.shutdownInFlightMilliseconds` after the drain are cancelled, so the process exits
/// within `drain + shutdownInFlightMilliseconds + 5 s` whatever a request waits on. A second
/// signal changes nothing (cancelling Hummingbird's server from a signal logs errors and skips
/// the pool's orderly close); `ci/serve` runs without a drain, so Ctrl-C there stops at once.
public func runUntilSignalled(
    _ application: some ApplicationProtocol, drain: DrainState, drainDuration: Duration, logger: Logger
) async throws {
    var configuration = ServiceGroupConfiguration(
        services: [
            .init(service: application),
            .init(
                service: ShutdownDrain(state: drain, duration: drainDuration, logger: logger),
                successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "ShutdownDrain"),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    configuration.maximumGracefulShutdownDuration = drainDuration + .milliseconds(Defaults.shutdownInFlightMilliseconds)
    configuration.maximumCancellationDuration = .seconds(5)
    try await ServiceGroup(configuration: configuration).run()
}
