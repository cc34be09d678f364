import XCTest

@testable import Service

/// What an instance knows of the master behind Sentinel, without Redis: which master, which
/// connections may be used again, which sentinel is asked first, and what a `+switch-master`
/// message changes.
final class SentinelStateTests: XCTestCase {
    private let first = RedisAddress(host: "10.0.0.1", port: 6379)
    private let second = RedisAddress(host: "10.0.0.2", port: 6379)

    func testTheFirstDiscoveryIsNotASwitchAndItsSentinelIsAskedFirstNextTime() {
        var state = SentinelState(masterName: "signet", sentinelCount: 3)
        XCTAssertNil(state.master)
        XCTAssertEqual(state.askingOrder, [0, 1, 2])
        let found = state.confirmed(first, bySentinel: 1)
        XCTAssertEqual(found.changed, false)
        XCTAssertEqual(state.master, first)
        XCTAssertEqual(state.switches, 0)
        XCTAssertTrue(state.isCurrent(found.generation))
        XCTAssertEqual(state.askingOrder, [1, 2, 0])
    }

    func testAFailureForgetsTheMasterAndRetiresItsConnectionsOnce() {
        var state = SentinelState(masterName: "signet", sentinelCount: 2)
        let generation = state.confirmed(first, bySentinel: 0).generation
        state.failed(generation: generation)
        XCTAssertNil(state.master, "the next connection asks the sentinels")
        XCTAssertEqual(state.lastMaster, first, "the health check still names it")
        XCTAssertFalse(state.isCurrent(generation))
        // The same master confirmed again: not a switch, and a new generation.
        let again = state.confirmed(first, bySentinel: 1)
        XCTAssertEqual(again.changed, false)
        XCTAssertNotEqual(again.generation, generation)
        XCTAssertEqual(state.switches, 0)
        // A late failure of an old connection forgets nothing.
        state.failed(generation: generation)
        XCTAssertEqual(state.master, first)
        XCTAssertTrue(state.isCurrent(again.generation))
    }

    func testASwitchMessageMovesToTheNewMasterAtOnceAndOnlyForThisMaster() throws {
        var state = SentinelState(masterName: "signet", sentinelCount: 3)
        let generation = state.confirmed(first, bySentinel: 0).generation
        let other = try XCTUnwrap(SwitchMaster(payload: "other 10.0.0.1 6379 10.0.0.9 6379"))
        XCTAssertFalse(state.switched(other))
        XCTAssertEqual(state.master, first)
        let ours = try XCTUnwrap(SwitchMaster(payload: "signet 10.0.0.1 6379 10.0.0.2 6379"))
        XCTAssertTrue(state.switched(ours))
        XCTAssertEqual(state.master, second)
        XCTAssertEqual(state.switches, 1)
        XCTAssertFalse(state.isCurrent(generation), "connections to the old master are dropped")
        // The same message from the other sentinels changes nothing more.
        XCTAssertTrue(state.switched(ours))
        XCTAssertEqual(state.switches, 1)
    }

    func testAMasterFoundAfterAFailureThatDiffersIsASwitch() {
        var state = SentinelState(masterName: "signet", sentinelCount: 1)
        state.failed(generation: state.confirmed(first).generation)
        XCTAssertEqual(state.confirmed(second).changed, true)
        XCTAssertEqual(state.switches, 1)
    }

    func testSwitchMessagesThatAreNotFiveFieldsAreIgnored() {
        XCTAssertNil(SwitchMaster(payload: "signet 10.0.0.1 6379 10.0.0.2"))
        XCTAssertNil(SwitchMaster(payload: "signet 10.0.0.1 port 10.0.0.2 6379"))
        XCTAssertEqual(SwitchMaster(payload: "m ::1 1 ::2 2")?.new, RedisAddress(host: "::2", port: 2))
    }

    func testAddresses() {
        XCTAssertEqual(RedisAddress("sentinel-1.internal:26379"), RedisAddress(host: "sentinel-1.internal", port: 26379))
        XCTAssertEqual(RedisAddress(" [::1]:26379 "), RedisAddress(host: "::1", port: 26379))
        XCTAssertEqual(RedisAddress(host: "::1", port: 26379).description, "[::1]:26379")
        for bad in ["sentinel", "sentinel:", ":26379", "sentinel:0", "sentinel:70000", "::1:26379", "[::1]26379", "[]:1"] {
            XCTAssertNil(RedisAddress(bad), bad)
        }
    }
}

