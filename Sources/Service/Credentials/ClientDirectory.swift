import Foundation
import SignetJOSE
import Spec
import Synchronization

/// What the token path needs to know about a client: its agent and its live credentials.
public struct ClientRecord: Sendable {
    /// A secret's digest or a public key set: exactly one of the two.
    public struct Credential: Sendable {
        public let id: String
        let digest: Data?
        /// The keys a `private_key_jwt` assertion is verified with, read once per lookup.
        let keys: PublicJWKSet?
        /// Nil: no expiry. Checked on every use.
        public let expiresAt: Date?

        func isLive(at now: Date) -> Bool { expiresAt.map { $0 > now } ?? true }
    }

    public let agentID: String
    public let clientID: String
    public let owner: String
    public let status: Agent.Status
    public let scopes: [String]
    /// Not revoked; possibly expired (checked at use).
    public let credentials: [Credential]
    /// The agent's token generation: new tokens carry it (`AccessTokenClaims.generation`).
    public let tokenGeneration: Int
    /// The agent's rate-limit subject, hashed once per lookup rather than once per request.
    public let rateLimitSubject: RateLimitSubject
    /// The resources (RFC 8707) its tokens may be for, besides the default audience.
    public var resources: [String] = []
    /// Its token requests must carry a DPoP proof.
    public var dpopBound = false
    public var authMethod: Agent.AuthMethod = .clientSecret
}

/// Finds clients by `client_id` and verifies their secrets, with a per-instance cache so the
/// token path does not query PostgreSQL on every request. The cache's rules are `ClientCache`
/// (pure, instants passed in); this is their shell: it reads (one query per id at a time, shared
/// by concurrent lookups), admits reads per address, and keeps the clock.
///
/// Every change to a client commits a `NOTIFY` (migration 4's triggers), and every instance
/// listens (`ChangeListener`): an entry is dropped as soon as its notification arrives, so while
/// the listener is confirmed current an entry lives `ttl` (`CREDENTIAL_CACHE_TTL_MS`, minutes).
/// When the listener is not current (not connected, or its last heartbeat too old) entries live
/// only `fallbackTTL` (`Spec.Defaults.credentialCacheMilliseconds`), and an entry read before the
/// listener last started listening never counts as long-lived: a change it missed cannot outlive
/// the fallback. A change made through this instance invalidates the entry at once too.
///
/// Entries are bounded by `capacity` (`CREDENTIAL_CACHE_SIZE`), least recently used first out.
/// A well-formed id that names no client is remembered as unknown for `unknownTTL` in a smaller
/// bound of its own (`unknownCapacity`), so a flood of unknown ids cannot push the real clients
/// out, and costs one query per id. A malformed id costs none.
public final class ClientDirectory: Sendable {
    private struct State {
        var cache: ClientCache
        /// Lookups under way, numbered: concurrent requests for one id share one query.
        var inFlight: [String: (number: UInt64, task: Task<ClientRecord?, any Error>)] = [:]
        var fetches: UInt64 = 0
    }

    /// One read of a client from PostgreSQL (tests give their own).
    private let read: @Sendable (String) async throws -> ClientRecord?
    private let hasher: CredentialHasher
    /// The one clock of credential expiry (`Dependencies.now`).
    private let now: @Sendable () -> Date
    /// The clock of cache ages (tests give their own).
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let state: Mutex<State>
    private let onLookup: (@Sendable () -> Void)?
    /// Most ids remembered as naming no client: anyone can send fresh ones (at one query each),
    /// so they get a smaller bound of their own than real clients.
    static let unknownCapacity = 10_000

    public convenience init(
        pool: ConnectionPool,
        hasher: CredentialHasher,
        ttl: Duration = .milliseconds(Defaults.credentialCacheTTLMilliseconds),
        fallbackTTL: Duration = .milliseconds(Defaults.credentialCacheMilliseconds),
        capacity: Int = Defaults.credentialCacheSize,
        unknownTTL: Duration = .milliseconds(Defaults.unknownClientCacheMilliseconds),
        listenerGrace: Duration = ChangeListener.defaultHeartbeat * 2,
        now: @escaping @Sendable () -> Date = { Date() },
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        onLookup: (@Sendable () -> Void)? = nil
    ) {
        self.init(
            hasher: hasher, ttl: ttl, fallbackTTL: fallbackTTL, capacity: capacity, unknownTTL: unknownTTL, listenerGrace: listenerGrace,
            now: now, clock: clock, onLookup: onLookup
        ) { clientID in
            try await pool.withConnection { try CredentialStore.client(clientID, at: now(), on: $0) }
        }
    }

