import AsyncHTTPClient
import Foundation
import NIOCore

/// HashiCorp Vault over HTTP (`VAULT_ADDR`, token auth with `VAULT_TOKEN`, KV v2 at
/// `VAULT_KV_MOUNT`). Every call is bounded (`BoundedHTTP`); the token is sent only as
/// `X-Vault-Token` and never appears in an error or a log line.
public struct VaultClient: Sendable {
    public let address: String
    let token: String
    public let mount: String
    /// The bound of one KV call (`VAULT_TIMEOUT_MS`).
    public let timeout: Duration
    let http: HTTPClient
    /// Told each KV call's latency and failure (`signet_dependency_call_*{dependency="vault"}`).
    public var metrics: SignetMetrics?

    public init(address: String, token: String, mount: String, timeout: Duration, http: HTTPClient = VaultClient.sharedHTTP) {
        self.address = address.hasSuffix("/") ? String(address.dropLast()) : address
        self.token = token
        self.mount = mount
        self.timeout = timeout
        self.http = http
    }

    /// The process's client for Vault (never shut down, like `HTTPClient.shared`). It never
    /// follows a redirect: `X-Vault-Token` goes to `VAULT_ADDR` and nowhere else, so a 3xx (a
    /// Vault impostor's, or a standby's) is an error, never a hop with the token.
    public static let sharedHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// `GET /v1/sys/health?standbyok=true&perfstandbyok=true`: 200 is healthy (a standby is
    /// fine) when `auth/token/lookup-self` also accepts the token; sealed (503), uninitialised
    /// (501) and a refused token are failures with that message.
    public func health(timeout: Duration) async throws -> String? {
        // Both in parallel, so a slow Vault costs one round trip's latency, not two.
        var lookup = HTTPClientRequest(url: "\(address)/v1/auth/token/lookup-self")
        lookup.headers.add(name: "X-Vault-Token", value: token)
        async let tokenAnswer = BoundedHTTP.send(lookup, on: http, timeout: timeout)
        let request = HTTPClientRequest(url: "\(address)/v1/sys/health?standbyok=true&perfstandbyok=true")
        let answer = try await BoundedHTTP.send(request, on: http, timeout: timeout)
        switch answer.status {
        case 200:
            let status = try await tokenAnswer.status
            guard status == 200 else {
                throw HealthCheckError("Vault refuses VAULT_TOKEN (HTTP \(status) on auth/token/lookup-self): expired or revoked?")
            }
            return nil
        case 503: throw HealthCheckError("Vault is sealed")
        case 501: throw HealthCheckError("Vault is not initialized")
        default: throw HealthCheckError("Vault answered HTTP \(answer.status) on sys/health")
        }
    }

    /// One KV v2 secret: string values and the version they were read at.
    struct Secret: Sendable {
        let data: [String: String]
        let version: Int
    }

    /// Reads the latest version of `path`; nil when there is none (or it was deleted).
    func read(_ path: String) async throws -> Secret? {
        let answer = try await send(HTTPClientRequest(url: "\(address)/v1/\(mount)/data/\(path)"), path: path)
        if answer.status == 404 { return nil }
        try check(answer, path: path)
        guard let document = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any],
            let envelope = document["data"] as? [String: Any], let data = envelope["data"] as? [String: Any],
            let version = (envelope["metadata"] as? [String: Any])?["version"] as? Int
        else { throw VaultError.malformed("\(mount)/\(path): the answer is not a KV v2 secret") }
        return Secret(data: data.compactMapValues { $0 as? String }, version: version)
    }

    /// Writes a new version of `path` only if its current version is `cas` (0: only if it does
    /// not exist yet): Vault's check-and-set, so concurrent writers cannot overwrite each other.
    /// Throws `VaultError.versionConflict` when another writer came first.
    @discardableResult
    func write(_ path: String, data: [String: String], cas: Int) async throws -> Int {
        var request = HTTPClientRequest(url: "\(address)/v1/\(mount)/data/\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        guard let body = try? JSONSerialization.data(withJSONObject: ["options": ["cas": cas], "data": data]) else {
            throw VaultError.malformed("\(mount)/\(path): the secret could not be encoded")
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let answer = try await send(request, path: path)
        if answer.status == 400, String(decoding: answer.body, as: UTF8.self).contains("check-and-set") {
            throw VaultError.versionConflict(path)
        }
        try check(answer, path: path)
        guard let document = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any],
            let version = (document["data"] as? [String: Any])?["version"] as? Int
        else { throw VaultError.malformed("\(mount)/\(path): the write answer has no version") }
        return version
    }

    private func send(_ request: HTTPClientRequest, path: String) async throws -> BoundedHTTP.Answer {
        var request = request
        request.headers.add(name: "X-Vault-Token", value: token)
        do {
            return try await BoundedHTTP.send(
                request, on: http, timeout: timeout, observe: observer)
        } catch {
            throw VaultError.unavailable("Vault at \(address) did not answer for \(mount)/\(path): \(error)")
        }
    }

    private func check(_ answer: BoundedHTTP.Answer, path: String) throws {
        switch answer.status {
        case 200, 204: return
        case 403: throw VaultError.denied("Vault at \(address) refused VAULT_TOKEN for \(mount)/\(path) (HTTP 403)")
        case 503: throw VaultError.unavailable("Vault at \(address) is sealed or unavailable (HTTP 503)")
        default: throw VaultError.unavailable("Vault at \(address) answered HTTP \(answer.status) for \(mount)/\(path)")
        }
    }
}

/// A failure talking to Vault. Messages name the address and path, never the token or a secret.
public enum VaultError: Error, Sendable, CustomStringConvertible {
    /// No answer in time, connection refused, sealed, or a server error.
    case unavailable(String)
    /// The token was refused.
    case denied(String)
    /// A check-and-set write lost to another writer; read again and retry.
    case versionConflict(String)
    /// An answer or a stored secret did not have the expected shape.
    case malformed(String)

    /// Another writer came first: read again and retry.
    var isVersionConflict: Bool {
        if case .versionConflict = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .unavailable(let message), .denied(let message), .malformed(let message): message
        case .versionConflict(let path): "another instance wrote \(path) first"
        }
    }
}

extension VaultClient {
    /// Reports each call to `metrics` as `vault`.
    var observer: (@Sendable (Duration, Bool) -> Void)? {
        guard let metrics else { return nil }
        return { duration, failed in metrics.dependencyCall("vault", took: duration, failed: failed) }
    }
}
