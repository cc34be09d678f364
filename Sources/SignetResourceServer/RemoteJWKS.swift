import AsyncHTTPClient
import Foundation
import NIOCore
import SignetJOSE
import Synchronization

/// The issuer's signing keys, fetched from its JWKS URL and kept: every fetch is bounded by
/// `timeout` (the whole answer, body included) and `maxBytes`; the keys are read again after
/// `refreshInterval`, and at once for a `kid` they do not hold, at most once per
/// `unknownKidInterval` (a flood of made-up kids costs one fetch per interval). A key already held
/// is answered at once even when the keys are due to be read again: the read runs in the
/// background, so a frozen issuer never holds a request whose key is known. While the issuer
/// cannot be reached, the keys already held keep working up to `maxStaleness` after their last
/// read (a withdrawn key must not verify forever), and a failed read is not tried again for
/// `unknownKidInterval`; with none held, `key(kid:)` throws, and a failed read is answered again
/// without a new one for `failureBackoff`, so requests cannot drive reads of an issuer that is
/// down. `status()` says whether the last read failed, and since when. The URL must be https (http
/// only on loopback).
public final class RemoteJWKS: TokenKeySource, Sendable {
    public let url: String
    let client: HTTPClient
    let timeout: Duration
    let maxBytes: Int
    let refreshInterval: Duration
    let unknownKidInterval: Duration
    /// Keys older than this are not used while the issuer cannot be reached (a key it withdrew
    /// must not verify forever).
    let maxStaleness: Duration
    /// With no keys held, a failed read is answered again (no new read) this long.
    let failureBackoff: Duration
    let clock: @Sendable () -> ContinuousClock.Instant

    struct State {
        var keys: [String: PublicJWK] = [:]
        var fetchedAt: ContinuousClock.Instant?
        var lastUnknownKidFetch: ContinuousClock.Instant?
        var fetching: Task<[String: PublicJWK], any Error>?
        /// The first failure since the last success, and the latest failure's description.
        var failingSince: ContinuousClock.Instant?
        var lastError: String?
        var lastFailure: ContinuousClock.Instant?
    }

    /// How the last reads went, for a health report.
    public struct Status: Sendable, Equatable {
        /// Keys held (from the last successful read).
        public var keys: Int
        /// Since when every read failed; nil while the last read succeeded (or none ran yet).
        public var failingSince: ContinuousClock.Instant?
        public var lastError: String?
    }

    public func status() -> Status {
        state.withLock { Status(keys: $0.keys.count, failingSince: $0.failingSince, lastError: $0.lastError) }
    }

    private let state = Mutex(State())

    public struct FetchError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(
        url: String, client: HTTPClient = .shared, timeout: Duration = .seconds(2), maxBytes: Int = 64 * 1024,
        refreshInterval: Duration = .seconds(300), unknownKidInterval: Duration = .seconds(30), maxStaleness: Duration = .seconds(86_400),
        failureBackoff: Duration = .seconds(5), clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.url = url
        self.client = client
        self.timeout = timeout
        self.maxBytes = maxBytes
        self.refreshInterval = refreshInterval
        self.unknownKidInterval = unknownKidInterval
        self.maxStaleness = maxStaleness
        self.failureBackoff = failureBackoff
        self.clock = clock
    }

    public func key(kid: String) async throws -> PublicJWK? {
        let now = clock()
        enum Next {
            case answer(PublicJWK?)
            case fetch
            case answerAndRefresh(PublicJWK)
            case failed(String)
        }
        let next: Next = state.withLock { state in
            let usable = state.fetchedAt.map { now - $0 < maxStaleness } ?? false
            if !usable, let failed = state.lastFailure, now - failed < failureBackoff {
                // Nothing usable held and the last read failed just now: no read per request.
                return .failed(state.lastError ?? "the keys could not be read")
            }
            // Due for a read: the keys are old, and no read failed within the unknown-kid interval.
            let due =
                (state.fetchedAt.map { now - $0 >= refreshInterval } ?? true)
                && (state.lastFailure.map { now - $0 >= unknownKidInterval } ?? true)
            if usable, let key = state.keys[kid] { return due ? .answerAndRefresh(key) : .answer(key) }
            if usable, !due {
                // Current keys without this kid: read again only once per interval.
                if let last = state.lastUnknownKidFetch, now - last < unknownKidInterval { return .answer(nil) }
                state.lastUnknownKidFetch = now
            }
            return .fetch
        }
        switch next {
        case .answer(let key): return key
        case .answerAndRefresh(let key):
            Task { _ = try? await self.fetch() }
            return key
        case .failed(let reason): throw FetchError(description: reason)
        case .fetch: break
        }
        do {
            return try await fetch()[kid]
        } catch {
            // Unreachable: what is held keeps working, for a while; nothing held is an outage.
            let held = state.withLock { state in
                state.fetchedAt.map { clock() - $0 < maxStaleness } == true ? state.keys : [:]
            }
            guard !held.isEmpty else { throw error }
            return held[kid]
        }
    }

