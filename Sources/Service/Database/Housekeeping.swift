import Logging
import ServiceLifecycle

/// Once a minute: forget revoked token ids whose tokens have expired, and delete signing keys
/// no longer published. Failures are logged and retried next round.
public struct Housekeeping: Service {
    let pool: ConnectionPool
    let logger: Logger
    let interval: Duration

    public init(pool: ConnectionPool, logger: Logger, interval: Duration = .seconds(60)) {
        self.pool = pool
        self.logger = logger
        self.interval = interval
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
        do {
            let (tokens, keys) = try await pool.withConnection { connection in
                (
                    try connection.query("DELETE FROM revoked_tokens WHERE expires_at <= now()").affectedRows,
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
