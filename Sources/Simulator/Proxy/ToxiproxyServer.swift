import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// `signet-sim proxy`: fault proxies behind Toxiproxy's HTTP API, with its routes, JSON shapes and
/// status codes, so a Toxiproxy client written by someone else works unchanged against it:
///
/// - `GET /version`; `POST /reset` (every proxy enabled, every toxic removed; 204);
/// - `GET /proxies` (`{name: proxy}`), `POST /proxies` (`{"name", "listen", "upstream", "enabled"}`;
///   201, 409 on a duplicate name);
/// - `GET /proxies/{proxy}`, `POST /proxies/{proxy}` (`enabled`, `listen`, `upstream`; disabling
///   refuses new connections and closes open ones), `DELETE /proxies/{proxy}` (204);
/// - `GET /proxies/{proxy}/toxics`, `POST /proxies/{proxy}/toxics` (200, 409 on a duplicate name);
/// - `GET /proxies/{proxy}/toxics/{toxic}`, `POST` (attributes, toxicity), `DELETE` (204).
///
/// Errors are `{"error": message, "status": code}`. A proxy is `{"name", "listen", "upstream",
/// "enabled", "toxics"}`, a toxic `{"name", "type", "stream", "toxicity", "attributes"}` (`Toxic`).
public final class ToxiproxyServer: Sendable {
    /// What `GET /version` answers.
    public static let version = "2.12.0-signet-sim"

    private let proxies = NIOLockedValueBox<[String: ToxicProxy]>([:])
    private let random: @Sendable () -> Double
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    /// The API's `host:port`.
    public let api: String

    private init(api: String, random: @escaping @Sendable () -> Double, group: ServiceGroup, task: Task<Void, any Error>) {
        self.api = api
        self.random = random
        self.group = group
        self.task = task
    }

    /// The API's base URL.
    public var url: String { "http://\(api)" }

