import DequeModule

/// The expensive checks (client lookups) each source address has under way, and the requests
/// waiting for one, as a state machine without I/O or time: the shell (`AddressGate`) resumes
/// the waiters it returns. An address has at most `concurrent` checks under way and at most
/// `queued` requests waiting; a freed slot goes to the address's oldest waiter.
struct WorkSlots<Waiter> {
    struct Address {
        var working = 0
        var waiting: Deque<(id: UInt64, waiter: Waiter)> = []
    }

    let concurrent: Int
    let queued: Int
    private(set) var addresses: [String: Address] = [:]

    init(concurrent: Int, queued: Int) {
        self.concurrent = concurrent
        self.queued = queued
    }

    /// Takes a slot when one is free.
    mutating func begin(_ address: String) -> Bool {
        var entry = addresses[address, default: Address()]
        guard entry.working < concurrent else { return false }
        entry.working += 1
        addresses[address] = entry
        return true
    }

    /// What became of a request that asked to wait.
    enum Enqueued {
        /// A slot was free after all: it is the request's.
        case began
        /// Waiting, under `id`, until `end` hands it a slot or `expire` gives up.
        case waiting
        /// The address has `queued` waiting already.
        case full
    }

    mutating func enqueue(_ address: String, id: UInt64, _ waiter: Waiter) -> Enqueued {
        if begin(address) { return .began }
        var entry = addresses[address, default: Address()]
        guard entry.waiting.count < queued else { return .full }
        entry.waiting.append((id, waiter))
        addresses[address] = entry
        return .waiting
    }

    /// Gives a slot back: to the address's oldest waiter when there is one (returned, now holding
    /// the slot), else freed.
    mutating func end(_ address: String) -> Waiter? {
        guard var entry = addresses[address] else { return nil }
        if let next = entry.waiting.popFirst() {
            addresses[address] = entry
            return next.waiter
        }
        entry.working -= 1
        addresses[address] = entry.working > 0 ? entry : nil
        return nil
    }

    /// A waiter's deadline passed (or it was cancelled): returned when it was still waiting.
    mutating func expire(_ address: String, id: UInt64) -> Waiter? {
        guard var entry = addresses[address], let position = entry.waiting.firstIndex(where: { $0.id == id }) else { return nil }
        let waiter = entry.waiting.remove(at: position).waiter
        addresses[address] = entry
        return waiter
    }

    /// Checks under way for `address`.
    func working(_ address: String) -> Int { addresses[address]?.working ?? 0 }

    /// Requests waiting for `address`.
    func waiting(_ address: String) -> Int { addresses[address]?.waiting.count ?? 0 }
}
