import NIOPosix
import Synchronization

/// A pipelining Redis client: callers queue work; a worker thread sends everything queued as
/// one pipeline, and what queues up during that round trip as the next, so under load one round
/// trip serves many callers. The queue's rules are `PipelineQueue`'s; this shell runs the
/// workers, keeps their connections, and resumes each caller exactly once.
///
/// `send` turns a batch into one result per element, on a worker's connection; it throws when the
/// connection failed, and the whole batch fails with that error (the connection is dropped).
/// Every call is bounded by the connection's timeout (hiredis socket timeouts); finding the
/// master behind Sentinel by `RedisLocator`'s bound.
final class RedisPipeliner<Input: Sendable, Output: Sendable>: Sendable {
    typealias Send = @Sendable (_ batch: [Input], _ connection: RedisConnection) throws -> [Result<Output, any Error>]

    private struct Pending: Sendable {
        let input: Input
        /// Resumed exactly once: by the worker that sends it, or by `failPending`, each of which
        /// first removes it from the queue under the lock.
        let continuation: UnsafeContinuation<Output, any Error>
    }

    private struct State {
        var queue: PipelineQueue<Pending>
        var idle: [RedisLocator.Connection] = []
    }

    /// Where connections go: the server, or the master behind Sentinel.
    let locator: RedisLocator
    private let send: Send
    private let state: Mutex<State>
    /// The first worker's thread.
    private let firstThread: OnDemandThreadPool
    /// Further workers' threads, and probes.
    private let threadPool: OnDemandThreadPool

    init(locator: RedisLocator, maxWorkers: Int = 2, batchLimit: Int = 512, send: @escaping Send) {
        self.locator = locator
        self.send = send
        state = Mutex(State(queue: PipelineQueue(maxWorkers: maxWorkers, batchLimit: batchLimit)))
        firstThread = OnDemandThreadPool(numberOfThreads: 1)
        threadPool = OnDemandThreadPool(numberOfThreads: maxWorkers)
    }

    /// Queues `input` and waits for its result.
    func submit(_ input: Input) async throws -> Output {
        try await withUnsafeThrowingContinuation { continuation in
            let start = state.withLock { $0.queue.enqueue(Pending(input: input, continuation: continuation)) }
            if case .worker(let onFirstThread) = start {
                (onFirstThread ? firstThread : threadPool).running.submit { _ in self.drain(onFirstThread: onFirstThread) }
            }
        }
    }

    /// Fails everything queued now with `error`.
    func failPending(_ error: any Error) {
        let pending = state.withLock { $0.queue.takeAll() }
        for item in pending { item.continuation.resume(throwing: error) }
    }

    /// A fresh connection and `PING`, off the workers: a circuit breaker's probe.
    /// Behind Sentinel it asks the sentinels when no master is known.
    func probe() async throws {
        let locator = locator
        try await threadPool.running.runIfActive {
            let made = try locator.connect()
            do {
                try made.connection.ping()
            } catch {
                locator.failed(made.generation)
                throw error
            }
        }
    }

    /// Runs on a worker thread: sends what is queued, in batches, until the queue is empty. A
    /// connection is used again only while it is usable and its master is still the one in use
    /// (behind Sentinel); a failed call forgets that master (`RedisLocator.failed`).
    private func drain(onFirstThread: Bool) {
        var connection = state.withLock { $0.idle.popLast() }
        while true {
            let batch: [Pending] = state.withLock { state in
                let batch = state.queue.nextBatch(onFirstThread: onFirstThread)
                if batch.isEmpty, let connection, isReusable(connection) { state.idle.append(connection) }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                if let current = connection, !isReusable(current) { connection = nil }
                if connection == nil { connection = try locator.connect() }
                let results = try send(batch.map(\.input), connection!.connection)
                for (item, result) in zip(batch, results) { item.continuation.resume(with: result) }
                for item in batch.dropFirst(results.count) {
                    item.continuation.resume(throwing: RedisError.protocolError("no reply for a queued call"))
                }
            } catch {
                if let failed = connection { locator.failed(failed.generation) }
                connection = nil
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
    }

    private func isReusable(_ connection: RedisLocator.Connection) -> Bool {
        connection.connection.isUsable && locator.isCurrent(connection.generation)
    }
}
