import Foundation
import Logging
import ServiceLifecycle
import Spec

/// Once a minute: forget revoked token ids whose tokens expired more than the clock skew ago
/// (another instance or a resource server a little behind must still see them revoked), and
/// delete signing keys no longer published. Failures are logged and retried next round.
public struct Housekeeping: Service {
    let pool: ConnectionPool
    let logger: Logger
    let interval: Duration
    /// The one clock of token times (`Dependencies.now`).
    let now: @Sendable () -> Date

    public init(pool: ConnectionPool, logger: Logger, interval: Duration = .seconds(60), now: @escaping @Sendable () -> Date = { Date() }) {
        self.pool = pool
        self.logger = logger
        self.interval = interval
        self.now = now
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { return }
                await sweep()
            }
        }
    }

    func sweep() async {
        let cutoff = now().addingTimeInterval(-Double(Defaults.clockSkewSeconds))
        do {
            let (tokens, keys) = try await pool.withConnection { connection in
                (
                    try RevocationStore.forgetExpired(before: cutoff, on: connection),
                    try SigningKeyStore.dropExpired(on: connection)
                )
            }
            if tokens + keys > 0 {
                logger.info("housekeeping", metadata: ["revokedTokensForgotten": "\(tokens)", "signingKeysDropped": "\(keys)"])
            }
        } catch {
            logger.warning("housekeeping failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}
