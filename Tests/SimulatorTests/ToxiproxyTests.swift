import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

@testable import Simulator

/// `signet-sim proxy` (issue 27): the toxics' rules at exact instants, and the API with the calls
/// of Toxiproxy's own README (its JSON bodies, unchanged) against an echo server.
final class ToxiproxyTests: XCTestCase {
    let start = ContinuousClock.now

    // MARK: Rules

    func testEachToxicDecidesAChunkExactly() {
        var flow = ToxicFlow(start: start)
        XCTAssertEqual(flow.chunk(10, toxics: [], now: start, random: { 0 }), .forward(bytes: 10, at: start, thenClose: false))

        let latency = Toxic(kind: .latency, attributes: ["latency": 100, "jitter": 20])
        // random 0 → -jitter; 1 → +jitter (just under); order kept: a later chunk never leaves before an earlier one.
        XCTAssertEqual(
            flow.chunk(1, toxics: [latency], now: start, random: { 0 }), .forward(bytes: 1, at: start + .milliseconds(80), thenClose: false)
        )
        XCTAssertEqual(
            flow.chunk(1, toxics: [latency], now: start + .milliseconds(1), random: { 0 }),
            .forward(bytes: 1, at: start + .milliseconds(81), thenClose: false))
        XCTAssertEqual(
            flow.chunk(1, toxics: [Toxic(kind: .latency, attributes: ["latency": 10])], now: start + .milliseconds(2), random: { 0.5 }),
            .forward(bytes: 1, at: start + .milliseconds(81), thenClose: false), "held behind the chunk before it")

        var slow = ToxicFlow(start: start)
        let bandwidth = Toxic(kind: .bandwidth, attributes: ["rate": 10])  // 10 KB/s: 1000 bytes take 100 ms
        XCTAssertEqual(
            slow.chunk(1000, toxics: [bandwidth], now: start, random: { 0 }),
            .forward(bytes: 1000, at: start + .milliseconds(100), thenClose: false))

        var limited = ToxicFlow(start: start)
        let limit = Toxic(kind: .limitData, attributes: ["bytes": 15])
        XCTAssertEqual(limited.chunk(10, toxics: [limit], now: start, random: { 0 }), .forward(bytes: 10, at: start, thenClose: false))
        XCTAssertEqual(limited.chunk(10, toxics: [limit], now: start, random: { 0 }), .forward(bytes: 5, at: start, thenClose: true))

        XCTAssertEqual(flow.chunk(5, toxics: [Toxic(kind: .timeout)], now: start, random: { 0 }), .drop)
        XCTAssertEqual(flow.chunk(5, toxics: [Toxic(kind: .resetPeer)], now: start, random: { 0 }), .reset)
        XCTAssertNotEqual(flow.chunk(5, toxics: [Toxic(kind: .resetPeer, attributes: ["timeout": 500])], now: start, random: { 0 }), .reset)
        XCTAssertEqual(ToxicFlow.timer(Toxic(kind: .timeout, attributes: ["timeout": 300]))?.after, .milliseconds(300))
        XCTAssertNil(ToxicFlow.timer(Toxic(kind: .timeout)), "timeout 0 holds until removed")
        XCTAssertEqual(ToxicFlow.timer(Toxic(kind: .resetPeer, attributes: ["timeout": 50]))?.reset, true)
        XCTAssertEqual(ToxicFlow.closeDelay([Toxic(kind: .slowClose, attributes: ["delay": 250])]), .milliseconds(250))
    }

    func testAToxicIsReadAsToxiproxyReadsIt() throws {
        let toxic = try Toxic(json: ["type": "latency", "attributes": ["latency": 1000, "unknown": 1]])
        XCTAssertEqual(toxic.name, "latency_downstream")
        XCTAssertEqual(toxic.stream, .downstream)
        XCTAssertEqual(toxic.toxicity, 1)
        XCTAssertEqual(toxic.attributes, ["latency": 1000, "jitter": 0])
        func refusal(_ object: [String: Any]) -> ToxiproxyError? {
            do {
                _ = try Toxic(json: object)
                return nil
            } catch {
                return error
            }
        }
        XCTAssertEqual(refusal(["type": "nope"])?.message, "invalid toxic type")
        XCTAssertEqual(refusal(["type": "latency", "stream": "sideways"])?.status, 400)
        XCTAssertEqual(refusal(["type": "latency", "toxicity": 2])?.status, 400)
        XCTAssertEqual(refusal(["type": "latency", "attributes": ["latency": -1]])?.status, 400)
        XCTAssertEqual(refusal(["type": "latency", "name": "a b"])?.status, 400)
    }

