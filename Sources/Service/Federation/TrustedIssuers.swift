import AsyncHTTPClient
import Foundation
import Logging
import SignetJOSE
import SignetResourceServer
import Synchronization

/// The trusted issuers as this instance knows them: the table read whole (it holds at most
/// `NewTrustedIssuer.maxIssuers` rows) and kept `refreshInterval`, read again at once after a
/// change made here (other instances see it within the interval); what an unauthenticated party
/// sends never causes a read by itself. Each issuer's keys are its static set or a `RemoteJWKS`
/// (a deadline, a size cap, https only unless `TRUSTED_ISSUER_ALLOW_HTTP` allowed loopback http;
/// cached, read again for an unknown `kid` at most once per 30 s, the held keys kept while the
/// issuer is unreachable), kept across reads of the table while its URL stays the same.
final class TrustedIssuers: Sendable {
    enum Keys: Sendable {
        case fixed([PublicJWK])
        case remote(RemoteJWKS)
    }

    struct Entry: Sendable {
        let issuer: TrustedIssuer
        let keys: Keys

        /// The key `kid` names (nil: none, or none named and more than one held).
        func keys(for kid: String?) async throws -> [PublicJWK] {
            switch keys {
            case .fixed(let keys): return keys
            case .remote(let remote):
                guard let kid else { return [] }
                return try await remote.key(kid: kid).map { [$0] } ?? []
            }
        }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var loadedAt: ContinuousClock.Instant?
        var loading: Task<[TrustedIssuer], any Error>?
        /// Remote key sources by issuer id and URL, kept across reads.
        var remotes: [String: RemoteJWKS] = [:]
    }

    private let load: @Sendable () async throws -> [TrustedIssuer]
    private let makeRemote: @Sendable (String) -> RemoteJWKS
    private let refreshInterval: Duration
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let logger: Logger
    private let state = Mutex(State())

    /// The HTTP client of issuers' key reads: never follows a redirect (keys come from the URL
    /// an operator registered, or not at all).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    init(
        load: @escaping @Sendable () async throws -> [TrustedIssuer],
        makeRemote: @escaping @Sendable (String) -> RemoteJWKS = { url in
            RemoteJWKS(url: url, client: TrustedIssuers.http, timeout: .seconds(2), maxBytes: 64 * 1024)
        },
        refreshInterval: Duration = .seconds(5), clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }, logger: Logger
    ) {
        self.load = load
        self.makeRemote = makeRemote
        self.refreshInterval = refreshInterval
        self.clock = clock
        self.logger = logger
    }

    /// The trusted issuer named `iss`, or nil. Reads the table when what is held is older than
    /// the interval (one read at a time, shared); when that read fails, what is held answers.
    func entry(_ iss: String) async throws -> Entry? {
        let now = clock()
        let task: Task<[TrustedIssuer], any Error>? = state.withLock { state in
            if let loadedAt = state.loadedAt, now - loadedAt < refreshInterval { return nil }
            if let loading = state.loading { return loading }
            let task = Task { try await self.load() }
            state.loading = task
            return task
        }
        if let task {
            let result = await task.result
            state.withLock { state in
                state.loading = nil
                switch result {
                case .success(let issuers): install(issuers, in: &state, at: clock())
                case .failure: break
                }
            }
            if case .failure(let error) = result {
                let held = state.withLock { $0.loadedAt != nil }
                guard held else { throw error }
                logger.warning("could not read the trusted issuers; using those read before", metadata: ["error": "\(error)"])
            }
        }
        return state.withLock { $0.entries[iss] }
    }

    /// Reads the table again on the next use (after a change made through this instance).
    func invalidate() {
        state.withLock { $0.loadedAt = nil }
    }

    private func install(_ issuers: [TrustedIssuer], in state: inout State, at now: ContinuousClock.Instant) {
        var entries: [String: Entry] = [:]
        var remotes: [String: RemoteJWKS] = [:]
        for issuer in issuers {
            if let uri = issuer.jwksURI {
                let key = issuer.id + " " + uri
                let remote = state.remotes[key] ?? makeRemote(uri)
                remotes[key] = remote
                entries[issuer.issuer] = Entry(issuer: issuer, keys: .remote(remote))
            } else if let json = issuer.jwks, let set = try? PublicJWKSet(json: json) {
                entries[issuer.issuer] = Entry(issuer: issuer, keys: .fixed(set.keys))
            }
        }
        state.entries = entries
        state.remotes = remotes
        state.loadedAt = now
    }

    /// `/health/detailed`'s `trustedIssuers`: nil while no issuer publishes its keys at a URL;
    /// `degraded` while the last read of some issuer's keys failed (its cached keys still verify
    /// assertions; a `kid` it never published fails), naming each one; never `unreachable`.
    func health() -> DependencyHealth? {
        let (entries, now) = (state.withLock { $0.entries }, clock())
        var failing: [String] = []
        var remote = 0
        for entry in entries.values.sorted(by: { $0.issuer.issuer < $1.issuer.issuer }) {
            guard case .remote(let source) = entry.keys else { continue }
            remote += 1
            let status = source.status()
            if let since = status.failingSince {
                let seconds = (now - since).components.seconds
                failing.append(
                    "\(entry.issuer.issuer): its keys could not be read for \(seconds) s (\(status.lastError ?? "unknown error")); "
                        + "\(status.keys) cached keys in use")
            }
        }
        guard remote > 0 else { return nil }
        guard failing.isEmpty else { return DependencyHealth(status: .degraded, latencyMs: 0, message: failing.joined(separator: "; ")) }
        return DependencyHealth(status: .healthy, latencyMs: 0, message: "\(remote) issuers publish their keys at a URL")
    }
}
