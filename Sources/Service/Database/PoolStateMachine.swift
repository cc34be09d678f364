import DequeModule

/// The connection pool's logic, without I/O and without a clock of its own.
///
/// Every event (a lease request, a release, a connection opened or failed, a timer tick, shutdown)
/// mutates the state and returns the actions the shell must carry out: open or close a
/// connection, hand one to a request, fail a request. Time is passed in with each event, so
/// tests drive exhaustion, FIFO order, deadlines and idle reaping with exact instants.
///
/// Invariants: `total ≤ maximumConnections`; waiters are served oldest first; a connection that
/// was reported broken is never handed out again; after `shutdown()` nothing is leased.
public struct PoolStateMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant
    public typealias ConnectionID = Int
    public typealias RequestID = Int

    /// What the shell must do next.
    public enum Action: Hashable, Sendable {
        /// Open connection `id`, after `delay` (a back-off after failures; zero otherwise).
        case openConnection(ConnectionID, delay: Duration)
        /// Close connection `id` and forget it.
        case closeConnection(ConnectionID)
        /// Hand connection `id` to request `request`.
        case lease(ConnectionID, to: RequestID)
        /// Fail request `request`.
        case failRequest(RequestID, PoolFailure)
    }

    /// Why a request got no connection.
    public enum PoolFailure: Error, Hashable, Sendable {
        /// The deadline passed while waiting for or opening a connection.
        case timedOut
        /// The pool is shutting down.
        case shutDown
    }

    private enum ConnectionState: Equatable, Sendable {
        case connecting
        case idle(since: Instant)
        case leased
    }

    private struct Waiter: Sendable {
        let id: RequestID
        let deadline: Instant
    }

    public let configuration: PoolConfiguration
    private var connections: [ConnectionID: ConnectionState] = [:]
    /// Idle connections, the most recently released last: leases take from the end, so extra
    /// connections stay idle long enough to be reaped.
    private var idleStack: [ConnectionID] = []
    private var waiters: Deque<Waiter> = []
    private var nextConnectionID: ConnectionID = 0
    private var consecutiveConnectFailures = 0
    private var isShutDown = false
    private var acquireTimeouts = 0
    private var connectionsOpened = 0
    private var connectionsClosed = 0
    private var connectFailures = 0

    public init(configuration: PoolConfiguration) {
        self.configuration = configuration
    }

    // MARK: Events

    /// Opens `minimumConnections` connections.
    public mutating func start() -> [Action] {
        var actions: [Action] = []
        for _ in 0..<configuration.minimumConnections { actions.append(openNew(delay: .zero)) }
        return actions
    }

    /// A request wants a connection; it waits until `deadline` at most.
    public mutating func leaseRequested(_ request: RequestID, deadline: Instant, now: Instant) -> [Action] {
        guard !isShutDown else { return [.failRequest(request, .shutDown)] }
        if waiters.isEmpty, let connection = idleStack.popLast() {
            connections[connection] = .leased
            return [.lease(connection, to: request)]
        }
        guard deadline > now else {
            acquireTimeouts += 1
            return [.failRequest(request, .timedOut)]
        }
        waiters.append(Waiter(id: request, deadline: deadline))
        return growIfNeeded()
    }

    /// A waiting request went away (its task was cancelled); it no longer waits.
    public mutating func leaseCancelled(_ request: RequestID) -> [Action] {
        waiters.removeAll { $0.id == request }
        return []
    }

    /// A connection finished opening.
    public mutating func connectionOpened(_ connection: ConnectionID, now: Instant) -> [Action] {
        guard connections[connection] == .connecting else { return [] }
        connectionsOpened += 1
        consecutiveConnectFailures = 0
        if isShutDown {
            connections[connection] = nil
            connectionsClosed += 1
            return [.closeConnection(connection)]
        }
        return handOut(connection, now: now)
    }

    /// A connection could not be opened; the pool retries with back-off while it is needed.
    public mutating func connectionFailed(_ connection: ConnectionID, now: Instant) -> [Action] {
        guard connections[connection] == .connecting else { return [] }
        connections[connection] = nil
        connectFailures += 1
        consecutiveConnectFailures += 1
        return replenish()
    }

    /// A leased connection comes back. `reusable` is false when it broke or is in an unknown
    /// state: it is closed and replaced, never handed out again.
    public mutating func connectionReleased(_ connection: ConnectionID, reusable: Bool, now: Instant) -> [Action] {
        guard connections[connection] == .leased else { return [] }
        guard reusable, !isShutDown else {
            connections[connection] = nil
            connectionsClosed += 1
            return [.closeConnection(connection)] + replenish()
        }
        return handOut(connection, now: now)
    }

    /// Time passed: fail requests past their deadline, close connections idle too long above `min`.
    public mutating func tick(now: Instant) -> [Action] {
        var actions: [Action] = []
        // Deadlines differ per request (a health check's is shorter), so any waiter may be due,
        // not only the oldest; the others keep their order.
        if waiters.contains(where: { $0.deadline <= now }) {
            for waiter in waiters where waiter.deadline <= now {
                acquireTimeouts += 1
                actions.append(.failRequest(waiter.id, .timedOut))
            }
            waiters.removeAll { $0.deadline <= now }
        }
        // Oldest idle first: they sit at the bottom of the stack.
        var index = 0
        while index < idleStack.count, connections.count > configuration.minimumConnections {
            let connection = idleStack[index]
            if case .idle(let since) = connections[connection], now - since >= configuration.idleTimeout {
                idleStack.remove(at: index)
                connections[connection] = nil
                connectionsClosed += 1
                actions.append(.closeConnection(connection))
            } else {
                index += 1
            }
        }
        return actions
    }

    /// No more leases: fail every waiter, close idle connections; leased ones close on release.
    public mutating func shutdown() -> [Action] {
        guard !isShutDown else { return [] }
        isShutDown = true
        var actions = waiters.map { Action.failRequest($0.id, .shutDown) }
        waiters.removeAll()
        for connection in idleStack {
            connections[connection] = nil
            connectionsClosed += 1
            actions.append(.closeConnection(connection))
        }
        idleStack.removeAll()
        return actions
    }

    // MARK: Reading

    public var statistics: PoolStatistics {
        var leased = 0
        var connecting = 0
        for state in connections.values {
            switch state {
            case .leased: leased += 1
            case .connecting: connecting += 1
            case .idle: break
            }
        }
        return PoolStatistics(
            total: connections.count,
            leased: leased,
            idle: idleStack.count,
            connecting: connecting,
            waiting: waiters.count,
            acquireTimeouts: acquireTimeouts,
            connectionsOpened: connectionsOpened,
            connectionsClosed: connectionsClosed,
            connectFailures: connectFailures
        )
    }

    /// The earliest deadline of a waiting request: the shell wakes up then at the latest, so a
    /// request fails at its deadline, not at the next periodic tick.
    public var nextDeadline: Instant? {
        waiters.lazy.map(\.deadline).min()
    }

    /// True once `shutdown()` ran and every connection is closed.
    public var isDrained: Bool { isShutDown && connections.isEmpty }

    // MARK: Helpers

    private mutating func handOut(_ connection: ConnectionID, now: Instant) -> [Action] {
        if let waiter = waiters.popFirst() {
            connections[connection] = .leased
            return [.lease(connection, to: waiter.id)]
        }
        connections[connection] = .idle(since: now)
        idleStack.append(connection)
        return []
    }

    /// Opens connections while waiters outnumber connections being opened, up to `max`.
    private mutating func growIfNeeded() -> [Action] {
        var actions: [Action] = []
        var connecting = connections.values.count(where: { $0 == .connecting })
        while connecting < waiters.count, connections.count < configuration.maximumConnections {
            actions.append(openNew(delay: .zero))
            connecting += 1
        }
        return actions
    }

    /// After a loss: back to `min`, and enough to serve waiters, with back-off after failures.
    private mutating func replenish() -> [Action] {
        guard !isShutDown else { return [] }
        let connecting = connections.values.count(where: { $0 == .connecting })
        let wanted = max(configuration.minimumConnections - connections.count, waiters.count - connecting)
        let room = configuration.maximumConnections - connections.count
        let count = max(0, min(wanted, room))
        return (0..<count).map { _ in openNew(delay: backoff) }
    }

    /// 0 after a success, then 50 ms doubling to 5 s while connecting keeps failing.
    private var backoff: Duration {
        guard consecutiveConnectFailures > 0 else { return .zero }
        let exponent = min(consecutiveConnectFailures - 1, 7)
        return min(.milliseconds(50 * (1 << exponent)), .seconds(5))
    }

    private mutating func openNew(delay: Duration) -> Action {
        let id = nextConnectionID
        nextConnectionID += 1
        connections[id] = .connecting
        return .openConnection(id, delay: delay)
    }
}
