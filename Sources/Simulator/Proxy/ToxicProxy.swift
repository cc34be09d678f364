import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One proxy of `signet-sim proxy` (Toxiproxy's model): it listens on `listen`, connects each
/// client to `upstream`, and passes bytes both ways through the toxics each connection has
/// (`ToxicFlow` decides each chunk's fate; this is its SwiftNIO shell). Toxics added or removed
/// apply to open connections at once. Disabled, it does not listen and its open connections are
/// closed; enabled again, it listens on the same port.
public final class ToxicProxy: Sendable {
    public let name: String
    /// The draws of toxicity and jitter (tests and `explore` pass a seeded one).
    let random: @Sendable () -> Double

    private struct State {
        var listenHost: String
        var listenPort: Int
        var upstream: String
        var enabled = false
        var toxics: [Toxic] = []
        var listener: (any Channel)?
        var links: [ObjectIdentifier: Link] = [:]
        var accepted = 0
    }

    private let state: NIOLockedValueBox<State>
    private let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    init(name: String, listenHost: String, listenPort: Int, upstream: String, random: @escaping @Sendable () -> Double) {
        self.name = name
        self.random = random
        state = NIOLockedValueBox(State(listenHost: listenHost, listenPort: listenPort, upstream: upstream))
    }

    /// `host:port` as it listens (the port chosen when 0 was asked for).
    public var listen: String {
        state.withLockedValue { ToxiproxyAddress.format(host: $0.listenHost, port: $0.listenPort) }
    }
    public var upstream: String { state.withLockedValue { $0.upstream } }
    public var enabled: Bool { state.withLockedValue { $0.enabled } }
    public var toxics: [Toxic] { state.withLockedValue { $0.toxics } }
    public var openConnections: Int { state.withLockedValue { $0.links.count } }
    /// Client connections accepted since it was made.
    public var acceptedConnections: Int { state.withLockedValue { $0.accepted } }

    /// Drops every open connection now, with a TCP reset; the toxics and the listener stay.
    public func resetConnections() {
        for link in state.withLockedValue({ Array($0.links.values) }) { link.close(reset: true) }
    }

    /// Toxiproxy's JSON for it, with its toxics.
    public var json: [String: Any] {
        state.withLockedValue { state in
            [
                "name": name, "listen": ToxiproxyAddress.format(host: state.listenHost, port: state.listenPort),
                "upstream": state.upstream, "enabled": state.enabled, "toxics": state.toxics.map(\.json),
            ]
        }
    }

    // MARK: Enabling

    /// Listens (enabled) or stops listening and closes every open connection (disabled).
    public func setEnabled(_ enabled: Bool) async throws {
        let (wasEnabled, host, port) = state.withLockedValue { ($0.enabled, $0.listenHost, $0.listenPort) }
        guard wasEnabled != enabled else { return }
        if enabled {
            let listener: any Channel
            do {
                listener = try await bind(host: host, port: port)
            } catch {
                throw ToxiproxyError(500, "could not listen on \(ToxiproxyAddress.format(host: host, port: port)): \(error)")
            }
            state.withLockedValue { state in
                state.listener = listener
                state.enabled = true
                state.listenPort = listener.localAddress?.port ?? port
            }
        } else {
            let (listener, links) = state.withLockedValue { state -> ((any Channel)?, [Link]) in
                state.enabled = false
                defer {
                    state.listener = nil
                    state.links.removeAll()
                }
                return (state.listener, Array(state.links.values))
            }
            try? await listener?.close()
            for link in links { link.close(reset: false) }
        }
    }

    /// A new listen address or upstream; the proxy listens again when the address changed.
    public func update(listen: String?, upstream: String?) async throws {
        if let upstream {
            guard ToxiproxyAddress.parse(upstream) != nil else { throw ToxiproxyError(400, "bad request body: upstream must be host:port") }
            state.withLockedValue { $0.upstream = upstream }
        }
        if let listen {
            guard let (host, port) = ToxiproxyAddress.parse(listen) else {
                throw ToxiproxyError(400, "bad request body: listen must be host:port")
            }
            let current = state.withLockedValue { ($0.listenHost, $0.listenPort, $0.enabled) }
            guard current.0 != host || (port != 0 && current.1 != port) else { return }
            let enabled = current.2
            if enabled { try await setEnabled(false) }
            state.withLockedValue { state in
                state.listenHost = host
                state.listenPort = port
            }
            if enabled { try await setEnabled(true) }
        }
    }

    // MARK: Toxics

    /// Adds a toxic; every open connection has it (or not, by its toxicity) before this returns.
    public func addToxic(_ toxic: Toxic) async throws {
        let links = try state.withLockedValue { state throws -> [Link] in
            guard !state.toxics.contains(where: { $0.name == toxic.name }) else { throw ToxiproxyError(409, "toxic already exists") }
            state.toxics.append(toxic)
            return Array(state.links.values)
        }
        await Self.apply(to: links, removing: [], adding: [toxic])
    }

    public func updateToxic(named name: String, with body: [String: Any]) async throws -> Toxic {
        let (toxic, links) = try state.withLockedValue { state throws -> (Toxic, [Link]) in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else { throw ToxiproxyError(404, "toxic not found") }
            try state.toxics[index].update(json: body)
            return (state.toxics[index], Array(state.links.values))
        }
        await Self.apply(to: links, removing: [name], adding: [toxic])
        return toxic
    }

    /// Removes a toxic; no open connection has it once this returns.
    public func removeToxic(named name: String) async throws {
        let links = try state.withLockedValue { state throws -> [Link] in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else { throw ToxiproxyError(404, "toxic not found") }
            state.toxics.remove(at: index)
            return Array(state.links.values)
        }
        await Self.apply(to: links, removing: [name], adding: [])
    }

    public func removeAllToxics() async {
        let (names, links) = state.withLockedValue { state -> ([String], [Link]) in
            defer { state.toxics.removeAll() }
            return (state.toxics.map(\.name), Array(state.links.values))
        }
        await Self.apply(to: links, removing: names, adding: [])
    }

    /// A change of toxics on open connections, waited for on each one's event loop (as Toxiproxy
    /// waits for its links), so the next byte after the API's answer sees it.
    private static func apply(to links: [Link], removing: [String], adding: [Toxic]) async {
        for link in links { try? await link.apply(removing: removing, adding: adding).get() }
    }

    // MARK: Connections

    private func bind(host: String, port: Int) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { [weak self] child in
                guard let self else { return child.close() }
                return self.accept(child)
            }
            .bind(host: host, port: port)
            .get()
    }

    private func accept(_ client: any Channel) -> EventLoopFuture<Void> {
        let (upstream, toxics) = state.withLockedValue { ($0.upstream, $0.toxics) }
        guard let (host, port) = ToxiproxyAddress.parse(upstream) else { return client.close() }
        let link = Link(proxy: self, client: client, toxics: toxics)
        let id = ObjectIdentifier(link)
        state.withLockedValue { state in
            state.links[id] = link
            state.accepted += 1
        }
        client.closeFuture.whenComplete { _ in
            _ = self.state.withLockedValue { $0.links.removeValue(forKey: id) }
        }
        return ClientBootstrap(group: client.eventLoop)
            .connectTimeout(.seconds(5))
            .channelInitializer { server in
                server.pipeline.addHandler(FlowHandler(link: link, direction: .downstream))
            }
            .connect(host: host, port: port)
            .flatMap { server in
                link.connected(server)
                return client.pipeline.addHandler(FlowHandler(link: link, direction: .upstream)).flatMap {
                    client.setOption(ChannelOptions.autoRead, value: true)
                }
            }
            .flatMapError { _ in client.close() }
    }

    /// One client connection and its upstream connection, with the toxics this connection has
    /// (toxicity drawn once per toxic) and their timers. Everything runs on the client's event loop.
    final class Link: @unchecked Sendable {
        unowned let proxy: ToxicProxy
        let client: any Channel
        var server: (any Channel)?
        var flows: [Toxic.Stream: ToxicFlow]
        /// The toxics this connection has, by name.
        var has: [String: Toxic] = [:]
        var timers: [String: Scheduled<Void>] = [:]
        var closing = false

        init(proxy: ToxicProxy, client: any Channel, toxics: [Toxic]) {
            self.proxy = proxy
            self.client = client
            let now = ContinuousClock.now
            flows = [.upstream: ToxicFlow(start: now), .downstream: ToxicFlow(start: now)]
            for toxic in toxics { adopt(toxic) }
        }

        private func adopt(_ toxic: Toxic) {
            guard toxic.toxicity >= 1 || proxy.random() < toxic.toxicity else { return }
            has[toxic.name] = toxic
            if let (after, reset) = ToxicFlow.timer(toxic) {
                timers[toxic.name] = client.eventLoop.scheduleTask(in: TimeAmount(after)) { [self] in close(reset: reset) }
            }
        }

        func apply(removing: [String], adding: [Toxic]) -> EventLoopFuture<Void> {
            client.eventLoop.submit {
                for name in removing {
                    self.has[name] = nil
                    self.timers.removeValue(forKey: name)?.cancel()
                }
                for toxic in adding { self.adopt(toxic) }
            }
        }

        func connected(_ server: any Channel) {
            client.eventLoop.execute { self.server = server }
        }

        func active(_ direction: Toxic.Stream) -> [Toxic] { has.values.filter { $0.stream == direction } }

        /// A chunk read from one side, on its way to the other.
        func read(_ buffer: ByteBuffer, direction: Toxic.Stream) {
            client.eventLoop.execute { [self] in
                guard !closing, let target = direction == .upstream ? server : client, var flow = flows[direction] else { return }
                let now = ContinuousClock.now
                let action = flow.chunk(buffer.readableBytes, toxics: active(direction), now: now, random: proxy.random)
                flows[direction] = flow
                switch action {
                case .drop:
                    break
                case .reset:
                    close(reset: true)
                case .forward(let bytes, let at, let thenClose):
                    let slice = buffer.getSlice(at: buffer.readerIndex, length: bytes) ?? buffer
                    let send = { [self] in
                        target.writeAndFlush(slice).whenComplete { _ in if thenClose { self.close(reset: false) } }
                    }
                    if at <= now {
                        send()
                    } else {
                        client.eventLoop.scheduleTask(in: TimeAmount(at - now)) { send() }
                    }
                }
            }
        }

        /// One side closed: the other closes too, after `slow_close`'s delay for that direction.
        func closed(direction: Toxic.Stream) {
            client.eventLoop.execute { [self] in
                let delay = ToxicFlow.closeDelay(active(direction))
                if delay == .zero {
                    close(reset: false)
                } else {
                    client.eventLoop.scheduleTask(in: TimeAmount(delay)) { self.close(reset: false) }
                }
            }
        }

        func close(reset: Bool) {
            client.eventLoop.execute { [self] in
                guard !closing else { return }
                closing = true
                for timer in timers.values { timer.cancel() }
                timers.removeAll()
                for channel in [client, server].compactMap({ $0 }) {
                    if reset, let provider = channel as? any SocketOptionProvider {
                        // SO_LINGER 0 turns the close into a TCP reset.
                        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
                    } else {
                        channel.close(promise: nil)
                    }
                }
            }
        }
    }

    /// Reads one side of a link: chunks go to the link's flow for their direction.
    final class FlowHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let link: Link
        let direction: Toxic.Stream

        init(link: Link, direction: Toxic.Stream) {
            self.link = link
            self.direction = direction
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            link.read(unwrapInboundIn(data), direction: direction)
        }

        func channelInactive(context: ChannelHandlerContext) {
            link.closed(direction: direction)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            link.close(reset: false)
        }
    }
}

/// `host:port` as Toxiproxy writes addresses (`[v6]:port` for IPv6); an empty host or
/// `localhost` is 127.0.0.1.
public enum ToxiproxyAddress {
    public static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host == "localhost" { host = "127.0.0.1" }
        return (host, port)
    }

    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
