import Foundation
import JWTKit
import Logging
import ServiceLifecycle
import SignetJOSE
import SignetResourceServer
import Spec
import Synchronization

/// The signing keys this instance uses: the current one signs, all published ones verify.
///
/// Keys live in the shared `SecretStore` (PostgreSQL, or Vault when configured); while the
/// store cannot be read, the keys in memory keep tokens flowing. `run()` re-reads them every `refreshInterval`, so a rotation
/// made on any instance is used by all within that time, and a token signed with a key this
/// instance has not seen yet triggers an immediate re-read.
public final class KeyRing: Service, Sendable {
    struct Snapshot: Sendable {
        let current: SigningKey
        let kids: Set<String>
        let collection: JWTKeyCollection
        /// `{"keys": [...]}`, ready to serve.
        let jwks: Data
        /// The published keys as a resource server reads them (`SignetResourceServer`).
        var publicKeys: [String: PublicJWK] = [:]
    }

    private let store: any SecretStore
    private let logger: Logger
    private let refreshInterval: Duration
    private let snapshot: Mutex<Snapshot?> = Mutex(nil)
    private let lastUnknownKidRefresh: Mutex<ContinuousClock.Instant?> = Mutex(nil)
    /// When the keys were last read from the store (or installed at start).
    private let lastRead: Mutex<ContinuousClock.Instant>
    /// Its monotonic side times the staleness bound and the unknown-kid re-reads.
    private let clock: SignetClock
    /// Past this without a successful read, no token is signed: another instance may have
    /// rotated, and the key this one holds leaves every JWKS `signingKeyPublishSlackSeconds`
    /// after its last token could expire.
    let staleAfter = Duration.seconds(Defaults.signingKeyPublishSlackSeconds)

    public init(
        store: any SecretStore, logger: Logger, refreshInterval: Duration = .milliseconds(Defaults.signingKeyRefreshMilliseconds),
        clock: SignetClock = .system
    ) {
        self.clock = clock
        lastRead = Mutex(clock.monotonic())
        self.store = store
        self.logger = logger
        self.refreshInterval = refreshInterval
    }

    /// Installs keys read elsewhere (at start-up, before the pool runs).
    func install(_ keys: [SigningKey]) async throws {
        guard let current = keys.first(where: \.isCurrent) else {
            throw DatabaseError.unexpectedResult("no current signing key")
        }
        // A kid is the key's thumbprint: the same kids and current kid are the same keys, and
        // the periodic refresh has nothing to rebuild.
        let kids = Set(keys.map(\.kid))
        let installed = snapshot.withLock { $0 }
        if let installed, installed.kids == kids, installed.current.kid == current.kid { return }
        let collection = JWTKeyCollection()
        for key in keys {
            await collection.add(
                ecdsa: try ES256PrivateKey(backing: key.privateKey), kid: JWKIdentifier(string: key.kid),
                serializer: DefaultJWTSerializer(jsonEncoder: TokenJSONEncoder()))
        }
        let jwks = try JSONSerialization.data(
            withJSONObject: ["keys": keys.map(\.publicJWK)], options: [.sortedKeys, .withoutEscapingSlashes])
        var publicKeys: [String: PublicJWK] = [:]
        for key in keys { publicKeys[key.kid] = try? PublicJWK(key.publicJWK, requireKid: true) }
        snapshot.withLock {
            $0 = Snapshot(current: current, kids: kids, collection: collection, jwks: jwks, publicKeys: publicKeys)
        }
        if installed != nil {
            logger.info("signing keys changed", metadata: ["current": "\(current.kid)", "published": "\(kids.sorted())"])
        }
    }

    /// Re-reads the keys from the store.
    public func refresh() async throws {
        let keys = try await store.publishedSigningKeys()
        try await install(keys)
        lastRead.withLock { $0 = clock.monotonic() }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                try? await Task.sleep(for: self.refreshInterval)
                do {
                    try await self.refresh()
                    if failing { self.logger.info("signing keys readable again") }
                    failing = false
                } catch is CancellationError {
                    return
                } catch {
                    if !failing {
                        self.logger.warning("could not refresh signing keys; keeping the ones in memory", metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
            }
        }
    }

    private func current() throws -> Snapshot {
        guard let snapshot = snapshot.withLock({ $0 }) else { throw DatabaseError.unexpectedResult("signing keys not loaded") }
        return snapshot
    }

    /// The JWKS document.
    public var jwks: Data {
        get throws { try current().jwks }
    }

    /// The kid that signs new tokens.
    public var currentKid: String {
        get throws { try current().current.kid }
    }

    /// Signs `claims` as an RFC 9068 access token with the current key.
    public func sign(_ claims: AccessTokenClaims) async throws -> String {
        let snapshot = try current()
        let sinceRead = clock.monotonic() - lastRead.withLock { $0 }
        guard sinceRead < staleAfter else {
            logger.warning("signing keys not refreshed; refusing to sign", metadata: ["sinceReadMs": "\(sinceRead.milliseconds)"])
            throw SignetError.unavailable("the signing keys could not be refreshed; no token was issued")
        }
        var header = JWTHeader()
        header.typ = "at+jwt"
        return try await snapshot.collection.sign(claims, kid: JWKIdentifier(string: snapshot.current.kid), header: header)
    }

    /// Verifies the signature of `token` (`typ` at+jwt, alg ES256, a published kid) and returns its
    /// claims, or nil for anything that is not a token this service signed.
    public func verify(_ token: String) async -> AccessTokenClaims? {
        guard let kid = Self.kid(of: token), await publishes(kid), let snapshot = try? current() else { return nil }
        return try? await snapshot.collection.verify(token, as: AccessTokenClaims.self)
    }

    /// Whether `kid` is a published key; an unknown one makes the keys be read again (maybe another
    /// instance rotated), at most once every refresh interval.
    private func publishes(_ kid: String) async -> Bool {
        if (try? current().kids.contains(kid)) == true { return true }
        let now = clock.monotonic()
        let due = lastUnknownKidRefresh.withLock { last in
            guard last.map({ now - $0 >= refreshInterval }) ?? true else { return false }
            last = now
            return true
        }
        guard due, (try? await refresh()) != nil else { return false }
        return (try? current().kids.contains(kid)) == true
    }

    /// The `kid` of a compact JWS whose header says `typ: at+jwt` and `alg: ES256`.
    ///
    /// (The resource-server library reads keys through `TokenKeySource`, below.)
    static func kid(of token: String) -> String? {
        // Bytes, not characters: splitting a token of kilobytes (one made by exchange carries its
        // parents) by `Character` cost a tenth of an exchange's CPU (perf, issue 30).
        let bytes = token.utf8
        let dot = UInt8(ascii: ".")
        guard let firstDot = bytes.firstIndex(of: dot), bytes.lazy.filter({ $0 == dot }).count == 2,
            let data = Data(base64URL: String(token[..<firstDot])),
            let header = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            header["alg"] as? String == "ES256", (header["typ"] as? String)?.lowercased() == "at+jwt"
        else { return nil }
        return header["kid"] as? String
    }
}

extension KeyRing: TokenKeySource {
    /// A published key, for the resource-server library's verifier on Signet's own routes.
    public func key(kid: String) async throws -> PublicJWK? {
        guard await publishes(kid) else { return nil }
        return try current().publicKeys[kid]
    }
}