/// `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`, `REDIS_SENTINEL_PASSWORD`, `REDIS_CLUSTER_NODES` and
/// their conflicts.
final class RedisTopologyConfigurationTests: XCTestCase {
    private func topology(_ overrides: [String: String]) throws -> RedisTopology? {
        try SignetConfiguration.from(environment: ConfigurationTests.valid.merging(overrides) { $1 }).rateLimit.redis
    }

    private func refusal(_ overrides: [String: String]) -> ConfigurationError? {
        do {
            _ = try topology(overrides)
            return nil
        } catch let error as ConfigurationError {
            return error
        } catch {
            XCTFail("\(error)")
            return nil
        }
    }

    func testSentinelsTheMasterNameAndTheMastersLoginFromAHostlessURL() throws {
        let topology = try topology([
            "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26379,10.0.0.1:26379",
            "REDIS_SENTINEL_MASTER": "signet",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
            "REDIS_URL": "redis://limiter:master-secret@/3",
        ])
        guard case .sentinel(let sentinels) = topology else { return XCTFail("not Sentinel: \(String(describing: topology))") }
        XCTAssertEqual(sentinels.sentinels, [RedisAddress(host: "10.0.0.1", port: 26379), RedisAddress(host: "10.0.0.2", port: 26379)])
        XCTAssertEqual(sentinels.masterName, "signet")
        XCTAssertEqual(sentinels.sentinelPassword, "sentinel-secret")
        let master = sentinels.endpoint(of: RedisAddress(host: "10.0.0.9", port: 6380))
        XCTAssertEqual([master.host, master.user, master.password], ["10.0.0.9", "limiter", "master-secret"])
        XCTAssertEqual([master.port, master.database], [6380, 3])
        let sentinel = sentinels.endpoint(ofSentinel: sentinels.sentinels[1])
        XCTAssertEqual([sentinel.host, sentinel.password], ["10.0.0.2", "sentinel-secret"])
        XCTAssertNil(sentinel.user)
    }

