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

/// `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`, `REDIS_SENTINEL_PASSWORD` and their conflicts.
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
}
