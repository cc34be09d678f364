/// What an instance knows of the master behind Sentinel, without I/O: the master in use (if
/// any), a generation that changes whenever it does (connections made for an older generation are
/// dropped, never reused), which sentinel to ask first, and how many times the master switched.
///
/// The shell (`RedisLocator`) asks the sentinels when no master is known, confirms the answer
/// with `ROLE`, and reports here; a failed call (refused, timed out, `READONLY`) forgets the
/// master, so the next connection asks the sentinels again; a `+switch-master` message for this
/// master moves to the new one at once.
struct SentinelState: Sendable, Equatable {
    let masterName: String
    let sentinelCount: Int
    /// The master in use; nil: ask the sentinels.
    private(set) var master: RedisAddress?
    /// The last master confirmed, kept while `master` is nil: the health check names it.
    private(set) var lastMaster: RedisAddress?
    private(set) var generation: UInt64 = 0
    /// Changes of master seen since start (the first discovery is not one).
    private(set) var switches = 0
    /// The sentinel that answered last: asked first next time.
    private(set) var preferred = 0

    init(masterName: String, sentinelCount: Int) {
        self.masterName = masterName
        self.sentinelCount = sentinelCount
    }

    /// The sentinels' indices in the order to ask them: the one that answered last first.
    var askingOrder: [Int] {
        (0..<sentinelCount).map { (preferred + $0) % sentinelCount }
    }

    /// Server `index` (a sentinel, or a cluster's seed node) answered: it is asked first next time.
    mutating func answered(by index: Int) {
        preferred = index
    }

    /// Sentinel `sentinel` named `address` and `ROLE` confirmed it is a master. Returns the
    /// generation connections to it belong to, and whether the master changed.
    mutating func confirmed(_ address: RedisAddress, bySentinel sentinel: Int? = nil) -> (generation: UInt64, changed: Bool) {
        if let sentinel { preferred = sentinel }
        guard master != address else { return (generation, false) }
        let changed = lastMaster != nil && lastMaster != address
        if changed { switches += 1 }
        master = address
        lastMaster = address
        generation += 1
        return (generation, changed)
    }

    /// A call on a connection of `generation` failed: unless the master already changed since,
    /// forget it, so the next connection asks the sentinels.
    mutating func failed(generation failed: UInt64) {
        guard failed == generation, master != nil else { return }
        master = nil
        generation += 1
    }

    /// A sentinel published `+switch-master`: the new master is used at once when the message
    /// is about this master. Returns whether it was.
    mutating func switched(_ message: SwitchMaster) -> Bool {
        guard message.masterName == masterName else { return false }
        _ = confirmed(message.new)
        return true
    }

    /// Whether a connection made for `generation` may still be used.
    func isCurrent(_ generation: UInt64) -> Bool { master != nil && generation == self.generation }
}

/// A `+switch-master` message's payload: `<master name> <old ip> <old port> <new ip> <new port>`.
struct SwitchMaster: Sendable, Equatable {
    let masterName: String
    let old: RedisAddress
    let new: RedisAddress

    init?(payload: String) {
        let parts = payload.split(separator: " ")
        guard parts.count == 5, let oldPort = Int(parts[2]), let newPort = Int(parts[4]) else { return nil }
        masterName = String(parts[0])
        old = RedisAddress(host: String(parts[1]), port: oldPort)
        new = RedisAddress(host: String(parts[3]), port: newPort)
    }
}
