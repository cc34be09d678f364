import Synchronization

/// Source addresses over their budget for unauthenticated requests, per instance, until the
/// limiter said they may retry. While an address is here its requests are not authenticated
/// where that would cost a signature verification or a database query, and those without a
/// principal are answered 429 without asking the limiter: a flood is cut off before Signet works
/// for it. An address gets here only from a limiter decision, so the shared count still rules.
public final class AddressGate: Sendable {
    private struct State {
        var until: [String: ContinuousClock.Instant] = [:]
        /// Expensive checks (client lookups) under way per address.
        var working: [String: Int] = [:]
    }

    private let state = Mutex(State())
    /// Most addresses remembered; past it the expired ones are dropped, and when none has
    /// expired a new one is not held (the shared limiter still refuses it): a flood of addresses
    /// cannot push out the ones already held.
    let capacity: Int

    /// Most expensive checks one address may have under way at once on this instance: a burst
    /// of distinct client ids is not looked up all at once before the first of them is counted.
    /// Generous by default: a lookup is one indexed query, while real agents behind one NAT (the
    /// k6 token load: a thousand, on a busy 2-core machine) had more than 32 under way on an
    /// instance, and a lookup past the bound is a 503 counted against the address, so a low
    /// bound turned a busy moment into the address being held.
    let concurrentWork: Int

    /// The default `concurrentWork`.
    public static let defaultConcurrentWork = 512

    public init(capacity: Int = 100_000, concurrentWork: Int = AddressGate.defaultConcurrentWork) {
        self.capacity = capacity
        self.concurrentWork = concurrentWork
    }

    /// Starts an expensive check for `address` when fewer than `concurrentWork` are under way.
    public func beginWork(_ address: String) -> Bool {
        state.withLock { state in
            let current = state.working[address, default: 0]
            guard current < concurrentWork else { return false }
            state.working[address] = current + 1
            return true
        }
    }

    /// Ends a check that `beginWork` started.
    public func endWork(_ address: String) {
        state.withLock { state in
            let remaining = state.working[address, default: 1] - 1
            state.working[address] = remaining > 0 ? remaining : nil
        }
    }

    /// Whole seconds until `address` may retry (at least 1), or nil when it is not blocked.
    public func retryAfter(_ address: String, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            // The common case, nobody held: no hashing.
            guard !state.until.isEmpty, let until = state.until[address] else { return nil }
            guard until > now else {
                state.until[address] = nil
                return nil
            }
            let remaining = (until - now).milliseconds
            return max(1, Int((remaining + 999) / 1000))
        }
    }

    /// Blocks `address` for `milliseconds` (the limiter's reset).
    public func block(_ address: String, milliseconds: Int64, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            if state.until.count >= capacity, state.until[address] == nil {
                state.until = state.until.filter { $0.value > now }
                guard state.until.count < capacity else { return }
            }
            state.until[address] = now + .milliseconds(max(1, milliseconds))
        }
    }
}
