import NIOPosix
import Synchronization

/// `PING` on a connection of its own, never the limiter's pipeline, for the health check: a
/// limiter queue backed up behind a slow Redis does not hide or delay the answer. The connection
/// is kept between checks and replaced when it breaks; each call is bounded by its timeout
/// (hiredis socket timeouts) and runs on a small thread pool of its own.
final class RedisPinger: Sendable {
    /// Its own locator (the health check's timeout, not the limiter's), sharing nothing with
    /// the limiter's but the topology: behind Sentinel it pings whichever master the sentinels name.
    let locator: RedisLocator
    private let idle = Mutex<RedisLocator.Connection?>(nil)
    private let threads = OnDemandThreadPool(numberOfThreads: 2)

    init(locator: RedisLocator) {
        self.locator = locator
    }

    /// `PING` within the locator's timeout (finding the master behind Sentinel within its bound).
    func ping() async throws {
        let locator = locator
        try await threads.running.runIfActive {
            let kept = self.idle.withLock { kept -> RedisLocator.Connection? in
                defer { kept = nil }
                return kept
            }
            let made = try kept.flatMap { locator.isCurrent($0.generation) ? $0 : nil } ?? locator.connect()
            do {
                try made.connection.ping()
            } catch {
                locator.failed(made.generation)
                throw error
            }
            if made.connection.isUsable { self.idle.withLock { if $0 == nil { $0 = made } } }
        }
    }
}
