import DequeModule

/// The exact sliding-window algorithm, in memory, with time passed in: each subject has the
/// timestamps of the requests it was allowed in the last `window`; a request is allowed while
/// fewer than `limit` are counted. Rejected requests are not counted. Redis runs the same
/// algorithm in `RedisWindow.script`.
///
/// At most `capacity` subjects are held, least recently used first out (O(1)): a flood of
/// distinct addresses while Redis is down cannot grow the instance without bound. A subject
/// pushed out starts again from nothing, which only a flood of `capacity` others can cause.
public struct SlidingWindow: Sendable {
    public let limit: Int
    public let windowMilliseconds: Int64
    private var entries: LRUCache<String, Deque<Int64>>

    /// The default `capacity`.
    public static let defaultCapacity = 100_000

    public init(limit: Int, windowMilliseconds: Int64, capacity: Int = SlidingWindow.defaultCapacity) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
        entries = LRUCache(capacity: capacity)
    }

    /// Decides for `subject` at `now` (milliseconds on any monotonic scale), with `limit` unless
    /// the subject has its own.
    public mutating func decide(_ subject: String, limit: Int? = nil, now: Int64) -> RateLimitDecision {
        let limit = limit ?? self.limit
        // Taken out of the dictionary so it is uniquely referenced: appending must not copy it.
        var timestamps = entries.take(subject) ?? []
        // The window is (now - window, now]: an entry exactly `window` old has left.
        while let oldest = timestamps.first, oldest <= now - windowMilliseconds { timestamps.removeFirst() }
        let allowed = timestamps.count < limit
        if allowed { timestamps.append(now) }
        let reset = timestamps.first.map { $0 + windowMilliseconds - now } ?? 0
        if !timestamps.isEmpty { entries.set(subject, timestamps) }
        return RateLimitDecision(allowed: allowed, limit: limit, remaining: limit - timestamps.count, resetMilliseconds: reset)
    }

    /// Subjects with counted requests (for tests and memory bounds).
    public var subjectCount: Int { entries.count }
}