    /// A directory reading clients with `read` and ageing its entries by `clock` (tests).
    init(
        hasher: CredentialHasher,
        ttl: Duration,
        fallbackTTL: Duration,
        capacity: Int,
        unknownTTL: Duration,
        listenerGrace: Duration,
        now: @escaping @Sendable () -> Date,
        clock: @escaping @Sendable () -> ContinuousClock.Instant,
        onLookup: (@Sendable () -> Void)?,
        read: @escaping @Sendable (String) async throws -> ClientRecord?
    ) {
        self.onLookup = onLookup
        self.read = read
        self.clock = clock
        self.hasher = hasher
        self.now = now
        self.state = Mutex(
            State(
                cache: ClientCache(
                    ttl: ttl, fallbackTTL: fallbackTTL, unknownTTL: unknownTTL, listenerGrace: listenerGrace, capacity: capacity,
                    unknownCapacity: Self.unknownCapacity)))
    }

    private enum Cached {
        case known(ClientRecord)
        case unknown
        case fetching(Task<ClientRecord?, any Error>)
        case refused
    }

    /// Who may start a query: the address's slot in its gate (`AddressGate.beginWork`), taken
    /// before the query and given back after it; refused when the address has too many under
    /// way. Joining a query under way needs none.
    public struct Admission: Sendable {
        let gate: AddressGate
        let address: String

        public init(gate: AddressGate, address: String) {
            self.gate = gate
            self.address = address
        }
    }

    /// Thrown by `lookup(_:admission:readSince:)` when a query was needed and `admission` refused it.
    public struct LookupRefused: Error {}

    /// How old a cached client must be before a secret it does not know makes it read again
    /// (`lookup(_:admission:readSince:)`): a flood of wrong secrets for one client costs at most
    /// one query per this interval, whoever sends it. While the listener is current a rotation
    /// elsewhere arrives within milliseconds anyway, so the bound is wider then.
    public var refetchInterval: Duration {
        status().listening ? Self.refetchIntervalWhileListening : Self.refetchIntervalWithoutListener
    }
    /// Entries read before this may be read again for a secret they do not know.
    public func refetchCutoff() -> ContinuousClock.Instant { clock() - refetchInterval }
    public static let refetchIntervalWhileListening = Duration.milliseconds(250)
    public static let refetchIntervalWithoutListener = Duration.milliseconds(5)

    /// The client, from the cache when fresh, and whether this call waited for a database read (its own or one under way)
    /// rather than answering from the cache. A cached entry counts only when fresh and, with
    /// `readSince`, read at or after that instant.
    func lookup(_ clientID: String, admission: Admission?, readSince: ContinuousClock.Instant? = nil) async throws -> (
        record: ClientRecord?, read: Bool
    ) {
        // Not the shape Signet issues (`sgc_` + 22 base64url characters): unknown, without a query.
        guard CredentialHasher.isWellFormedClientID(clientID) else { return (nil, false) }
        let started = clock()
        // A slot this call waited for (`AddressGate.awaitWork`): handed to the query it starts,
        // else given back.
        var holdsSlot = false
        while true {
            let cached: Cached = state.withLock { state in
                switch state.cache.lookup(clientID, now: started, readSince: readSince) {
                case .known(let record): return .known(record)
                case .unknown: return .unknown
                case .miss: break
                }
                if let fetching = state.inFlight[clientID] { return .fetching(fetching.task) }
                if let admission, !holdsSlot, !admission.gate.beginWork(admission.address) { return .refused }
                holdsSlot = false
                state.fetches &+= 1
                let fetch = state.fetches
                let task = Task {
                    defer { admission.map { $0.gate.endWork($0.address) } }
                    return try await self.fetch(clientID, number: fetch)
                }
                state.inFlight[clientID] = (fetch, task)
                return .fetching(task)
            }
            if holdsSlot, let admission {
                holdsSlot = false
                admission.gate.endWork(admission.address)
            }
            switch cached {
            case .known(let record): return (record, false)
            case .unknown: return (nil, false)
            case .fetching(let task): return (try await task.value, true)
            case .refused:
                // Every slot of the address is busy: wait briefly for one (a fleet's cold start
                // behind one NAT), then refuse.
                guard let admission, await admission.gate.awaitWork(admission.address) else { throw LookupRefused() }
                holdsSlot = true
            }
        }
    }

