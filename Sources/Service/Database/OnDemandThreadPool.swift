import NIOPosix
import Synchronization

/// A NIO thread pool whose threads start on first use, not when it is built: the blocking C
/// clients (libpq for the pool, hiredis for the limiter and the health ping) each own one, and a
/// part that is built but never used (the limiter with Redis off, a test's spare pool) starts no
/// thread. It never starts again once started; its threads end when it is shut down or released.
final class OnDemandThreadPool: Sendable {
    private let pool: NIOThreadPool
    private let started = Atomic<Bool>(false)

    init(numberOfThreads: Int) {
        pool = NIOThreadPool(numberOfThreads: numberOfThreads)
    }

    deinit {
        pool.shutdownGracefully { _ in }
    }

    /// The pool, started if this is its first use.
    var running: NIOThreadPool {
        if !started.load(ordering: .acquiring) {
            // Two first uses at once both call `start()`, which does nothing the second time;
            // neither uses the pool before its own call has returned.
            pool.start()
            started.store(true, ordering: .releasing)
        }
        return pool
    }

    /// Ends its threads (nothing to end when it never started); work submitted after is cancelled.
    func shutdown() async throws {
        guard started.load(ordering: .acquiring) else { return }
        try await pool.shutdownGracefully()
    }
}