    /// Starts the API on `host:port` (0: a free port).
    public static func start(
        host: String = "127.0.0.1", port: Int = 8474, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) async throws -> ToxiproxyServer {
        let chosen = port == 0 ? try freePort() : port
        let registry = Registry(random: random)
        var logger = Logger(label: "signet-sim.proxy")
        logger.logLevel = .warning
        let application = Application(
            router: registry.router(),
            configuration: .init(address: .hostname(host, port: chosen), serverName: "signet-sim-proxy"),
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let task = Task { try await group.run() }
        let api = ToxiproxyAddress.format(host: host, port: chosen)
        do {
            try await waitUntil("the proxy API listens on \(api)", timeout: .seconds(10)) {
                (try? await HTTP.request(.GET, "http://\(api)/version", timeout: .seconds(1)).status) == 200
            }
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            throw error
        }
        let server = ToxiproxyServer(api: api, random: random, group: group, task: task)
        registry.server.withLockedValue { $0 = server }
        return server
    }

    /// The proxy named `name`.
    public func proxy(_ name: String) -> ToxicProxy? { proxies.withLockedValue { $0[name] } }

    /// Creates and (when `enabled`) starts a proxy.
    @discardableResult
    public func create(name: String, listen: String, upstream: String, enabled: Bool = true) async throws -> ToxicProxy {
        guard Toxic.isName(name) else { throw ToxiproxyError(400, "missing required field: name (1–64 of [A-Za-z0-9_.-])") }
        guard let (host, port) = ToxiproxyAddress.parse(listen) else {
            throw ToxiproxyError(400, "bad request body: listen must be host:port")
        }
        guard ToxiproxyAddress.parse(upstream) != nil else { throw ToxiproxyError(400, "missing required field: upstream (host:port)") }
        let proxy = ToxicProxy(name: name, listenHost: host, listenPort: port, upstream: upstream, random: random)
        try proxies.withLockedValue { proxies throws in
            guard proxies[name] == nil else { throw ToxiproxyError(409, "proxy already exists") }
            proxies[name] = proxy
        }
        if enabled {
            do {
                try await proxy.setEnabled(true)
            } catch {
                _ = proxies.withLockedValue { $0.removeValue(forKey: name) }
                throw error
            }
        }
        return proxy
    }

    public func delete(_ name: String) async throws {
        guard let proxy = proxies.withLockedValue({ $0.removeValue(forKey: name) }) else { throw ToxiproxyError(404, "proxy not found") }
        try await proxy.setEnabled(false)
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    public func reset() async throws {
        for proxy in proxies.withLockedValue({ Array($0.values) }) {
            await proxy.removeAllToxics()
            try await proxy.setEnabled(true)
        }
    }

    public func stop() async {
        for proxy in proxies.withLockedValue({ Array($0.values) }) { try? await proxy.setEnabled(false) }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    /// The routes, bound to the server once it exists.
    private final class Registry: Sendable {
        let server = NIOLockedValueBox<ToxiproxyServer?>(nil)
        let random: @Sendable () -> Double

        init(random: @escaping @Sendable () -> Double) { self.random = random }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.get("/version") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: ToxiproxyServer.version))
                )
            }
            router.post("/reset") { _, _ in
                try await self.answer(.noContent) { server in try await server.reset() }
            }
            router.get("/proxies") { _, _ in
                try await self.answer(.ok) { server in
                    Dictionary(uniqueKeysWithValues: server.proxies.withLockedValue { Array($0.values) }.map { ($0.name, $0.json) })
                }
            }
            router.post("/proxies") { request, context in
                let body = try await self.body(request, context)
                return try await self.answer(.created) { server in
                    let enabled = body["enabled"] as? Bool ?? true
                    return try await server.create(
                        name: body["name"] as? String ?? "", listen: body["listen"] as? String ?? "127.0.0.1:0",
                        upstream: body["upstream"] as? String ?? "", enabled: enabled
                    ).json
                }
            }
            router.get("/proxies/{proxy}") { _, context in
                try await self.answer(.ok) { server in try server.named(context).json }
            }
            router.post("/proxies/{proxy}") { request, context in
                let body = try await self.body(request, context)
                return try await self.answer(.ok) { server in
                    let proxy = try server.named(context)
                    try await proxy.update(listen: body["listen"] as? String, upstream: body["upstream"] as? String)
                    if let enabled = body["enabled"] as? Bool { try await proxy.setEnabled(enabled) }
                    return proxy.json
                }
            }
            router.delete("/proxies/{proxy}") { _, context in
                try await self.answer(.noContent) { server in
                    try await server.delete(context.parameters.get("proxy") ?? "")
                }
            }
            router.get("/proxies/{proxy}/toxics") { _, context in
                try await self.answer(.ok) { server in try server.named(context).toxics.map(\.json) }
            }
            router.post("/proxies/{proxy}/toxics") { request, context in
                let body = try await self.body(request, context)
                return try await self.answer(.ok) { server in
                    let proxy = try server.named(context)
                    let toxic = try Toxic(json: body)
                    try await proxy.addToxic(toxic)
                    return toxic.json
                }
            }
            router.get("/proxies/{proxy}/toxics/{toxic}") { _, context in
                try await self.answer(.ok) { server in
                    let name = context.parameters.get("toxic") ?? ""
                    guard let toxic = try server.named(context).toxics.first(where: { $0.name == name }) else {
                        throw ToxiproxyError(404, "toxic not found")
                    }
                    return toxic.json
                }
            }
            router.post("/proxies/{proxy}/toxics/{toxic}") { request, context in
                let body = try await self.body(request, context)
                return try await self.answer(.ok) { server in
                    try await server.named(context).updateToxic(named: context.parameters.get("toxic") ?? "", with: body).json
                }
            }
            router.delete("/proxies/{proxy}/toxics/{toxic}") { _, context in
                try await self.answer(.noContent) { server in
                    try await server.named(context).removeToxic(named: context.parameters.get("toxic") ?? "")
                }
            }
            return router
        }

        /// The request's JSON object (an empty body is an empty object, as Toxiproxy reads it).
        func body(_ request: Request, _ context: BasicRequestContext) async throws -> [String: Any] {
            var request = request
            let buffer = try await request.collectBody(upTo: 64 * 1024)
            guard buffer.readableBytes > 0 else { return [:] }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] else {
                throw ToxiproxyError(400, "bad request body: not a JSON object")
            }
            return object
        }

        /// Runs `body` against the server; its value is the JSON answered with `status`, a
        /// `ToxiproxyError` the error answered.
        func answer(_ status: HTTPResponse.Status, _ body: (ToxiproxyServer) async throws -> Any) async throws -> Response {
            guard let server = server.withLockedValue({ $0 }) else { return Self.json(["error": "starting", "status": 503], status: 503) }
            do {
                let value = try await body(server)
                if status == .noContent { return Response(status: .noContent) }
                return Self.json(value, status: status.code)
            } catch let error as ToxiproxyError {
                return Self.json(["error": error.message, "status": error.status], status: error.status)
            }
        }

        static func json(_ value: Any, status: Int) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Response(
                status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

extension ToxiproxyServer {
    fileprivate func named(_ context: BasicRequestContext) throws(ToxiproxyError) -> ToxicProxy {
        guard let name = context.parameters.get("proxy"), let proxy = proxy(name) else { throw ToxiproxyError(404, "proxy not found") }
        return proxy
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
