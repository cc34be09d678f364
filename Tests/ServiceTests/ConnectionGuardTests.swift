import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import XCTest

@testable import Service

/// `ConnectionGuard`'s rules on an `EmbeddedChannel`, whose loop's time moves only when a test
/// moves it: the pipelining bound's held reads and resets, and the write deadline, exact.
final class ConnectionGuardTests: XCTestCase {
    /// Counts the `read()`s that reach the head of the pipeline (what the socket would be asked).
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    func makeChannel(maxPipelined: Int = 2, writeTimeout: TimeAmount = .seconds(10)) throws -> (
        EmbeddedChannel, ReadCounter, SignetMetrics
    ) {
        let metrics = SignetMetrics()
        let counter = ReadCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionGuard(perAddress: nil, maxPipelined: maxPipelined, writeTimeout: writeTimeout, metrics: metrics))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, counter, metrics)
    }

    let head = HTTPRequestPart.head(HTTPRequest(method: .get, scheme: nil, authority: "signet", path: "/health/live"))

    func testReadsAreHeldAtTheBoundAndResumeWithAnAnswer() throws {
        let (channel, counter, metrics) = try makeChannel(maxPipelined: 2)
        try channel.writeInbound(head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.read()
        XCTAssertEqual(counter.reads, 1, "one unanswered: read on")
        try channel.writeInbound(head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.read()
        XCTAssertEqual(counter.reads, 1, "two unanswered, the bound: the read is held")
        XCTAssertEqual(try Self.value(metrics, "signet_http_pipeline_paused_total"), 1)
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        XCTAssertEqual(counter.reads, 1)
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        XCTAssertEqual(counter.reads, 2, "an answer written: the held read goes on")
        XCTAssertTrue(channel.isActive)
    }

    func testMoreAtOnceThanTheBoundResetsTheConnection() throws {
        let (channel, _, metrics) = try makeChannel(maxPipelined: 2)
        try channel.writeInbound(head)
        try channel.writeInbound(head)
        XCTAssertTrue(channel.isActive)
        try channel.writeInbound(head)
        XCTAssertFalse(channel.isActive, "a third request unanswered: reset")
        XCTAssertEqual(try Self.value(metrics, "signet_http_pipeline_overflows_total"), 1)
        XCTAssertNotNil(try channel.readInbound(as: HTTPRequestPart.self))
        XCTAssertNotNil(try channel.readInbound(as: HTTPRequestPart.self))
        XCTAssertNil(try channel.readInbound(as: HTTPRequestPart.self), "the third never reached the application")
    }

    func testAResponseThatMakesNoProgressClosesTheConnectionAtItsDeadline() throws {
        let (channel, _, metrics) = try makeChannel(writeTimeout: .seconds(10))
        try channel.writeInbound(head)
        // Written and not flushed: nothing is handed to the "kernel", as for a client that reads nothing.
        channel.write(HTTPResponsePart.head(HTTPResponse(status: .ok)), promise: nil)
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertTrue(channel.isActive, "within the deadline")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "no progress for 10 s: closed")
        XCTAssertEqual(try Self.value(metrics, "signet_http_write_timeouts_total"), 1)
    }

    func testEachResponseHandedOverIsProgress() throws {
        let (channel, _, metrics) = try makeChannel(maxPipelined: 4, writeTimeout: .seconds(10))
        for _ in 0..<2 { try channel.writeInbound(head) }
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        channel.flush()  // the first is handed over: progress
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        XCTAssertTrue(channel.isActive, "12 s since the first, 6 s since the last progress")
        channel.flush()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        XCTAssertTrue(channel.isActive, "nothing left unsent: no deadline")
        XCTAssertEqual(try Self.value(metrics, "signet_http_write_timeouts_total"), 0)
    }

    func testConnectionsPerAddressAreCountedAsTheLimiterKeysThem() throws {
        let perAddress = ConnectionsPerAddress(limit: 1, trustedProxies: TrustedProxies("10.0.0.1")!)
        XCTAssertEqual(perAddress.key(peer: "2001:db8::1"), "2001:db8::/64")
        XCTAssertEqual(perAddress.key(peer: "64:ff9b::c000:201"), "192.0.2.1")
        XCTAssertNil(perAddress.key(peer: "10.0.0.1"), "the balancer is not bounded")
        XCTAssertTrue(perAddress.open("192.0.2.1"))
        XCTAssertFalse(perAddress.open("192.0.2.1"))
        perAddress.close("192.0.2.1")
        XCTAssertTrue(perAddress.open("192.0.2.1"))
    }

    static func value(_ metrics: SignetMetrics, _ series: String) throws -> Double {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix(series + " ") }, "\(series) in \(text)")
        return try XCTUnwrap(Double(line.split(separator: " ").last ?? ""))
    }
}
