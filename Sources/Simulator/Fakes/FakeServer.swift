import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Runs a Hummingbird router on a loopback port behind a `FaultProxy`, so a fake can be slowed,
/// black-holed or taken down ("connection refused") like the real service. Without the proxy
/// (`proxied: false`, for load runs, where the proxy's copying costs CPU) it cannot be taken down.
final class FakeServer: Sendable {
    let proxy: FaultProxy?
    private let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(proxy: FaultProxy?, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.proxy = proxy
        self.port = port
        self.group = group
        self.task = task
    }

    static func start(name: String, router: Router<BasicRequestContext>, proxied: Bool = true) async throws -> FakeServer {
        let port = try freePort()
        var logger = Logger(label: "signet-sim.\(name)")
        logger.logLevel = .warning
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: name),
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let task = Task { try await group.run() }
        do {
            try await waitUntil("the \(name) fake listens", timeout: .seconds(10)) {
                try await blocking { tcpExchange(port: port) != nil }
            }
            let proxy = proxied ? try await FaultProxy.start(upstreamPort: port) : nil
            return FakeServer(proxy: proxy, port: port, group: group, task: task)
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            throw error
        }
    }

    /// The address clients use: the proxy's, when there is one.
    var url: String { "http://127.0.0.1:\(proxy?.port ?? port)" }

    /// `true`: connections are refused, as when the service is down.
    func setDown(_ down: Bool) async throws {
        guard let proxy else { throw SimulatorError.setupFailed("this fake runs without its fault proxy") }
        try await proxy.setMode(down ? .refuse : .pass)
    }

    func stop() async {
        await proxy?.stop()
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// Encodes a JSON object body.
func jsonBody(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(
        status: status,
        headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(bytes: data))
    )
}
