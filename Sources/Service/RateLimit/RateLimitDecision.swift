/// The answer for one request: allowed or not, and what the headers say.
public struct RateLimitDecision: Sendable, Equatable {
    public let allowed: Bool
    public let limit: Int
    /// Requests left in the window after this one.
    public let remaining: Int
    /// Milliseconds until the oldest counted request leaves the window (0: the window is empty).
    public let resetMilliseconds: Int64

    /// `Retry-After` for a 429: whole seconds until a slot frees up, at least 1.
    public var retryAfterSeconds: Int64 { max(1, (resetMilliseconds + 999) / 1000) }
}