    // MARK: The API

    var echo: (any Channel)!
    var server: ToxiproxyServer!

    override func setUp() async throws {
        echo = try await EchoHandler.listen()
        server = try await ToxiproxyServer.start(port: 0)
    }

    override func tearDown() async throws {
        await server?.stop()
        try await echo?.close()
    }

    func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> HTTP.Response {
        try await HTTP.request(method, server.url + path, body: body, timeout: .seconds(5))
    }

    /// The README's calls: create a proxy, add a latency toxic, see it, remove it.
    func testToxiproxysDocumentedCallsWorkUnchanged() async throws {
        let upstream = "127.0.0.1:\(echo.localAddress!.port!)"
        let version = try await call(.GET, "/version")
        XCTAssertEqual(version.status, 200)
        XCTAssertEqual(version.body, ToxiproxyServer.version)

        let created = try await call(
            .POST, "/proxies", #"{"name": "echo", "listen": "127.0.0.1:0", "upstream": "\#(upstream)", "enabled": true}"#)
        XCTAssertEqual(created.status, 201, created.body)
        XCTAssertEqual(created.json["name"] as? String, "echo")
        XCTAssertEqual(created.json["upstream"] as? String, upstream)
        XCTAssertEqual(created.json["enabled"] as? Bool, true)
        XCTAssertEqual((created.json["toxics"] as? [Any])?.count, 0)
        let listen = try XCTUnwrap(created.json["listen"] as? String)
        let port = try XCTUnwrap(ToxiproxyAddress.parse(listen)?.port)
        XCTAssertNotEqual(port, 0, "the port it chose")
        let duplicate = try await call(.POST, "/proxies", #"{"name": "echo", "listen": "127.0.0.1:0", "upstream": "\#(upstream)"}"#)
        XCTAssertEqual(duplicate.status, 409)
        XCTAssertEqual(duplicate.json["status"] as? Int, 409)
        let answer1 = try await call(.POST, "/proxies", #"{"name": "x"}"#)
        XCTAssertEqual(answer1.status, 400, "no upstream")
        let answer2 = try await call(.GET, "/proxies/nope")
        XCTAssertEqual(answer2.status, 404)
        let answer3 = try await call(.GET, "/proxies")
        XCTAssertEqual(answer3.json.keys.sorted(), ["echo"])
        XCTAssertEqual(try RawClient(port: port).roundTrip("hello"), "hello")

        let toxic = try await call(.POST, "/proxies/echo/toxics", #"{"type": "latency", "attributes": {"latency": 300}}"#)
        XCTAssertEqual(toxic.status, 200, toxic.body)
        XCTAssertEqual(toxic.json["name"] as? String, "latency_downstream")
        let answer4 = try await call(.POST, "/proxies/echo/toxics", #"{"type": "latency"}"#)
        XCTAssertEqual(answer4.status, 409)
        let listed = try await call(.GET, "/proxies/echo/toxics")
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(listed.body.utf8)) as? [[String: Any]])?.count, 1)
        var started = ContinuousClock.now
        XCTAssertEqual(try RawClient(port: port).roundTrip("slow"), "slow")
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(300), "300 ms downstream")

        let updated = try await call(.POST, "/proxies/echo/toxics/latency_downstream", #"{"attributes": {"latency": 0}}"#)
        XCTAssertEqual((updated.json["attributes"] as? [String: Any])?["latency"] as? Int, 0)
        let answer5 = try await call(.DELETE, "/proxies/echo/toxics/latency_downstream")
        XCTAssertEqual(answer5.status, 204)
        let answer6 = try await call(.DELETE, "/proxies/echo/toxics/latency_downstream")
        XCTAssertEqual(answer6.status, 404)
        started = ContinuousClock.now
        XCTAssertEqual(try RawClient(port: port).roundTrip("fast"), "fast")
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(250))
    }

    func testTimeoutResetPeerLimitDataDisableAndReset() async throws {
        let upstream = "127.0.0.1:\(echo.localAddress!.port!)"
        let created = try await call(.POST, "/proxies", #"{"name": "echo", "listen": "127.0.0.1:0", "upstream": "\#(upstream)"}"#)
        let port = try XCTUnwrap(ToxiproxyAddress.parse(try XCTUnwrap(created.json["listen"] as? String))?.port)

        // timeout 0: a black hole, on an open connection too, until removed.
        let open = try RawClient(port: port, timeout: .milliseconds(400))
        XCTAssertEqual(try open.roundTrip("a"), "a")
        _ = try await call(
            .POST, "/proxies/echo/toxics", #"{"name": "hole", "type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}}"#)
        XCTAssertThrowsError(try open.roundTrip("b")) { XCTAssertEqual($0 as? RawClient.Failure, .noAnswer) }
        _ = try await call(.DELETE, "/proxies/echo/toxics/hole")
        XCTAssertEqual(try RawClient(port: port).roundTrip("c"), "c", "flows again once removed")

        // timeout > 0: closed after it.
        _ = try await call(.POST, "/proxies/echo/toxics", #"{"name": "cut", "type": "timeout", "attributes": {"timeout": 200}}"#)
        let cut = try RawClient(port: port, timeout: .seconds(2))
        let began = ContinuousClock.now
        XCTAssertThrowsError(try cut.roundTrip("d")) { XCTAssertEqual($0 as? RawClient.Failure, .closed) }
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - began, .milliseconds(150))
        _ = try await call(.DELETE, "/proxies/echo/toxics/cut")

        // reset_peer: reset at once.
        _ = try await call(
            .POST, "/proxies/echo/toxics", #"{"name": "rst", "type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}}"#)
        XCTAssertThrowsError(try RawClient(port: port).roundTrip("e")) { XCTAssertEqual($0 as? RawClient.Failure, .closed) }
        _ = try await call(.DELETE, "/proxies/echo/toxics/rst")

        // limit_data: 3 bytes, then closed.
        _ = try await call(.POST, "/proxies/echo/toxics", #"{"name": "lim", "type": "limit_data", "attributes": {"bytes": 3}}"#)
        let limited = try RawClient(port: port)
        XCTAssertThrowsError(try limited.roundTrip("hello")) { XCTAssertEqual($0 as? RawClient.Failure, .closed) }

        // Disabled: refused, and the open connection closed; reset: enabled, no toxics.
        let survivor = try RawClient(port: port)
        let disabled = try await call(.POST, "/proxies/echo", #"{"enabled": false}"#)
        XCTAssertEqual(disabled.json["enabled"] as? Bool, false)
        XCTAssertThrowsError(try RawClient(port: port)) { XCTAssertEqual($0 as? RawClient.Failure, .refused) }
        XCTAssertThrowsError(try survivor.roundTrip("f"))
        let answer7 = try await call(.POST, "/reset")
        XCTAssertEqual(answer7.status, 204)
        let after = try await call(.GET, "/proxies/echo")
        XCTAssertEqual(after.json["enabled"] as? Bool, true)
        XCTAssertEqual((after.json["toxics"] as? [Any])?.count, 0)
        XCTAssertEqual(try RawClient(port: port).roundTrip("g"), "g", "the same port again")
        let answer8 = try await call(.DELETE, "/proxies/echo")
        XCTAssertEqual(answer8.status, 204)
        XCTAssertThrowsError(try RawClient(port: port))
    }

    func testToxicityDecidesPerConnection() async throws {
        let upstream = "127.0.0.1:\(echo.localAddress!.port!)"
        let created = try await call(.POST, "/proxies", #"{"name": "echo", "listen": "127.0.0.1:0", "upstream": "\#(upstream)"}"#)
        let port = try XCTUnwrap(ToxiproxyAddress.parse(try XCTUnwrap(created.json["listen"] as? String))?.port)
        _ = try await call(.POST, "/proxies/echo/toxics", #"{"type": "reset_peer", "stream": "upstream", "toxicity": 0}"#)
        XCTAssertEqual(try RawClient(port: port).roundTrip("spared"), "spared", "toxicity 0: no connection has it")
    }
}
