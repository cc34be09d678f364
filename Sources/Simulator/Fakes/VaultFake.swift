import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// An HTTP fake of the Vault endpoints Signet uses: `GET /v1/sys/health` with Vault's status
/// codes, and KV version 2 (`/v1/<mount>/data/<path>`, `/v1/<mount>/metadata/<path>`) behind
/// an `X-Vault-Token` check.
///
/// Knobs: `latency` (every answer), `sealed`, `initialized`, `standby`, `down` (connection
/// refused). Seeded from `fixtures/vault/*.json`.
public final class VaultFake: Sendable {
    /// One stored version of a secret.
    struct Version: Sendable {
        var data: [String: String]
        var created: Date
        var deleted: Date?
    }

    struct State: Sendable {
        var token: String
        var latency: Duration = .zero
        var sealed = false
        var initialized = true
        var standby = false
        /// `sys/health` requests answered.
        var healthChecks = 0
        /// "mount/path" → versions, oldest first.
        var secrets: [String: [Version]] = [:]
    }

    private let state: NIOLockedValueBox<State>
    private let server: FakeServer

    /// The address Signet's `VAULT_ADDR` points at.
    public var url: String { server.url }
    public var token: String { state.withLockedValue { $0.token } }

    private init(state: NIOLockedValueBox<State>, server: FakeServer) {
        self.state = state
        self.server = server
    }

    public static func start(token: String = "sim-vault-token", seedDirectory: URL? = nil) async throws -> VaultFake {
        let state = NIOLockedValueBox(State(token: token))
        if let seedDirectory { try seed(state, from: seedDirectory) }
        let router = Router()
        router.get("/v1/sys/health") { _, _ in
            let (delay, sealed, initialized, standby) = state.withLockedValue { state in
                state.healthChecks += 1
                return (state.latency, state.sealed, state.initialized, state.standby)
            }
            try await Task.sleep(for: delay)
            let body: [String: Any] = ["initialized": initialized, "sealed": sealed, "standby": standby, "version": "1.15.0-fake"]
            if !initialized { return jsonBody(body, status: .notImplemented) }
            if sealed { return jsonBody(body, status: .serviceUnavailable) }
            if standby { return jsonBody(body, status: .tooManyRequests) }
            return jsonBody(body)
        }
        router.get("/v1/auth/token/lookup-self") { request, _ in
            let (delay, token) = state.withLockedValue { ($0.latency, $0.token) }
            try await Task.sleep(for: delay)
            guard request.headers[.init("X-Vault-Token")!] == token else {
                return jsonBody(["errors": ["permission denied"]], status: .forbidden)
            }
            return jsonBody(["data": ["policies": ["signet"], "ttl": 0]])
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            router.on("/v1/{mount}/{kind}/**", method: method) { request, context in
                try await handleKV(state: state, request: request, context: context)
            }
        }
        let server = try await FakeServer.start(name: "vault", router: router)
        return VaultFake(state: state, server: server)
    }

    // MARK: Knobs

    public func setLatency(_ latency: Duration) { state.withLockedValue { $0.latency = latency } }
    public func setSealed(_ sealed: Bool) { state.withLockedValue { $0.sealed = sealed } }
    public func setInitialized(_ initialized: Bool) { state.withLockedValue { $0.initialized = initialized } }
    public func setStandby(_ standby: Bool) { state.withLockedValue { $0.standby = standby } }
    public func setDown(_ down: Bool) async throws { try await server.setDown(down) }
    /// Replaces the accepted token, as when Signet's token expired or was revoked.
    public func setToken(_ token: String) { state.withLockedValue { $0.token = token } }

    /// How many `sys/health` requests were answered.
    public var healthCheckCount: Int { state.withLockedValue { $0.healthChecks } }

    /// The latest live version of a secret.
    public func secret(mount: String = "secret", path: String) -> [String: String]? {
        state.withLockedValue { state in
            guard let latest = state.secrets["\(mount)/\(path)"]?.last, latest.deleted == nil else { return nil }
            return latest.data
        }
    }

    /// Stores a secret as a new version.
    public func put(mount: String = "secret", path: String, data: [String: String]) {
        state.withLockedValue { $0.secrets["\(mount)/\(path)", default: []].append(Version(data: data, created: Date())) }
    }

