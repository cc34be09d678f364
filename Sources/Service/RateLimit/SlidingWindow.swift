import DequeModule

/// The exact sliding-window algorithm, in memory, with time passed in: each subject has the
/// timestamps of the requests it was allowed in the last `window`; a request is allowed while
/// fewer than `limit` are counted. Rejected requests are not counted. Redis runs the same
/// algorithm in `RedisWindow.script`.
public struct SlidingWindow: Sendable {
    public let limit: Int
    public let windowMilliseconds: Int64
    private var entries: [String: Deque<Int64>] = [:]
    private var decisionsSinceSweep = 0

    public init(limit: Int, windowMilliseconds: Int64) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
    }

    /// Decides for `subject` at `now` (milliseconds on any monotonic scale), with `limit` unless
    /// the subject has its own.
    public mutating func decide(_ subject: String, limit: Int? = nil, now: Int64) -> RateLimitDecision {
        let limit = limit ?? self.limit
        // Taken out of the dictionary so it is uniquely referenced: appending must not copy it.
        var timestamps = entries.removeValue(forKey: subject) ?? []
        // The window is (now - window, now]: an entry exactly `window` old has left.
        while let oldest = timestamps.first, oldest <= now - windowMilliseconds { timestamps.removeFirst() }
        let allowed = timestamps.count < limit
        if allowed { timestamps.append(now) }
        let reset = timestamps.first.map { $0 + windowMilliseconds - now } ?? 0
        if !timestamps.isEmpty { entries[subject] = timestamps }
        sweepIfDue(now: now)
        return RateLimitDecision(allowed: allowed, limit: limit, remaining: limit - timestamps.count, resetMilliseconds: reset)
    }

    /// Subjects with counted requests (for tests and memory bounds).
    public var subjectCount: Int { entries.count }

    /// Every so often, forget subjects whose requests have all left the window.
    private mutating func sweepIfDue(now: Int64) {
        decisionsSinceSweep += 1
        guard decisionsSinceSweep >= 10_000 else { return }
        decisionsSinceSweep = 0
        let horizon = now - windowMilliseconds
        entries = entries.filter { ($0.value.last ?? .min) > horizon }
    }
}
