import Foundation
import Logging
import Simulator
import Synchronization
import XCTest

@testable import Service

/// `RedisLocator` against real Redis processes and a real sentinel (started by the Simulator):
/// it skips a sentinel that refuses, follows a `+switch-master`, retires connections to the old
/// master, and a script on a replica throws `READONLY` instead of answering.
final class SentinelLocatorTests: XCTestCase {
    private var servers: [RedisServer] = []
    private var sentinels: [RedisSentinel] = []

    override func tearDown() async throws {
        for sentinel in sentinels { await sentinel.stop() }
        for server in servers.reversed() { await server.stop() }
    }

    private func pair() async throws -> (master: RedisServer, replica: RedisServer) {
        let master = try await RedisServer.start()
        servers.append(master)
        let replica = try await RedisServer.start(replicaOf: master)
        servers.append(replica)
        try await waitUntil("the replica is in sync", timeout: .seconds(15)) {
            guard case .string(let info) = try await replica.command(["INFO", "replication"]) else { return false }
            return String(decoding: info, as: UTF8.self).contains("master_link_status:up")
        }
        return (master, replica)
    }

    func testTheLocatorSkipsARefusingSentinelAndFollowsAForcedFailover() async throws {
        let (master, replica) = try await pair()
        let sentinel = try await RedisSentinel.start(monitoring: master, masterName: "locator", quorum: 1)
        sentinels.append(sentinel)
        try await waitUntil("the sentinel knows the replica", timeout: .seconds(20)) { try await sentinel.known().replicas == 1 }
        let refusing = RedisAddress(host: "127.0.0.1", port: try freePort())
        let locator = RedisLocator(
            topology: .sentinel(
                RedisSentinels(sentinels: [refusing, RedisAddress(host: "127.0.0.1", port: sentinel.port)], masterName: "locator")),
            timeout: .seconds(1), logger: Logger(label: "test"))

        let before = try await blocking { try locator.connect() }
        XCTAssertEqual(locator.master?.address, RedisAddress(host: "127.0.0.1", port: master.port))
        XCTAssertEqual(locator.master?.switches, 0)
        XCTAssertTrue(locator.isCurrent(before.generation))

        let watching = Watching()
        let watcher = Thread { locator.watchSwitches(pollInterval: .milliseconds(300)) { watching.on } }
        watcher.start()
        defer { watching.stop() }
        _ = try await sentinel.command(["SENTINEL", "FAILOVER", "locator"])
        try await waitUntil("the locator follows +switch-master", timeout: .seconds(20)) {
            locator.master?.address?.port == replica.port
        }
        XCTAssertEqual(locator.master?.switches, 1)
        XCTAssertFalse(locator.isCurrent(before.generation), "connections to the old master are not used again")
        locator.failed(before.generation)
        XCTAssertEqual(locator.master?.address?.port, replica.port, "a late failure on the old master forgets nothing")

        let after = try await blocking { try locator.connect() }
        XCTAssertNotEqual(after.generation, before.generation)
        guard case .array(let role) = try await blocking({ try after.connection.command([Array("ROLE".utf8)]) }) else {
            return XCTFail("ROLE")
        }
        XCTAssertEqual(role.first, .string(Array("master".utf8)))
    }

    func testTheLimitersScriptOnAReplicaThrowsReadOnly() async throws {
        let (_, replica) = try await pair()
        let connection = try await blocking {
            try RedisConnection.connect(RedisEndpoint(host: "127.0.0.1", port: replica.port), timeout: .seconds(2))
        }
        let call = RedisWindow.windowScript.call(keys: [Array("rl:{x}".utf8)], arguments: ["1000", "5", "1", "m:"].map { Array($0.utf8) })
        do {
            _ = try await blocking { try RedisWindow.windowScript.run([call], on: connection) }
            XCTFail("a replica ran the limiter's script")
        } catch RedisError.readOnly(let message) {
            XCTAssertTrue(message.hasPrefix("READONLY"), message)
        }
    }
}

private final class Watching: Sendable {
    private let running = Atomic(true)
    var on: Bool { running.load(ordering: .relaxed) }
    func stop() { running.store(false, ordering: .relaxed) }
}
