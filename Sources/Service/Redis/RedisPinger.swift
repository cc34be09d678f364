import NIOPosix
import Synchronization

/// `PING` on a connection of its own, never the limiter's pipeline, for the health check: a
/// limiter queue backed up behind a slow Redis does not hide or delay the answer. The connection
/// is kept between checks and replaced when it breaks; each call is bounded by its timeout
/// (hiredis socket timeouts) and runs on a small thread pool of its own.
final class RedisPinger: Sendable {
    private let endpoint: RedisEndpoint
    private let idle = Mutex<RedisConnection?>(nil)
    private let threads = OnDemandThreadPool(numberOfThreads: 2)

    init(endpoint: RedisEndpoint) {
        self.endpoint = endpoint
    }

    func ping(timeout: Duration) async throws {
        let endpoint = self.endpoint
        try await threads.running.runIfActive {
            let kept = self.idle.withLock { kept -> RedisConnection? in
                defer { kept = nil }
                return kept
            }
            let connection = try kept ?? RedisConnection.connect(endpoint, timeout: timeout)
            try connection.ping()
            if connection.isUsable { self.idle.withLock { if $0 == nil { $0 = connection } } }
        }
    }
}
