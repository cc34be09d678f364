import Logging
import ServiceLifecycle
import Spec
import Synchronization

/// Records `lastUsedAt` of credentials without a write per token request: a use is noted in
/// memory, at most once per credential per `Spec.Defaults.lastUsedRecordSeconds`, and the noted
/// ids are written in one statement every few seconds (and once more at shutdown).
public final class LastUsedRecorder: Service, Sendable {
    private struct State {
        var pending: Set<String> = []
        var lastNoted: [String: ContinuousClock.Instant] = [:]
    }

    private let pool: ConnectionPool
    private let logger: Logger
    private let minimumInterval: Duration
    private let flushInterval: Duration
    private let state = Mutex(State())

    public init(
        pool: ConnectionPool,
        logger: Logger,
        minimumInterval: Duration = .seconds(Defaults.lastUsedRecordSeconds),
        flushInterval: Duration = .seconds(5)
    ) {
        self.pool = pool
        self.logger = logger
        self.minimumInterval = minimumInterval
        self.flushInterval = flushInterval
    }

    /// Notes that `credentialID` was just used.
    public func noteUse(of credentialID: String, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            if let last = state.lastNoted[credentialID], now - last < minimumInterval { return }
            state.lastNoted[credentialID] = now
            state.pending.insert(credentialID)
            if state.lastNoted.count > 100_000 { state.lastNoted = state.lastNoted.filter { now - $0.value < minimumInterval } }
        }
    }

    /// Ids noted but not written yet.
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Writes what was noted.
    public func flush() async {
        let ids = state.withLock { state in
            let ids = state.pending
            state.pending.removeAll()
            return ids
        }
        guard !ids.isEmpty else { return }
        do {
            try await pool.withConnection { try CredentialStore.recordUse(of: ids, on: $0) }
        } catch is CancellationError {
            // Shutting down: `run()` writes them once more after the loop, uncancelled.
            state.withLock { $0.pending.formUnion(ids) }
        } catch {
            logger.warning("could not record lastUsedAt; will retry", metadata: ["count": "\(ids.count)", "error": "\(error)"])
            state.withLock { $0.pending.formUnion(ids) }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.flushInterval)
                if Task.isCancelled { break }
                await self.flush()
            }
        }
        await flush()
    }
}
