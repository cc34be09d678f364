import Spec
import Synchronization

/// OPA's recent decisions, keyed by the whole decision input (`OPA_DECISION_CACHE_MS`; off by
/// default). The input holds everything a decision may depend on (the agent's id, owner, status
/// and scopes, the requested scopes, the client's address), so a change to any of them is a new
/// key and asks OPA at once; what an entry can outlive is a change of the policy itself, and OPA
/// becoming unreachable: for at most the lifetime, an input OPA decided is answered as it was.
/// Only decisions are kept, never a failure. Bounded (LRU), one lock around O(1) operations.
public final class DecisionCache: Sendable {
    struct Entry {
        let scopes: [String]
        let expires: ContinuousClock.Instant
    }

    let lifetime: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries: Mutex<LRUCache<[UInt8], Entry>>

    public init(
        lifetime: Duration, capacity: Int = Defaults.opaDecisionCacheSize,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.lifetime = lifetime
        self.now = now
        entries = Mutex(LRUCache(capacity: capacity))
    }

    /// The decision OPA made for `input` within the lifetime, or nil.
    func decision(for input: [UInt8]) -> [String]? {
        let now = now()
        return entries.withLock { entries in
            guard let entry = entries.value(for: input) else { return nil }
            guard now < entry.expires else {
                entries.remove(input)
                return nil
            }
            return entry.scopes
        }
    }

    func store(_ scopes: [String], for input: [UInt8]) {
        let expires = now() + lifetime
        entries.withLock { $0.set(input, Entry(scopes: scopes, expires: expires)) }
    }

    var count: Int { entries.withLock { $0.count } }
}