    /// The client when it is in the cache and fresh; nil when it is not (or is known not to
    /// exist). Never queries.
    public func cachedClient(_ clientID: String) -> ClientRecord? {
        let now = clock()
        return state.withLock { state in
            if case .known(let record) = state.cache.lookup(clientID, now: now) { return record }
            return nil
        }
    }

    /// The live credential of `client` that `secret` matches at `now`, if any. Every live
    /// credential is compared (in constant time each), so timing does not tell which matched.
    public func credential(of client: ClientRecord, matching secret: String, at now: Date) -> ClientRecord.Credential? {
        var match: ClientRecord.Credential?
        for credential in client.credentials where credential.isLive(at: now) {
            if let digest = credential.digest, hasher.verify(secret, against: digest) { match = credential }
        }
        return match
    }

    /// Forgets a client, after a change made through this instance or announced by the listener:
    /// its cached entry, and a read under way, which may have begun before the change and must
    /// not be cached after it.
    public func invalidate(clientID: String) {
        state.withLock { state in
            state.cache.invalidate(clientID)
            state.inFlight[clientID] = nil
        }
    }

    /// Forgets every client and every read under way.
    public func invalidateAll() {
        dropEverything { $0.invalidateAll() }
    }

    /// Applies a change of the cache's that drops every entry, and forgets the reads under way:
    /// what they return was read before the change.
    private func dropEverything(_ change: (inout ClientCache) -> Void) {
        state.withLock { state in
            change(&state.cache)
            state.inFlight.removeAll()
        }
    }

    /// The listener listens from now: what was cached before may have missed a change, so it
    /// goes, and what is read from now on may live `ttl` once a heartbeat confirms it.
    func listenerStarted(at instant: ContinuousClock.Instant) {
        dropEverything { $0.listenerStarted(at: instant) }
    }

    /// A heartbeat sent at `instant` came back: every change committed before it has been seen.
    func listenerConfirmed(at instant: ContinuousClock.Instant) {
        state.withLock { $0.cache.listenerConfirmed(at: instant) }
    }

    /// The listener stopped: changes may go unseen, so everything cached goes, and new entries
    /// live `fallbackTTL` until it listens again.
    func listenerLost() {
        dropEverything { $0.listenerLost() }
    }

    /// How the cache stands, for `/health/detailed`.
    public struct Status: Sendable {
        public let listening: Bool
        public let entries: Int
        public let ttl: Duration
    }

    public func status() -> Status {
        let now = clock()
        return state.withLock { state in
            let current = state.cache.isListening(at: now)
            return Status(listening: current, entries: state.cache.known.count, ttl: current ? state.cache.ttl : state.cache.fallbackTTL)
        }
    }

    /// One query for `clientID`; its answer is cached (unless `invalidate` dropped this read
    /// meanwhile) and the lookup leaves the in-flight set.
    private func fetch(_ clientID: String, number: UInt64) async throws -> ClientRecord? {
        let started = clock()
        onLookup?()
        let result: Swift.Result<ClientRecord?, any Error>
        do {
            result = .success(try await read(clientID))
        } catch {
            result = .failure(error)
        }
        state.withLock { state in
            guard state.inFlight[clientID]?.number == number else { return }
            state.inFlight[clientID] = nil
            if case .success(let record) = result { state.cache.store(clientID, record, fetched: started) }
        }
        return try result.get()
    }
}