    /// One fetch at a time: concurrent callers share it.
    private func fetch() async throws -> [String: PublicJWK] {
        let task: Task<[String: PublicJWK], any Error> = state.withLock { state in
            if let fetching = state.fetching { return fetching }
            let task = Task { try await self.download() }
            state.fetching = task
            return task
        }
        let result = await task.result
        let finished = clock()
        state.withLock { state in
            state.fetching = nil
            switch result {
            case .success(let keys):
                state.keys = keys
                state.fetchedAt = finished
                state.failingSince = nil
                state.lastError = nil
                state.lastFailure = nil
            case .failure(let error):
                state.failingSince = state.failingSince ?? finished
                state.lastFailure = finished
                state.lastError = (error as? FetchError)?.description ?? "the keys could not be read (\(type(of: error)))"
            }
        }
        return try result.get()
    }

    private func download() async throws -> [String: PublicJWK] {
        // Keys decide what is trusted: https only, but for loopback (tests, a sidecar).
        guard let components = URLComponents(string: url),
            components.scheme == "https"
                || (components.scheme == "http" && ["127.0.0.1", "localhost", "::1", "[::1]"].contains(components.host ?? ""))
        else { throw FetchError(description: "a JWKS URL must be https (http only on loopback): \(url)") }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/jwk-set+json, application/json")
        let body: ByteBuffer
        do {
            let response = try await client.execute(request, deadline: .now() + TimeAmount(timeout))
            guard response.status == .ok else { throw FetchError(description: "\(url) answered \(response.status.code)") }
            body = try await response.body.collect(upTo: maxBytes)
        } catch let error as FetchError {
            throw error
        } catch is NIOTooManyBytesError {
            throw FetchError(description: "\(url) answered more than \(maxBytes) bytes")
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw FetchError(description: "\(url) did not answer within \(timeout)")
        } catch {
            throw FetchError(description: "\(url) could not be read (\(error))")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any],
            let items = object["keys"] as? [Any]
        else { throw FetchError(description: "\(url) did not answer a JWK set") }
        var keys: [String: PublicJWK] = [:]
        for case let item as [String: Any] in items {
            // Keys Signet cannot use (another type, no kid) are skipped, not fatal.
            guard let key = try? PublicJWK(item, requireKid: true), let kid = key.kid else { continue }
            keys[kid] = key
        }
        return keys
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Token introspection (RFC 7662) at the issuer: `active` or not, each call bounded by
/// `timeout`. Signet answers a client about its own tokens only, so a resource server that
/// checks other agents' tokens introspects with a token Signet takes for it (`bearer`).
public struct IntrospectionClient: TokenLiveness {
    public enum Authentication: Sendable {
        /// HTTP Basic client credentials.
        case clientSecret(id: String, secret: String)
        /// `Authorization: Bearer`.
        case bearer(String)
    }

    public let endpoint: String
    let authentication: Authentication
    let client: HTTPClient
    let timeout: Duration

    public init(endpoint: String, authentication: Authentication, client: HTTPClient = .shared, timeout: Duration = .seconds(2)) {
        self.endpoint = endpoint
        self.authentication = authentication
        self.client = client
        self.timeout = timeout
    }

    public func isActive(_ token: VerifiedAccessToken) async throws -> Bool {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        switch authentication {
        case .clientSecret(let id, let secret):
            let credentials = Data("\(Self.formEncode(id)):\(Self.formEncode(secret))".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic \(credentials)")
        case .bearer(let token):
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "token=\(Self.formEncode(token.token))"))
        let response = try await client.execute(request, deadline: .now() + TimeAmount(timeout))
        guard response.status == .ok else { throw RemoteJWKS.FetchError(description: "\(endpoint) answered \(response.status.code)") }
        let body = try await response.body.collect(upTo: 64 * 1024)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
            throw RemoteJWKS.FetchError(description: "\(endpoint) did not answer JSON")
        }
        return object["active"] as? Bool == true
    }

    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
