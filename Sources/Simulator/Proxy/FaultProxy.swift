import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy between Signet and a dependency (Redis, PostgreSQL, a fake), whose behaviour is
/// switched at run time without restarting anything.
///
/// - `pass`: bytes flow both ways.
/// - `latency(d)`: every chunk is held for `d` in each direction (order kept).
/// - `blackhole`: connections are accepted and read, nothing is forwarded or answered.
/// - `refuse`: the listener is closed (connect gets "connection refused") and open connections
///   are reset, as when the server is down; any other mode listens again on the same port.
///
/// `reset()` drops every open connection at once (TCP RST) and keeps the mode.
public final class FaultProxy: Sendable {
    public enum Mode: Sendable, Equatable, CustomStringConvertible {
        case pass
        case latency(Duration)
        case blackhole
        case refuse

        public var description: String {
            switch self {
            case .pass: "pass"
            case .latency(let delay): "latency(\(delay))"
            case .blackhole: "blackhole"
            case .refuse: "refuse"
            }
        }
    }

    private struct State {
        var mode: Mode = .pass
        var accepted = 0
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    /// The port the proxy listens on; it stays the same across `refuse` and back.
    public let port: Int
    public let host = "127.0.0.1"
    public let upstreamHost: String
    public let upstreamPort: Int
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private init(port: Int, upstreamHost: String, upstreamPort: Int, group: any EventLoopGroup) {
        self.port = port
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        self.group = group
    }

    /// Starts a proxy to `upstreamHost:upstreamPort`, listening on `port` (0: any free port).
    public static func start(upstreamHost: String = "127.0.0.1", upstreamPort: Int, port: Int = 0) async throws -> FaultProxy {
        let group = MultiThreadedEventLoopGroup.singleton
        let box = NIOLockedValueBox<FaultProxy?>(nil)
        let listener = try await bind(port: port, group: group) { box.withLockedValue { $0 } }
        let proxy = FaultProxy(
            port: listener.localAddress?.port ?? port,
            upstreamHost: upstreamHost,
            upstreamPort: upstreamPort,
            group: group
        )
        box.withLockedValue { $0 = proxy }
        proxy.state.withLockedValue { $0.listener = listener }
        return proxy
    }

    /// The current mode.
    public var mode: Mode { state.withLockedValue { $0.mode } }

    /// Client connections accepted since start.
    public var acceptedConnections: Int { state.withLockedValue { $0.accepted } }

    /// Number of client connections open through the proxy.
    public var openConnections: Int { state.withLockedValue { $0.connections.count } / 2 }

    /// Switches the behaviour; effective for the next byte.
    public func setMode(_ mode: Mode) async throws {
        let (listener, wasRefusing) = state.withLockedValue { state -> ((any Channel)?, Bool) in
            let wasRefusing = state.mode == .refuse
            state.mode = mode
            if mode == .refuse {
                let listener = state.listener
                state.listener = nil
                return (listener, wasRefusing)
            }
            return (nil, wasRefusing)
        }
        if mode == .refuse {
            try? await listener?.close()
            reset()
        } else if wasRefusing {
            let bound = try await Self.bind(port: port, group: group) { self }
            state.withLockedValue { $0.listener = bound }
        }
    }

    /// Drops every open connection now, with a TCP reset.
    public func reset() {
        let channels = state.withLockedValue { state in
            let channels = Array(state.connections.values)
            state.connections.removeAll()
            return channels
        }
        for channel in channels {
            // SO_LINGER 0 turns the close into a TCP reset.
            if let provider = channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        }
    }

    /// Closes the listener and every connection.
    public func stop() async {
        let listener = state.withLockedValue { state in
            let listener = state.listener
            state.listener = nil
            return listener
        }
        try? await listener?.close()
        reset()
    }

    // MARK: Plumbing

    private static func bind(
        port: Int,
        group: any EventLoopGroup,
        proxy: @escaping @Sendable () -> FaultProxy?
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { child in
                guard let proxy = proxy() else { return child.close() }
                return proxy.accept(child)
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
    }

    private func accept(_ client: any Channel) -> EventLoopFuture<Void> {
        state.withLockedValue { $0.accepted += 1 }
        track(client)
        if mode == .blackhole {
            // Accept and read, never answer.
            return client.pipeline.addHandler(ForwardHandler(proxy: self, partner: nil)).flatMap {
                client.setOption(ChannelOptions.autoRead, value: true)
            }
        }
        let upstream = ClientBootstrap(group: client.eventLoop)
            .connectTimeout(.seconds(5))
            .channelInitializer { upstream in
                upstream.pipeline.addHandler(ForwardHandler(proxy: self, partner: client))
            }
            .connect(host: upstreamHost, port: upstreamPort)
        return upstream.flatMap { upstream in
            self.track(upstream)
            return client.pipeline.addHandler(ForwardHandler(proxy: self, partner: upstream)).flatMap {
                client.setOption(ChannelOptions.autoRead, value: true)
            }
        }.flatMapError { _ in
            client.close()
        }
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLockedValue { $0.connections[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.state.withLockedValue { _ = $0.connections.removeValue(forKey: id) }
        }
    }

    /// Forwards what one side reads to the other, as the proxy's mode says.
    private final class ForwardHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let proxy: FaultProxy
        let partner: (any Channel)?

        init(proxy: FaultProxy, partner: (any Channel)?) {
            self.proxy = proxy
            self.partner = partner
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            guard let partner else { return }
            switch proxy.mode {
            case .pass:
                partner.writeAndFlush(buffer, promise: nil)
            case .latency(let delay):
                let (seconds, attoseconds) = delay.components
                let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
                partner.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                    partner.writeAndFlush(buffer, promise: nil)
                }
            case .blackhole, .refuse:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            partner?.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
