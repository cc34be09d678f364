import NIOConcurrencyHelpers
import NIOCore

/// A TCP proxy between Signet and a dependency (Redis, PostgreSQL, a fake), whose behaviour is
/// switched at run time without restarting anything: the scenarios' shorthand for the toxics of
/// a `ToxicProxy`, the one implementation `signet-sim proxy` serves behind Toxiproxy's API, so
/// a fault a scenario injects locally is the fault a staging proxy injects.
///
/// - `pass`: bytes flow both ways (no toxic).
/// - `latency(d)`: every chunk is held for `d` in each direction, order kept (a `latency` toxic
///   per stream).
/// - `blackhole`: connections are accepted and what they send is dropped, nothing is answered
///   (a `timeout` toxic of 0 per stream).
/// - `refuse`: the listener is closed (connect gets "connection refused") and open connections
///   are reset, as when the server is down (the proxy disabled); any other mode listens again on
///   the same port.
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

        /// The toxics that make the mode.
        var toxics: [Toxic] {
            switch self {
            case .pass, .refuse:
                []
            case .latency(let delay):
                [Toxic.Stream.upstream, .downstream].map { stream in
                    Toxic(
                        name: "fault-latency-\(stream.rawValue)", kind: .latency, stream: stream,
                        attributes: ["latency": Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)]
                    )
                }
            case .blackhole:
                [Toxic.Stream.upstream, .downstream].map { Toxic(name: "fault-blackhole-\($0.rawValue)", kind: .timeout, stream: $0) }
            }
        }
    }

    /// The port the proxy listens on; it stays the same across `refuse` and back.
    public let port: Int
    public let host = "127.0.0.1"
    public let upstreamHost: String
    public let upstreamPort: Int
    /// The proxy the modes are toxics of.
    public let toxicProxy: ToxicProxy
    private let current = NIOLockedValueBox(Mode.pass)

    private init(port: Int, upstreamHost: String, upstreamPort: Int, proxy: ToxicProxy) {
        self.port = port
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        toxicProxy = proxy
    }

    /// Starts a proxy to `upstreamHost:upstreamPort`, listening on `port` (0: any free port).
    public static func start(upstreamHost: String = "127.0.0.1", upstreamPort: Int, port: Int = 0) async throws -> FaultProxy {
        let proxy = ToxicProxy(
            name: "fault-\(upstreamPort)", listenHost: "127.0.0.1", listenPort: port,
            upstream: ToxiproxyAddress.format(host: upstreamHost, port: upstreamPort), random: { Double.random(in: 0..<1) })
        try await proxy.setEnabled(true)
        let listening = ToxiproxyAddress.parse(proxy.listen)?.port ?? port
        return FaultProxy(port: listening, upstreamHost: upstreamHost, upstreamPort: upstreamPort, proxy: proxy)
    }

    /// The current mode.
    public var mode: Mode { current.withLockedValue { $0 } }

    /// Client connections accepted since start.
    public var acceptedConnections: Int { toxicProxy.acceptedConnections }

    /// Number of client connections open through the proxy.
    public var openConnections: Int { toxicProxy.openConnections }

    /// Switches the behaviour; every open connection has it when this returns. The new mode's toxics are added before
    /// the old ones are removed, so no byte slips through between two faults.
    public func setMode(_ mode: Mode) async throws {
        current.withLockedValue { $0 = mode }
        if mode == .refuse {
            toxicProxy.resetConnections()
            try await toxicProxy.setEnabled(false)
        } else {
            try await toxicProxy.setEnabled(true)
        }
        let wanted = mode.toxics
        for toxic in wanted where !toxicProxy.toxics.contains(toxic) {
            try? await toxicProxy.removeToxic(named: toxic.name)
            try await toxicProxy.addToxic(toxic)
        }
        for toxic in toxicProxy.toxics where !wanted.contains(toxic) { try? await toxicProxy.removeToxic(named: toxic.name) }
    }

    /// Drops every open connection now, with a TCP reset.
    public func reset() { toxicProxy.resetConnections() }

    /// Closes the listener and every connection.
    public func stop() async {
        toxicProxy.resetConnections()
        try? await toxicProxy.setEnabled(false)
    }
}
