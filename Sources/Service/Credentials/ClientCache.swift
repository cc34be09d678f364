/// The credential cache's rules, without I/O or a clock of its own (`ClientDirectory` is the
/// shell that reads, single-flights and admits): which entries are fresh at `now`, how long an
/// entry lives with and without a current listener, what the listener's events and a change
/// drop. Every instant is passed in.
///
/// An entry lives `ttl` only when it was read while the listener was listening (at or after it
/// last started) and the listener's last confirmed heartbeat is younger than `listenerGrace`;
/// otherwise `fallbackTTL`. An id known to name no client is remembered `unknownTTL`, in a
/// smaller bound of its own.
struct ClientCache {
    typealias Instant = ContinuousClock.Instant

    struct Entry {
        let record: ClientRecord
        let fetched: Instant
    }

    /// The listener's state, as the cache relies on it.
    struct Listening {
        /// When it last started listening: entries read before are short-lived.
        let since: Instant
        /// When its last confirmed heartbeat was sent: every change committed before has been
        /// seen. Nil until the first one comes back.
        var confirmed: Instant?
    }

    enum Lookup {
        case known(ClientRecord)
        case unknown
        /// Not cached, or no longer fresh: read it.
        case miss
    }

    let ttl: Duration
    let fallbackTTL: Duration
    let unknownTTL: Duration
    let listenerGrace: Duration
    private(set) var known: LRUCache<String, Entry>
    /// Ids that named no client, and when that was learnt.
    private(set) var unknown: LRUCache<String, Instant>
    private(set) var listening: Listening?

    /// `ttl` is at least `fallbackTTL`; the unknown ids' bound is `capacity` up to
    /// `unknownCapacity`.
    init(ttl: Duration, fallbackTTL: Duration, unknownTTL: Duration, listenerGrace: Duration, capacity: Int, unknownCapacity: Int) {
        self.ttl = max(ttl, fallbackTTL)
        self.fallbackTTL = fallbackTTL
        self.unknownTTL = unknownTTL
        self.listenerGrace = listenerGrace
        self.known = LRUCache(capacity: capacity)
        self.unknown = LRUCache(capacity: min(capacity, unknownCapacity))
    }

    /// The cached answer for `clientID` at `now` when fresh and, with `readSince`, read at or
    /// after that instant; `.miss` otherwise. A hit counts as a use (least recently used goes
    /// first).
    mutating func lookup(_ clientID: String, now: Instant, readSince: Instant? = nil) -> Lookup {
        if let entry = known.value(for: clientID), entry.fetched >= readSince ?? entry.fetched,
            now - entry.fetched < lifetime(of: entry, at: now)
        {
            return .known(entry.record)
        }
        if let learnt = unknown.peek(clientID), now - learnt < unknownTTL { return .unknown }
        return .miss
    }

    /// How long `entry` lives as things stand at `now`.
    func lifetime(of entry: Entry, at now: Instant) -> Duration {
        guard let listening, entry.fetched >= listening.since, let confirmed = listening.confirmed, now - confirmed < listenerGrace
        else { return fallbackTTL }
        return ttl
    }

    /// A read that began at `fetched` answered: the client, or nil when the id names none.
    mutating func store(_ clientID: String, _ record: ClientRecord?, fetched: Instant) {
        if let record {
            known.set(clientID, Entry(record: record, fetched: fetched))
        } else {
            unknown.set(clientID, fetched)
        }
    }

    /// A change to one client (made here or announced by the listener).
    mutating func invalidate(_ clientID: String) {
        known.remove(clientID)
        unknown.remove(clientID)
    }

    mutating func invalidateAll() {
        known.removeAll()
        unknown.removeAll()
    }

    /// The listener listens from `instant`: what was cached may have missed a change, so it goes.
    mutating func listenerStarted(at instant: Instant) {
        invalidateAll()
        listening = Listening(since: instant, confirmed: nil)
    }

    /// A heartbeat sent at `instant` came back: every change committed before it has been seen.
    mutating func listenerConfirmed(at instant: Instant) {
        guard var current = listening else { return }
        current.confirmed = max(current.confirmed ?? instant, instant)
        listening = current
    }

    /// The listener stopped: changes may go unseen, so everything cached goes.
    mutating func listenerLost() {
        listening = nil
        invalidateAll()
    }

    /// Whether the listener counts as current at `now` (its last heartbeat within the grace).
    func isListening(at now: Instant) -> Bool {
        listening?.confirmed.map { now - $0 < listenerGrace } ?? false
    }
}
