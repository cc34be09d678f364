import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request has not arrived whole (its body included) within `timeout`
/// of its header: a body sent a byte at a time cannot hold a connection and a route. The idle
/// timeout alone would not end it, since every byte counts as activity.
///
/// A timer is armed only when a read ends with a request still incomplete: most requests arrive
/// whole in one read and cost no timer at all.
final class BodyDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private let metrics: SignetMetrics
    /// When the header of the request still being read arrived; nil between requests.
    private var headerArrived: NIODeadline?
    private var scheduled: Scheduled<Void>?

    init(timeout: TimeAmount, metrics: SignetMetrics) {
        self.timeout = timeout
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            headerArrived = .now()
        case .body:
            break
        case .end:
            headerArrived = nil
            cancelTimer()
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let headerArrived, scheduled == nil {
            scheduled = context.eventLoop.assumeIsolated().scheduleTask(deadline: headerArrived + timeout) {
                self.scheduled = nil
                guard self.headerArrived != nil else { return }
                self.metrics.bodyTimeouts.increment()
                context.close(promise: nil)
            }
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    private func cancelTimer() {
        scheduled?.cancel()
        scheduled = nil
    }
}
