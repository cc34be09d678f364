/// Whether the limiter asks Redis: a state machine without I/O. One failure opens the breaker
/// (decisions move to memory at once); while open, a background probe runs every
/// `probeInterval`; one successful probe closes it. Each change of state is reported once, so
/// the shell logs one line per change, never one per request.
public struct CircuitBreaker: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public enum State: Sendable, Equatable {
        case closed
        case open(since: Instant)
    }

    /// What the shell must do after an event.
    public enum Transition: Sendable, Equatable {
        case none
        case opened
        case closed(after: Duration)
    }

    public private(set) var state: State = .closed
    public let probeInterval: Duration
    private var lastProbe: Instant?

    public init(probeInterval: Duration) {
        self.probeInterval = probeInterval
    }

    public var allowsRequests: Bool { state == .closed }

    /// A Redis call (a decision or a probe) failed.
    public mutating func failed(now: Instant) -> Transition {
        guard case .closed = state else { return .none }
        state = .open(since: now)
        lastProbe = now
        return .opened
    }

    /// A Redis call succeeded.
    public mutating func succeeded(now: Instant) -> Transition {
        guard case .open(let since) = state else { return .none }
        state = .closed
        return .closed(after: now - since)
    }

    /// Whether a probe should run now; marks it started.
    public mutating func probeDue(now: Instant) -> Bool {
        guard case .open = state else { return false }
        if let lastProbe, now - lastProbe < probeInterval { return false }
        lastProbe = now
        return true
    }
}