    /// How many versions `path` has.
    public func versionCount(mount: String = "secret", path: String) -> Int {
        state.withLockedValue { $0.secrets["\(mount)/\(path)"]?.count ?? 0 }
    }

    public func stop() async { await server.stop() }

    // MARK: KV v2

    private static func handleKV(state: NIOLockedValueBox<State>, request: Request, context: BasicRequestContext) async throws -> Response {
        let (delay, token, sealed) = state.withLockedValue { ($0.latency, $0.token, $0.sealed) }
        try await Task.sleep(for: delay)
        if sealed { return jsonBody(["errors": ["Vault is sealed"]], status: .serviceUnavailable) }
        guard request.headers[.init("X-Vault-Token")!] == token else {
            return jsonBody(["errors": ["permission denied"]], status: .forbidden)
        }
        let mount = try context.parameters.require("mount")
        let kind = try context.parameters.require("kind")
        let path = context.parameters.getCatchAll().joined(separator: "/")
        let key = "\(mount)/\(path)"
        switch (kind, request.method) {
        case ("data", .get):
            let found = state.withLockedValue { state -> (Version, Int)? in
                guard let versions = state.secrets[key], let latest = versions.last, latest.deleted == nil else { return nil }
                return (latest, versions.count)
            }
            guard let (version, number) = found else { return jsonBody(["errors": [String]()], status: .notFound) }
            return jsonBody([
                "data": [
                    "data": version.data,
                    "metadata": ["created_time": iso(version.created), "deletion_time": "", "destroyed": false, "version": number],
                ]
            ])
        case ("data", .post), ("data", .put):
            var request = request
            let buffer = try await request.collectBody(upTo: 1 << 20)
            guard let body = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any],
                let data = body["data"] as? [String: Any]
            else { return jsonBody(["errors": ["no data provided"]], status: .badRequest) }
            let strings = data.mapValues { "\($0)" }
            let now = Date()
            // Check-and-set (`options.cas`): written only if the current version is `cas`
            // (0: only if the secret does not exist yet), atomically with the write.
            let cas = (body["options"] as? [String: Any])?["cas"] as? Int
            let number = state.withLockedValue { state -> Int? in
                let current = state.secrets[key]?.count ?? 0
                if let cas, cas != current { return nil }
                state.secrets[key, default: []].append(Version(data: strings, created: now))
                return current + 1
            }
            guard let number else {
                return jsonBody(["errors": ["check-and-set parameter did not match the current version"]], status: .badRequest)
            }
            return jsonBody(["data": ["created_time": iso(now), "deletion_time": "", "destroyed": false, "version": number]])
        case ("data", .delete):
            state.withLockedValue { state in
                if var versions = state.secrets[key], !versions.isEmpty {
                    versions[versions.count - 1].deleted = Date()
                    state.secrets[key] = versions
                }
            }
            return Response(status: .noContent)
        case ("metadata", .get):
            let versions = state.withLockedValue { $0.secrets[key] }
            guard let versions, !versions.isEmpty else { return jsonBody(["errors": [String]()], status: .notFound) }
            var listed: [String: Any] = [:]
            for (index, version) in versions.enumerated() {
                listed[String(index + 1)] = [
                    "created_time": iso(version.created), "deletion_time": version.deleted.map(iso) ?? "", "destroyed": false,
                ]
            }
            return jsonBody(["data": ["current_version": versions.count, "oldest_version": 1, "versions": listed]])
        case ("metadata", .delete):
            _ = state.withLockedValue { $0.secrets.removeValue(forKey: key) }
            return Response(status: .noContent)
        default:
            return jsonBody(["errors": ["unsupported path"]], status: .notFound)
        }
    }

    /// Seed files: `{"secrets": [{"mount": "secret", "path": "signet/config", "data": {...}}]}`.
    static func seed(_ state: NIOLockedValueBox<State>, from directory: URL) throws {
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
        for file in files {
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
            for secret in object?["secrets"] as? [[String: Any]] ?? [] {
                guard let path = secret["path"] as? String, let data = secret["data"] as? [String: Any] else {
                    throw SimulatorError.setupFailed("\(file.lastPathComponent): each secret needs a path and data")
                }
                let mount = secret["mount"] as? String ?? "secret"
                state.withLockedValue {
                    $0.secrets["\(mount)/\(path)", default: []].append(Version(data: data.mapValues { "\($0)" }, created: Date()))
                }
            }
        }
    }

    private static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
