import Foundation

/// A client of Toxiproxy's HTTP API (a real Toxiproxy, or `signet-sim proxy`): what `chaos`
/// needs to inject faults into a deployed stack.
public struct ToxiproxyClient: Sendable {
    public let base: String

    public init(base: String) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
    }

    /// The toxics of `proxy` as the API lists them: name and type.
    public func toxics(of proxy: String) async throws -> [(name: String, type: String)] {
        let response = try await HTTP.request(.GET, "\(base)/proxies/\(proxy)/toxics", timeout: .seconds(5))
        guard response.status == 200, let items = (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [[String: Any]]
        else { throw SimulatorError.setupFailed("toxiproxy: GET /proxies/\(proxy)/toxics answered \(response.status) \(response.body)") }
        return items.compactMap { item in
            guard let name = item["name"] as? String, let type = item["type"] as? String else { return nil }
            return (name, type)
        }
    }

    /// Whether the API knows `proxy`.
    public func exists(_ proxy: String) async throws -> Bool {
        try await HTTP.request(.GET, "\(base)/proxies/\(proxy)", timeout: .seconds(5)).status == 200
    }

    public func add(_ toxic: Toxic, to proxy: String) async throws {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: toxic.json, options: [.sortedKeys]), as: UTF8.self)
        let response = try await HTTP.request(.POST, "\(base)/proxies/\(proxy)/toxics", body: body, timeout: .seconds(5))
        guard response.status == 200 else {
            throw SimulatorError.setupFailed("toxiproxy: adding \(toxic.name) to \(proxy) answered \(response.status) \(response.body)")
        }
    }

    /// Removes a toxic; one already gone is not an error.
    public func remove(_ toxic: String, from proxy: String) async throws {
        let response = try await HTTP.request(.DELETE, "\(base)/proxies/\(proxy)/toxics/\(toxic)", timeout: .seconds(5))
        guard [204, 404].contains(response.status) else {
            throw SimulatorError.setupFailed("toxiproxy: removing \(toxic) from \(proxy) answered \(response.status) \(response.body)")
        }
    }

    /// Removes every toxic of `proxies` whose name starts with `prefix`; how many.
    @discardableResult
    public func removeAll(named prefix: String, from proxies: [String]) async throws -> Int {
        var removed = 0
        for proxy in proxies {
            for toxic in try await toxics(of: proxy) where toxic.name.hasPrefix(prefix) {
                try await remove(toxic.name, from: proxy)
                removed += 1
            }
        }
        return removed
    }
}
