import NIOCore
import NIOHTTPTypes
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How many connections each source address holds open on this instance, against a bound
/// (`HTTP_MAX_CONNECTIONS_PER_ADDRESS`): one address cannot take every slot of
/// `HTTP_MAX_CONNECTIONS`. An address is counted as the limiter counts it (IPv6 by its /64, an
/// IPv4 address embedded in NAT64's `64:ff9b::/96` as that IPv4 address); the balancers of
/// `TRUSTED_PROXIES` are not bounded (every client behind them shares their address).
public final class ConnectionsPerAddress: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    /// Most connections one address holds at once.
    public let limit: Int
    let trustedProxies: TrustedProxies

    public init(limit: Int, trustedProxies: TrustedProxies) {
        self.limit = limit
        self.trustedProxies = trustedProxies
    }

    /// The key a connection from `peer` counts against, or nil when it is not bounded.
    func key(peer: String?) -> String? {
        guard let peer, !trustedProxies.contains(peer) else { return nil }
        return TrustedProxies.limiterKey(TrustedProxies.canonical(peer))
    }

    /// Counts a new connection of `key`; false (and not counted) when `key` holds `limit` already.
    func open(_ key: String) -> Bool {
        counts.withLock { counts in
            let current = counts[key, default: 0]
            guard current < limit else { return false }
            counts[key] = current + 1
            return true
        }
    }

    /// Ends a connection that `open` counted.
    func close(_ key: String) {
        counts.withLock { counts in
            let remaining = counts[key, default: 1] - 1
            counts[key] = remaining > 0 ? remaining : nil
        }
    }

    /// Connections `key` holds now.
    public func count(_ key: String) -> Int { counts.withLock { $0[key, default: 0] } }
}

/// What one HTTP connection may make the instance hold, per connection:
/// - **connections per address:** a connection past its address's bound (`ConnectionsPerAddress`)
///   is closed as it opens;
/// - **pipelined requests:** at most `maxPipelined` requests read and not yet answered; at that
///   the connection is not read from until an answer is written (the client waits in TCP, the
///   instance holds nothing more for it); a client whose one write already carried more is
///   reset (`signet_http_pipeline_overflows_total`), since what a read brought is decoded whole;
/// - **write deadline:** while a response is not yet handed to the kernel whole, another must be
///   within `writeTimeout`, or the connection is closed: a client that reads nothing fills the
///   kernel's buffers, and nothing moves after. Hummingbird's idle timer does not run while a
///   response is being written, so without this such a client holds its connection and its
///   buffers for ever.
///
/// Each refusal, pause and close is counted (`signet_http_connections_refused_total`,
/// `signet_http_pipeline_paused_total`, `signet_http_pipeline_overflows_total`,
/// `signet_http_write_timeouts_total`). Each connection's kernel send buffer is fixed
/// (`sendBufferBytes`), so what it can hold there is bounded too.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// `SO_SNDBUF` of every connection: room for several whole responses, bounded.
    static let sendBufferBytes: SocketOptionValue = 256 * 1024

    private let metrics: SignetMetrics
    private let perAddress: ConnectionsPerAddress?
    private let maxPipelined: Int
    private let writeTimeout: TimeAmount
    /// The key this connection was counted under; nil before, or when it is not bounded.
    private var counted: String?
    private var admitted = false
    /// Requests whose head was read and whose answer has not been written whole.
    private var unanswered = 0
    /// A `read` held back while `unanswered` is at the bound.
    private var readHeld = false
    /// Responses whose end was written and not yet handed to the kernel whole.
    private var unsentResponses = 0
    /// The client sent more than `maxPipelined` requests at once: the connection is being reset.
    private var overflowed = false
    private var stalled: Scheduled<Void>?

    init(perAddress: ConnectionsPerAddress?, maxPipelined: Int, writeTimeout: TimeAmount, metrics: SignetMetrics) {
        self.metrics = metrics
        self.perAddress = perAddress
        self.maxPipelined = maxPipelined
        self.writeTimeout = writeTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    private func admit(context: ChannelHandlerContext) {
        guard !admitted else { return }
        admitted = true
        // A fixed send buffer: the kernel's autotuning would let one unread connection hold
        // megabytes of responses (it grew to 2.8 MB on loopback) until the write deadline.
        context.channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: Self.sendBufferBytes).whenFailure { _ in }
        guard let perAddress, let key = perAddress.key(peer: context.channel.remoteAddress?.ipAddress) else { return }
        guard perAddress.open(key) else {
            metrics.connectionsRefusedPerAddress.increment()
            context.close(promise: nil)
            return
        }
        counted = key
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            unanswered += 1
            guard unanswered <= maxPipelined else {
                // More at once than the bound, in what one read brought: the decoder would hand
                // every one of them on, held in memory until answered.
                if !overflowed {
                    overflowed = true
                    metrics.pipelineOverflows.increment()
                    Self.abort(context)
                }
                return
            }
        }
        guard !overflowed else { return }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        guard unanswered < maxPipelined else {
            if !readHeld { metrics.pipelinePaused.increment() }
            readHeld = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        unanswered = max(0, unanswered - 1)
        if readHeld, unanswered < maxPipelined {
            readHeld = false
            context.read()
        }
        // A response is handed to the kernel whole when its end's write completes: that is its
        // progress. Only ends are watched, one promise per response.
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        if unsentResponses == 0 { armWriteDeadline(context: context) }
        unsentResponses += 1
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.unsentResponses -= 1
            self.stalled?.cancel()
            self.stalled = nil
            if self.unsentResponses > 0 { self.armWriteDeadline(context: context) }
        }
        context.write(data, promise: written)
    }

    private func armWriteDeadline(context: ChannelHandlerContext) {
        stalled?.cancel()
        stalled = context.eventLoop.assumeIsolated().scheduleTask(in: writeTimeout) {
            self.stalled = nil
            guard self.unsentResponses > 0 else { return }
            self.metrics.writeTimeouts.increment()
            Self.abort(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    /// Closes with a reset (`SO_LINGER` 0): a plain close would leave the unread responses in the
    /// kernel's send buffer, with the FIN queued behind them, for as long as the kernel keeps an
    /// orphaned socket: the memory this deadline is there to free.
    private static func abort(_ context: ChannelHandlerContext) {
        guard let socket = context.channel as? any SocketOptionProvider else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func release() {
        stalled?.cancel()
        stalled = nil
        if let counted {
            perAddress?.close(counted)
            self.counted = nil
        }
    }
}
