import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import Simulator

/// The fault proxy in front of an echo server: every mode, switched at run time.
final class FaultProxyTests: XCTestCase {
    var echo: (any Channel)!
    var proxy: FaultProxy!

    override func setUp() async throws {
        echo = try await EchoHandler.listen()
        proxy = try await FaultProxy.start(upstreamPort: echo.localAddress!.port!)
    }

    override func tearDown() async throws {
        await proxy.stop()
        try await echo.close()
    }

    func testPassForwardsBothWays() throws {
        let client = try RawClient(port: proxy.port)
        XCTAssertEqual(try client.roundTrip("hello"), "hello")
        XCTAssertEqual(try client.roundTrip("again"), "again")
    }

    func testLatencyDelaysEachDirection() async throws {
        try await proxy.setMode(.latency(.milliseconds(150)))
        let client = try RawClient(port: proxy.port)
        let started = ContinuousClock.now
        XCTAssertEqual(try client.roundTrip("slow"), "slow")
        let elapsed = ContinuousClock.now - started
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(300), "150 ms there and 150 ms back")
        XCTAssertLessThan(elapsed, .seconds(3))
    }

    func testBlackholeAcceptsButNeverAnswers() async throws {
        try await proxy.setMode(.blackhole)
        let client = try RawClient(port: proxy.port, timeout: .milliseconds(300))
        XCTAssertThrowsError(try client.roundTrip("anyone?")) { error in
            XCTAssertEqual(error as? RawClient.Failure, .noAnswer)
        }
        // An existing connection goes quiet too, and speaks again after `pass`.
        try await proxy.setMode(.pass)
        let survivor = try RawClient(port: proxy.port, timeout: .milliseconds(300))
        XCTAssertEqual(try survivor.roundTrip("one"), "one")
        try await proxy.setMode(.blackhole)
        XCTAssertThrowsError(try survivor.roundTrip("two"))
        try await proxy.setMode(.pass)
        XCTAssertEqual(try survivor.roundTrip("three"), "three")
    }

    func testRefuseClosesTheListenerAndPassReopensTheSamePort() async throws {
        let open = try RawClient(port: proxy.port)
        XCTAssertEqual(try open.roundTrip("before"), "before")
        try await proxy.setMode(.refuse)
        XCTAssertThrowsError(try RawClient(port: proxy.port)) { error in
            XCTAssertEqual(error as? RawClient.Failure, .refused)
        }
        XCTAssertThrowsError(try open.roundTrip("during"), "open connections are reset too")
        try await proxy.setMode(.pass)
        XCTAssertEqual(try RawClient(port: proxy.port).roundTrip("after"), "after")
    }

    func testResetDropsOpenConnectionsAndKeepsServing() async throws {
        let client = try RawClient(port: proxy.port)
        XCTAssertEqual(try client.roundTrip("x"), "x")
        try await waitUntil("the proxy tracks the connection") { self.proxy.openConnections == 1 }
        proxy.reset()
        XCTAssertThrowsError(try client.roundTrip("y")) { error in
            XCTAssertEqual(error as? RawClient.Failure, .closed)
        }
        XCTAssertEqual(try RawClient(port: proxy.port).roundTrip("z"), "z")
        XCTAssertEqual(proxy.mode, .pass)
    }
}

final class EchoHandler: ChannelInboundHandler, Sendable {
    /// An echo server on a free loopback port.
    static func listen() async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { $0.pipeline.addHandler(EchoHandler()) }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// A blocking TCP client for tests: connect, send, read what comes back.
final class RawClient {
    enum Failure: Error, Equatable {
        case refused, noAnswer, closed
    }

    let descriptor: Int32

    init(port: Int, timeout: Duration = .seconds(2)) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let microseconds = Int(timeout.components.seconds) * 1_000_000 + Int(timeout.components.attoseconds / 1_000_000_000_000)
        var interval = timeval(tv_sec: microseconds / 1_000_000, tv_usec: microseconds % 1_000_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(descriptor)
            throw Failure.refused
        }
    }

    deinit { close(descriptor) }

    func roundTrip(_ text: String) throws -> String {
        let bytes = Array(text.utf8)
        guard send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw Failure.closed }
        var buffer = [UInt8](repeating: 0, count: 1024)
        var received: [UInt8] = []
        while received.count < bytes.count {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { throw Failure.closed }
            if count < 0 { throw errno == EAGAIN || errno == EWOULDBLOCK ? Failure.noAnswer : Failure.closed }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
