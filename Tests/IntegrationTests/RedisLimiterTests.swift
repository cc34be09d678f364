import Foundation
import HTTPTypes
import Logging
import Service
import XCTest

/// The Redis limiter against the real Redis that `ci/test` starts: many decisions of one subject
/// queued at once go to Redis as one pipeline and one script call per subject, and must still be
/// exactly as many allowed as the limit, each seeing its own count.
final class RedisLimiterTests: XCTestCase {
    private func endpoint() throws -> RedisEndpoint {
        let url = try XCTUnwrap(ProcessInfo.processInfo.environment["SIGNET_TEST_REDIS_URL"], "run through ci/test, which starts Redis")
        return try XCTUnwrap(RedisEndpoint(url: url))
    }

    private func limiter(limit: Int, prefix: String) throws -> RateLimiter {
        RateLimiter(
            configuration: RateLimitConfiguration(
                maxRequests: limit,
                windowMilliseconds: 60_000,
                redis: .server(try endpoint()),
                redisTimeout: .milliseconds(1000),
                keyPrefix: prefix
            ),
            logger: Logger(label: "test")
        )
    }

    func testConcurrentDecisionsOfOneSubjectAllowExactlyTheLimit() async throws {
        let prefix = "test-\(UUID().uuidString.prefix(8)):"
        let limiter = try limiter(limit: 50, prefix: prefix)
        let decisions = await withTaskGroup(of: RateLimitDecision.self) { group in
            for index in 0..<300 {
                group.addTask { await limiter.decide(RateLimitSubject(.agent, index.isMultiple(of: 3) ? "other" : "hot")) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertTrue(limiter.usesRedis, "no Redis call may have failed")
        // 200 requests of "hot" and 100 of "other", each limited to 50.
        XCTAssertEqual(decisions.filter(\.allowed).count, 100)
        let allowedRemaining = decisions.filter(\.allowed).map(\.remaining).sorted()
        XCTAssertEqual(allowedRemaining, (0..<50).flatMap { [$0, $0] }, "each allowed request sees the count its own request makes")
        XCTAssertTrue(decisions.filter { !$0.allowed }.allSatisfy { $0.remaining == 0 && $0.retryAfterSeconds >= 1 })

        let redis = try RedisConnection.connect(try endpoint(), timeout: .seconds(1))
        for subject in ["hot", "other"] {
            let key = RateLimitSubject(.agent, subject).key
            let count = try redis.command([Array("ZCARD".utf8), Array("\(prefix)rl:{\(key)}".utf8)])
            XCTAssertEqual(count, .integer(50), "rejected requests are not counted (\(subject))")
            let ttl = try redis.command([Array("PTTL".utf8), Array("\(prefix)rl:{\(key)}".utf8)])
            guard case .integer(let milliseconds) = ttl else { return XCTFail("PTTL answered \(ttl)") }
            XCTAssertTrue((59_000...60_000).contains(milliseconds), "the key expires with the window, got \(milliseconds) ms")
        }
    }

    func testAFlushedScriptIsLoadedAgainWithoutAFailedDecision() async throws {
        let limiter = try limiter(limit: 1000, prefix: "test-\(UUID().uuidString.prefix(8)):")
        let redis = try RedisConnection.connect(try endpoint(), timeout: .seconds(1))
        for round in 0..<3 {
            _ = try redis.command([Array("SCRIPT".utf8), Array("FLUSH".utf8)])
            let decisions = await withTaskGroup(of: RateLimitDecision.self) { group in
                for _ in 0..<40 { group.addTask { await limiter.decide(RateLimitSubject(.agent, "flushed")) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            XCTAssertTrue(limiter.usesRedis, "round \(round): NOSCRIPT must be handled, not counted as a Redis failure")
            XCTAssertEqual(decisions.filter(\.allowed).count, 40)
        }
    }

    func testTheAdminIsCountedUnderAHashOfItsTokenNeverTheToken() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            for _ in 0..<3 {
                let response = try await client.admin(.get, "/v1/agents")
                XCTAssertEqual(response.status, .ok)
            }
        }
        let prefix = signet.configuration.rateLimit.keyPrefix
        let redis = try RedisConnection.connect(try endpoint(), timeout: .seconds(1))
        guard case .array(let keys) = try redis.command([Array("KEYS".utf8), Array("\(prefix)*".utf8)]) else {
            return XCTFail("KEYS did not answer an array")
        }
        let names = keys.compactMap { if case .string(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { nil } }
        XCTAssertEqual(names.count, 1, "one subject: \(names)")
        let name = try XCTUnwrap(names.first)
        XCTAssertNotNil(name.wholeMatch(of: /.*rl:\{a[0-9a-f]{32}\}/), name)
        XCTAssertFalse(name.contains(TestSignet.adminToken))
        XCTAssertEqual(try redis.command([Array("ZCARD".utf8), Array(name.utf8)]), .integer(3))
    }
}
