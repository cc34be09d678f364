import Synchronization

/// Source addresses over their budget for unauthenticated requests, per instance, until the
/// limiter said they may retry, and the expensive checks each address has under way.
///
/// While an address is held its requests are not authenticated where that would cost a database
/// query, and those without a principal are answered 429 without asking the limiter: a flood is
/// cut off before Signet works for it. An address gets here only from a limiter decision, so the
/// shared count still rules. Held addresses are a bounded LRU (`capacity`, O(1) eviction): a
/// flood of addresses pushes out the least recently held, whose next request just asks the
/// limiter again.
///
/// An address may have `concurrentWork` client lookups under way at once; a request past that
/// waits for a slot (at most `queuedWork` per address, each for at most `workWait`) before it is
/// refused: a fleet's cold start behind one NAT is served, and one address still cannot make the
/// database do more than `concurrentWork` lookups at once. The rules are `WorkSlots`'.
public final class AddressGate: Sendable {
    private struct State {
        var until: LRUCache<String, ContinuousClock.Instant>
        var slots: WorkSlots<CheckedContinuation<Bool, Never>>
        var nextWaiter: UInt64 = 0
    }

    private let state: Mutex<State>
    /// Most addresses held at once.
    let capacity: Int

    /// Most expensive checks one address may have under way at once on this instance: a burst
    /// of distinct client ids is not looked up all at once before the first of them is counted.
    /// Generous by default: a lookup is one indexed query, while real agents behind one NAT (the
    /// k6 token load: a thousand, on a busy 2-core machine) had more than 32 under way on an
    /// instance.
    let concurrentWork: Int
    /// Most requests of one address waiting for a slot.
    let queuedWork: Int
    /// How long a request waits for a slot before it is answered 503.
    let workWait: Duration

    /// The default `concurrentWork`.
    public static let defaultConcurrentWork = 512
    /// The default `workWait`: short, so a refused request is still told to retry quickly.
    public static let defaultWorkWait = Duration.seconds(2)

    public init(
        capacity: Int = 100_000, concurrentWork: Int = AddressGate.defaultConcurrentWork, queuedWork: Int? = nil,
        workWait: Duration = AddressGate.defaultWorkWait
    ) {
        self.capacity = capacity
        self.concurrentWork = concurrentWork
        self.queuedWork = queuedWork ?? concurrentWork * 4
        self.workWait = workWait
        state = Mutex(
            State(
                until: LRUCache(capacity: capacity), slots: WorkSlots(concurrent: concurrentWork, queued: queuedWork ?? concurrentWork * 4))
        )
    }

    /// Starts an expensive check for `address` when fewer than `concurrentWork` are under way.
    public func beginWork(_ address: String) -> Bool {
        state.withLock { $0.slots.begin(address) }
    }

    /// Starts an expensive check for `address`, waiting up to `workWait` for a slot; false when
    /// none came in time, the queue was full, or the task was cancelled.
    public func awaitWork(_ address: String) async -> Bool {
        let id = state.withLock { state in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        let expiry = Mutex<Task<Void, Never>?>(nil)
        defer { expiry.withLock { $0?.cancel() } }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let enqueued = state.withLock { $0.slots.enqueue(address, id: id, continuation) }
                switch enqueued {
                case .began: continuation.resume(returning: true)
                case .full: continuation.resume(returning: false)
                case .waiting:
                    // Cancelled before it was queued: `onCancel` found nothing to end.
                    if Task.isCancelled {
                        expire(address, id: id)
                        return
                    }
                    // Armed once queued, so the deadline cannot pass before there is a waiter to end;
                    // cancelled (a slot came) it ends without touching the queue.
                    expiry.withLock {
                        $0 = Task { [workWait] in
                            guard (try? await Task.sleep(for: workWait)) != nil else { return }
                            self.expire(address, id: id)
                        }
                    }
                }
            }
        } onCancel: {
            self.expire(address, id: id)
        }
    }

    private func expire(_ address: String, id: UInt64) {
        state.withLock { $0.slots.expire(address, id: id) }?.resume(returning: false)
    }

    /// Ends a check that `beginWork` or `awaitWork` started; the slot goes to a waiter if any.
    public func endWork(_ address: String) {
        state.withLock { $0.slots.end(address) }?.resume(returning: true)
    }

    /// Checks under way for `address`.
    public func working(_ address: String) -> Int { state.withLock { $0.slots.working(address) } }

    /// Requests of `address` waiting for a slot.
    public func waiting(_ address: String) -> Int { state.withLock { $0.slots.waiting(address) } }

    /// Whole seconds until `address` may retry (at least 1), or nil when it is not blocked.
    public func retryAfter(_ address: String, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            // The common case, nobody held: no hashing.
            guard state.until.count > 0, let until = state.until.peek(address) else { return nil }
            guard until > now else {
                state.until.remove(address)
                return nil
            }
            let remaining = (until - now).milliseconds
            return max(1, Int((remaining + 999) / 1000))
        }
    }

    /// Blocks `address` for `milliseconds` (the limiter's reset).
    public func block(_ address: String, milliseconds: Int64, now: ContinuousClock.Instant = .now) {
        state.withLock { $0.until.set(address, now + .milliseconds(max(1, milliseconds))) }
    }
}
