import Hummingbird
import HummingbirdCore
import NIOCore

/// Builds the whole service: the long-lived parts (`buildServices`), the public router
/// (`buildRouter`), and the two listeners that serve them, with the parts running under the
/// application's service group.
///
/// `main` and the tests call this same function, so what the tests run is what production runs.
public func buildApplication(configuration: SignetConfiguration, dependencies: Dependencies) async throws -> some ApplicationProtocol {
    let services = try await buildServices(configuration: configuration, dependencies: dependencies)
    let connections = configuration.connections
    let logger = dependencies.logger
    let perAddress = ConnectionsPerAddress(limit: connections.maxConnectionsPerAddress, trustedProxies: configuration.trustedProxies)
    let operations = Application(
        router: buildOperationsRouter(services: services, configuration: configuration),
        server: .http1(configuration: .init(idleTimeout: TimeAmount(connections.idleTimeout))),
        configuration: .init(
            address: .hostname(configuration.operationsHost, port: configuration.operationsPort), serverName: "signet-ops",
            availableConnectionsDelegate: MaximumAvailableConnections(connections.maxConnections, logger: logger)),
        logger: logger)
    return Application(
        router: buildRouter(services: services, configuration: configuration),
        server: .http1(
            configuration: .init(
                // Made for each connection.
                additionalChannelHandlers: [
                    ConnectionGuard(
                        perAddress: perAddress, maxPipelined: connections.maxPipelinedRequests,
                        writeTimeout: TimeAmount(connections.writeTimeout), metrics: services.metrics),
                    BodyDeadlineHandler(timeout: TimeAmount(connections.bodyTimeout), metrics: services.metrics),
                ],
                idleTimeout: TimeAmount(connections.idleTimeout))),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "signet",
            availableConnectionsDelegate: MaximumAvailableConnections(connections.maxConnections, logger: logger)),
        services: services.lifecycle + [operations],
        logger: logger)
}
