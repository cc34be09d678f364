import Foundation
import Logging
import Simulator
import XCTest

@testable import Service

/// The limiter's Redis Cluster client against a real cluster (three masters with a replica each,
/// started by the Simulator): the script is loaded on each master as it is first used, a slot
/// moved after the map was read is followed through `MOVED` (the map read again, the decision
/// sent once more), and a slot being migrated through `ASK` (`ASKING` at the importing node,
/// the count carried on, the map unchanged).
final class ClusterRouterTests: XCTestCase {
    private var cluster: RedisClusterStack?
    private let prefix = "cluster-test:"
    private let limit = 10

    override func tearDown() async throws {
        await cluster?.stop()
    }

    private func start(timeout: Duration = .seconds(2)) async throws -> (RedisClusterStack, RedisWindow) {
        let cluster = try await RedisClusterStack.start()
        self.cluster = cluster
        let nodes = RedisClusterNodes(seeds: cluster.masters.map { RedisAddress(host: "127.0.0.1", port: $0.port) })
        let window = RedisWindow(
            topology: .cluster(nodes),
            configuration: RateLimitConfiguration(
                maxRequests: limit, windowMilliseconds: 600_000, redis: .cluster(nodes), redisTimeout: timeout, keyPrefix: prefix),
            logger: Logger(label: "test"))
        return (cluster, window)
    }

    /// An agent subject whose key is in a slot `master` (an index into the cluster's masters)
    /// serves, as the stack splits the slots.
    private func subject(on master: Int, of cluster: RedisClusterStack, skipping: Set<Int> = []) -> (RateLimitSubject, slot: Int) {
        let count = cluster.masters.count
        let slots = (RedisCluster.slotCount * master / count)...(RedisCluster.slotCount * (master + 1) / count - 1)
        for index in 0... {
            let subject = RateLimitSubject(.agent, "agent-\(index)")
            let slot = RedisCluster.slot(of: Array(subject.key.utf8))
            if slots.contains(slot) && !skipping.contains(slot) { return (subject, slot) }
        }
        fatalError("unreachable")
    }

    private func key(_ subject: RateLimitSubject) -> String { "\(prefix)rl:{\(subject.key)}" }

    private func id(_ node: RedisServer) async throws -> String { try await node.text(["CLUSTER", "MYID"]) }

    private func exists(_ key: String, on node: RedisServer) async throws -> Bool {
        try await node.command(["EXISTS", key]) == .integer(1)
    }

    func testEachMasterLoadsTheScriptOnFirstUseAndAMovedSlotIsFollowedOnce() async throws {
        let (cluster, window) = try await start()
        for master in cluster.masters.indices {
            let (subject, _) = subject(on: master, of: cluster)
            let decision = try await window.decide(subject)
            XCTAssertEqual(decision.remaining, limit - 1)
            let onMaster = try await exists(key(subject), on: cluster.masters[master])
            XCTAssertTrue(onMaster, "the key of a slot of master \(master) is on it")
        }
        for master in cluster.masters {
            let loaded = try await master.command(["SCRIPT", "EXISTS", RedisWindow.windowScript.sha])
            XCTAssertEqual(loaded, .array([.integer(1)]), "the script is loaded on master \(master.port)")
        }
        XCTAssertEqual(window.cluster?.status.changes, 0)

        // A slot of the first master, with no key yet, is given to the second behind the router's back.
        let (moved, slot) = subject(on: 0, of: cluster)
        let (fresh, freshSlot) = subject(on: 0, of: cluster, skipping: [slot])
        XCTAssertNotEqual(slot, freshSlot)
        let target = try await id(cluster.masters[1])
        for node in cluster.masters {
            let reply = try await node.command(["CLUSTER", "SETSLOT", String(freshSlot), "NODE", target])
            XCTAssertEqual(reply, .status("OK"))
        }
        let first = try await window.decide(fresh)
        XCTAssertEqual(first.remaining, limit - 1, "answered by the slot's new master after MOVED")
        let onNew = try await exists(key(fresh), on: cluster.masters[1])
        XCTAssertTrue(onNew)
        XCTAssertEqual(window.cluster?.status.changes, 1, "MOVED read the map again")
        let second = try await window.decide(fresh)
        XCTAssertEqual(second.remaining, limit - 2, "the count goes on at the new master, without another redirection")
        let untouched = try await window.decide(moved)
        XCTAssertEqual(untouched.remaining, limit - 2, "the first master's other slots are still its own")
    }

    func testAMigratingSlotIsAskedAtTheImportingNodeAndTheCountCarriesOn() async throws {
        let (cluster, window) = try await start()
        let (subject, slot) = subject(on: 0, of: cluster)
        for _ in 0..<3 { _ = try await window.decide(subject) }
        let source = cluster.masters[0]
        let destination = cluster.masters[2]
        let (sourceID, destinationID) = (try await id(source), try await id(destination))
        // The third master has never run the script: the ASKING call there loads it first.
        let loadedBefore = try await destination.command(["SCRIPT", "EXISTS", RedisWindow.windowScript.sha])
        XCTAssertEqual(loadedBefore, .array([.integer(0)]))

        // The slot is migrating from the first master to the third, and the key has moved already.
        var reply = try await destination.command(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID])
        XCTAssertEqual(reply, .status("OK"))
        reply = try await source.command(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", destinationID])
        XCTAssertEqual(reply, .status("OK"))
        reply = try await source.command(["MIGRATE", "127.0.0.1", String(destination.port), key(subject), "0", "5000"])
        XCTAssertEqual(reply, .status("OK"))

        let decision = try await window.decide(subject)
        XCTAssertEqual(decision.remaining, limit - 4, "the fourth request, counted where the key now is")
        XCTAssertEqual(window.cluster?.status.changes, 0, "ASK does not change the map")
        // The importing node answers for the slot only behind ASKING.
        let endpoint = RedisEndpoint(host: "127.0.0.1", port: destination.port)
        let asked = try await blocking { [key = key(subject)] in
            try RedisConnection.connect(endpoint, timeout: .seconds(2)).pipeline([
                [Array("ASKING".utf8)], [Array("EXISTS".utf8), Array(key.utf8)],
            ])
        }
        let movedThere = asked.last == .integer(1)
        let leftHere = try await exists(key(subject), on: source)
        XCTAssertTrue(movedThere)
        XCTAssertFalse(leftHere)
    }

    /// A frozen master (`SIGSTOP`: its connections stay open, nothing answers) ends a decision at
    /// its bound, four times `REDIS_TIMEOUT_MS`, with an error the breaker acts on; the other
    /// masters' decisions are not held behind it.
    func testAFrozenMasterEndsADecisionAtItsBound() async throws {
        let (cluster, window) = try await start(timeout: .milliseconds(250))
        let (frozen, _) = subject(on: 0, of: cluster)
        let (other, _) = subject(on: 1, of: cluster)
        _ = try await window.decide(frozen)
        cluster.masters[0].freeze()
        defer { cluster.masters[0].thaw() }
        let started = ContinuousClock.now
        do {
            _ = try await window.decide(frozen)
            XCTFail("a frozen master cannot decide")
        } catch {
            XCTAssertTrue(error is RedisError, "\(error)")
        }
        let waited = ContinuousClock.now - started
        XCTAssertLessThan(waited, .seconds(2), "ended at its bound (1 s), not when the master answers")
        let decision = try await window.decide(other)
        XCTAssertEqual(decision.remaining, limit - 1, "another master still decides")
    }
}