    func testWithoutREDIS_URLTheMasterNeedsNoLogin() throws {
        let topology = try topology(["REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "signet"])
        guard case .sentinel(let sentinels) = topology else { return XCTFail("not Sentinel") }
        XCTAssertNil(sentinels.master.password)
        XCTAssertEqual(sentinels.master.database, 0)
    }

    func testConflictsAndMistakesNameTheirVariableAndNoSecret() {
        let sentinels = ["REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "signet"]
        let cases: [([String: String], String, String)] = [
            (sentinels.merging(["REDIS_URL": "redis://:hunter2@cache:6379"]) { $1 }, "REDIS_URL", "REDIS_SENTINELS chooses the master"),
            (["REDIS_SENTINELS": "127.0.0.1:26379"], "REDIS_SENTINEL_MASTER", "must name the master"),
            (["REDIS_SENTINEL_MASTER": "signet"], "REDIS_SENTINEL_MASTER", "REDIS_SENTINELS is not"),
            (["REDIS_SENTINEL_PASSWORD": "hunter2"], "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINELS is not"),
            (sentinels.merging(["REDIS_SENTINELS": "127.0.0.1:26379,sentinel-2"]) { $1 }, "REDIS_SENTINELS", "\"sentinel-2\" is not one"),
            (sentinels.merging(["REDIS_SENTINELS": ""]) { $1 }, "REDIS_SENTINELS", "must not be empty"),
        ]
        for (overrides, variable, reason) in cases {
            let error = refusal(overrides)
            XCTAssertEqual(error?.variable, variable, "\(overrides)")
            XCTAssertTrue(error?.description.contains(reason) ?? false, "\(error?.description ?? "accepted")")
            XCTAssertFalse(error?.description.contains("hunter2") ?? false)
        }
    }

    func testTheSentinelPasswordIsASecretVariable() {
        XCTAssertTrue(SignetConfiguration.secretVariables.contains("REDIS_SENTINEL_PASSWORD"))
    }

    func testClusterNodesAndTheirLoginFromAHostlessURL() throws {
        let topology = try topology([
            "REDIS_CLUSTER_NODES": "10.0.0.1:7000, [fd00::2]:7001,10.0.0.1:7000", "REDIS_URL": "redis://limiter:node-secret@/",
        ])
        guard case .cluster(let nodes) = topology else { return XCTFail("not a cluster: \(String(describing: topology))") }
        XCTAssertEqual(nodes.seeds, [RedisAddress(host: "10.0.0.1", port: 7000), RedisAddress(host: "fd00::2", port: 7001)])
        let node = nodes.endpoint(of: RedisAddress(host: "10.0.0.9", port: 7005))
        XCTAssertEqual([node.host, node.user, node.password], ["10.0.0.9", "limiter", "node-secret"])
        XCTAssertEqual([node.port, node.database], [7005, 0])
        guard case .cluster(let bare) = try self.topology(["REDIS_CLUSTER_NODES": "127.0.0.1:7000"]) else {
            return XCTFail("not a cluster")
        }
        XCTAssertNil(bare.login.password)
    }

    func testClusterConflictsNameTheirVariableAndNoSecret() {
        let cluster = ["REDIS_CLUSTER_NODES": "127.0.0.1:7000"]
        let cases: [([String: String], String, String)] = [
            (cluster.merging(["REDIS_URL": "redis://:hunter2@cache:6379"]) { $1 }, "REDIS_URL", "REDIS_CLUSTER_NODES chooses the nodes"),
            (cluster.merging(["REDIS_URL": "redis://:hunter2@/2"]) { $1 }, "REDIS_URL", "database 0 only"),
            (
                cluster.merging(["REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "signet"]) { $1 }, "REDIS_CLUSTER_NODES",
                "beside REDIS_SENTINELS"
            ),
            (cluster.merging(["REDIS_KEY_PREFIX": "signet:{prod}:"]) { $1 }, "REDIS_KEY_PREFIX", "must not contain { or }"),
            (cluster.merging(["REDIS_KEY_PREFIX": "signet}"]) { $1 }, "REDIS_KEY_PREFIX", "must not contain { or }"),
            (["REDIS_CLUSTER_NODES": "127.0.0.1:7000,node-2"], "REDIS_CLUSTER_NODES", "\"node-2\" is not one"),
            (["REDIS_CLUSTER_NODES": " , "], "REDIS_CLUSTER_NODES", "is not one"),
            (["REDIS_CLUSTER_NODES": ""], "REDIS_CLUSTER_NODES", "must not be empty"),
        ]
        for (overrides, variable, reason) in cases {
            let error = refusal(overrides)
            XCTAssertEqual(error?.variable, variable, "\(overrides)")
            XCTAssertTrue(error?.description.contains(reason) ?? false, "\(error?.description ?? "accepted")")
            XCTAssertFalse(error?.description.contains("hunter2") ?? false)
        }
    }

    func testABracedPrefixIsFineWithoutACluster() throws {
        XCTAssertNotNil(try topology(["REDIS_KEY_PREFIX": "signet:{prod}:"]))
    }
}

/// Redis Cluster's rules without a cluster: key slots (the values Redis's `CLUSTER KEYSLOT`
/// gives), the slot map from `CLUSTER SLOTS`, and `MOVED`/`ASK`.
final class RedisClusterTests: XCTestCase {
    func testCRC16IsXMODEMAsRedisComputesIt() {
        // The check value of CRC-16/XMODEM, and the one Redis's cluster specification gives.
        XCTAssertEqual(RedisCluster.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(RedisCluster.crc16([UInt8]()), 0)
    }

    func testSlotsAreThoseCLUSTERKEYSLOTGives() {
        // Values from `redis-cli CLUSTER KEYSLOT <key>` on Redis 7.0.
        let slots: [(String, Int)] = [
            ("foo", 12_182), ("bar", 5_061), ("{user1000}.following", 3_443), ("{user1000}.followers", 3_443),
            ("foo{}{bar}", 8_363), ("foo{{bar}}zap", 4_015), ("foo{bar}{zap}", 5_061), ("{}", 15_257),
        ]
        for (key, slot) in slots { XCTAssertEqual(RedisCluster.slot(of: Array(key.utf8)), slot, key) }
    }

    func testALimiterKeyIsHashedByItsSubjectOnly() {
        let subject = "g0123456789abcdef0123456789abcdef"
        XCTAssertEqual(
            RedisCluster.slot(of: Array("signet:rl:{\(subject)}".utf8)), RedisCluster.slot(of: Array("other-prefix:rl:{\(subject)}".utf8)))
        XCTAssertEqual(RedisCluster.slot(of: Array("signet:rl:{\(subject)}".utf8)), RedisCluster.slot(of: Array(subject.utf8)))
    }

    private func range(_ start: Int, _ end: Int, _ port: Int, replica: Int? = nil) -> RedisReply {
        var fields: [RedisReply] = [
            .integer(Int64(start)), .integer(Int64(end)), .array([.string(Array("127.0.0.1".utf8)), .integer(Int64(port)), .string([])]),
        ]
        if let replica { fields.append(.array([.string(Array("127.0.0.1".utf8)), .integer(Int64(replica)), .string([])])) }
        return .array(fields)
    }

    func testTheSlotMapNamesEachSlotsMasterAndKnowsWhenItIsComplete() throws {
        let map = try XCTUnwrap(
            SlotMap(clusterSlots: .array([range(10_923, 16_383, 7002, replica: 7005), range(0, 5_460, 7000), range(5_461, 10_922, 7001)])))
        XCTAssertEqual(map.master(of: 0)?.port, 7000)
        XCTAssertEqual(map.master(of: 5_460)?.port, 7000)
        XCTAssertEqual(map.master(of: 5_461)?.port, 7001)
        XCTAssertEqual(map.master(of: 16_383)?.port, 7002)
        XCTAssertEqual(map.masters.map(\.port), [7000, 7001, 7002])
        XCTAssertTrue(map.coversEverySlot)

        let holed = try XCTUnwrap(SlotMap(clusterSlots: .array([range(0, 5_460, 7000), range(5_462, 16_383, 7001)])))
        XCTAssertNil(holed.master(of: 5_461))
        XCTAssertFalse(holed.coversEverySlot)
        XCTAssertFalse(try XCTUnwrap(SlotMap(clusterSlots: .array([range(0, 16_382, 7000)]))).coversEverySlot)
        XCTAssertNotEqual(map, holed)
        XCTAssertEqual(
            map,
            try XCTUnwrap(SlotMap(clusterSlots: .array([range(0, 5_460, 7000), range(5_461, 10_922, 7001), range(10_923, 16_383, 7002)]))))
    }

    func testAnythingButCLUSTERSLOTSShapeIsNoMap() {
        let bad: [RedisReply] = [
            .error("ERR This instance has cluster support disabled"), .status("OK"),
            .array([.array([.integer(0), .integer(16_384), .array([.string(Array("h".utf8)), .integer(1)])])]),
            .array([.array([.integer(5), .integer(4), .array([.string(Array("h".utf8)), .integer(1)])])]),
            .array([.array([.integer(0), .integer(1)])]),
            .array([.array([.integer(0), .integer(1), .array([.integer(1), .string(Array("h".utf8))])])]),
        ]
        for reply in bad { XCTAssertNil(SlotMap(clusterSlots: reply), "\(reply)") }
        XCTAssertEqual(SlotMap(clusterSlots: .array([]))?.masters, [])
    }

    func testRedirections() {
        XCTAssertEqual(
            RedisRedirect(error: "MOVED 3999 127.0.0.1:6381"), .moved(slot: 3_999, to: RedisAddress(host: "127.0.0.1", port: 6381)))
        XCTAssertEqual(RedisRedirect(error: "ASK 3999 10.0.0.2:7001"), .ask(slot: 3_999, to: RedisAddress(host: "10.0.0.2", port: 7001)))
        XCTAssertEqual(RedisRedirect(error: "MOVED 12 ::1:7002"), .moved(slot: 12, to: RedisAddress(host: "::1", port: 7002)))
        for other in ["READONLY You can't write against a read only replica.", "MOVED 3999", "MOVED x 127.0.0.1:1", "MOVED 1 :7000", "ERR"]
        {
            XCTAssertNil(RedisRedirect(error: other), other)
        }
    }
}
