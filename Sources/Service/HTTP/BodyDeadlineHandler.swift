import Metrics
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request has not arrived whole (its body included) within `timeout`
/// of its header: a body sent a byte at a time cannot hold a connection and a route. The idle
/// timeout alone would not end it, since every byte counts as activity.
final class BodyDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    static let closed = Counter(label: "signet_http_body_timeouts_total")

    private let timeout: TimeAmount
    private var scheduled: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            scheduled?.cancel()
            scheduled = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                Self.closed.increment()
                context.close(promise: nil)
            }
        case .body:
            break
        case .end:
            scheduled?.cancel()
            scheduled = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
    }
}
