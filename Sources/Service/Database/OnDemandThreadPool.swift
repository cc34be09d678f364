import NIOPosix
import Synchronization

/// A NIO thread pool whose threads start on first use, not when it is built: the blocking C
/// clients (libpq for the pool, hiredis for the limiter and the health ping) each own one, and a
/// part that is built but never used (the limiter with Redis off, a test's spare pool) starts no
/// thread. Once shut down it never starts again; its threads also end when it is released.
final class OnDemandThreadPool: Sendable {
    private enum State {
        case idle
        case running
        case shutDown
    }

    private let pool: NIOThreadPool
    /// Held while starting, so a start and a shutdown never interleave.
    private let state = Mutex(State.idle)

    init(numberOfThreads: Int) {
        pool = NIOThreadPool(numberOfThreads: numberOfThreads)
    }

    deinit {
        pool.shutdownGracefully { _ in }
    }

    /// The pool, started if this is its first use. After `shutdown()` it is returned unstarted
    /// again, and work given to it is refused (`runIfActive` throws), never run.
    var running: NIOThreadPool {
        state.withLock { state in
            if case .idle = state {
                pool.start()
                state = .running
            }
        }
        return pool
    }

    /// Ends its threads (nothing to end when it never started); work submitted after is refused.
    func shutdown() async throws {
        let wasRunning = state.withLock { state -> Bool in
            defer { state = .shutDown }
            if case .running = state { return true }
            return false
        }
        if wasRunning { try await pool.shutdownGracefully() }
    }
}
