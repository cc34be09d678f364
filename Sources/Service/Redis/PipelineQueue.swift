/// The queue of a pipelining Redis client, without I/O: which work waits, when another worker
/// (connection and thread) starts, and what each worker sends next.
///
/// One worker pipelines everything queued while its round trip is under way (bigger batches cost
/// Redis and this process less per item than two connections sending half-size ones); another
/// starts only when the queue holds more than a full pipeline per busy worker. The first worker
/// runs on a thread of its own, so the steady state stays on one warm thread.
struct PipelineQueue<Element> {
    /// What the shell must do after an item was queued.
    enum Start: Equatable {
        case none
        /// Start a worker; `onFirstThread`: on the first worker's own thread.
        case worker(onFirstThread: Bool)
    }

    let maxWorkers: Int
    /// The most items one pipeline carries.
    let batchLimit: Int
    private(set) var pending: [Element] = []
    private(set) var busyWorkers = 0
    private var firstBusy = false

    init(maxWorkers: Int, batchLimit: Int) {
        self.maxWorkers = maxWorkers
        self.batchLimit = batchLimit
    }

    /// Queues `element`; says whether a worker must start for it.
    mutating func enqueue(_ element: Element) -> Start {
        pending.append(element)
        guard Self.startsWorker(busy: busyWorkers, queued: pending.count, maxWorkers: maxWorkers, batchLimit: batchLimit) else {
            return .none
        }
        busyWorkers += 1
        let onFirstThread = !firstBusy
        firstBusy = true
        return .worker(onFirstThread: onFirstThread)
    }

    /// The next batch for a worker, oldest first, at most `batchLimit`. Empty: the queue is
    /// drained and the worker stops (it is no longer counted as busy).
    mutating func nextBatch(onFirstThread: Bool) -> [Element] {
        let batch = Array(pending.prefix(batchLimit))
        pending.removeFirst(batch.count)
        if batch.isEmpty {
            busyWorkers -= 1
            if onFirstThread { firstBusy = false }
        }
        return batch
    }

    /// Everything queued, removed: to be failed at once (the limiter's breaker opened).
    mutating func takeAll() -> [Element] {
        defer { pending.removeAll() }
        return pending
    }

    /// Whether an item just queued starts another worker.
    static func startsWorker(busy: Int, queued: Int, maxWorkers: Int, batchLimit: Int) -> Bool {
        busy == 0 || (busy < maxWorkers && queued > busy * batchLimit)
    }
}
