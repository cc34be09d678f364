import Foundation

/// What one source address can make an instance hold through its connections alone (issue 26):
/// responses it never reads, and every connection slot. Real sockets from their own loopback
/// addresses against a real `signet` process, each bounded in time.
public enum ConnectionScenarios {
    static let requirement = "Bounded connections"

    /// One instance on a database of its own, with an idle timeout (60 s) no check here waits for:
    /// whatever closes a connection within the scenario's bounds is the bound under test.
    static func instance(_ context: ScenarioContext, _ applicationName: String, _ extra: [String: String]) async throws
        -> SignetInstance
    {
        let variables = context.environment(
            database: try await context.database(), applicationName: applicationName,
            extra.merging(["HTTP_IDLE_TIMEOUT_MS": "60000", "LOG_LEVEL": "warning"]) { own, _ in own })
        return try await context.startSignet(id: "a", environment: variables)
    }

    /// Sockets from 127.0.0.3 (not a trusted proxy: the per-address bound applies to them).
    static let attacker = "127.0.0.3"

    public static let slowReaders = Scenario(
        name: "slow-readers",
        requirement: requirement,
        specScenario: "A response nobody reads must not hold its connection and memory",
        summary: "One instance, HTTP_WRITE_TIMEOUT_MS=1000, HTTP_IDLE_TIMEOUT_MS=60000: 16 connections from one address each "
            + "pipeline 16 GET /openapi.yaml (33 KB each, HTTP_MAX_PIPELINED_REQUESTS) and never read: the instance resets "
            + "every one within 10 s, far under the idle timeout (signet_http_write_timeouts_total 16). One connection "
            + "pipelining 200 at once is reset as they arrive (signet_http_pipeline_overflows_total 1). Another client is "
            + "served meanwhile."
    ) { context in
        let signet = try await instance(
            context, "sim-slow-readers",
            // The responses must be the 33 KB document, not 429s.
            ["HTTP_WRITE_TIMEOUT_MS": "1000", "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "1000000"])
        let request = Array("GET /openapi.yaml HTTP/1.1\r\nHost: signet\r\n\r\n".utf8)
        @Sendable func pipelined(_ count: Int) -> [UInt8] { Array(Array(repeating: request, count: count).joined()) }
        let connections = try await blocking {
            try (0..<16).map { _ in
                let connection = try LoopbackConnection(port: signet.port, from: attacker, receiveBuffer: 4096)
                _ = connection.sendWithoutBlocking(pipelined(16))
                return connection
            }
        }
        let opened = ContinuousClock.now
        try await waitUntil("the instance closes all 16 unread connections", timeout: .seconds(10)) {
            connections.allSatisfy(\.closedByPeer)
        }
        context.expect(
            "all 16 closed after", ContinuousClock.now - opened, in: .zero ... .seconds(10),
            describe: { "\($0.components.seconds) s (idle timeout 60 s)" })
        context.expect("signet_http_write_timeouts_total", try await signet.metric("signet_http_write_timeouts_total"), equals: 16)

        let greedy = try await blocking { try LoopbackConnection(port: signet.port, from: attacker, receiveBuffer: 4096) }
        _ = greedy.sendWithoutBlocking(pipelined(200))
        try await waitUntil("the instance resets the connection that pipelined 200", timeout: .seconds(5)) { greedy.closedByPeer }
        context.expect(
            "signet_http_pipeline_overflows_total", try await signet.metric("signet_http_pipeline_overflows_total"), equals: 1)
        let other = try await HTTP.request(from: "127.0.0.4", port: signet.port, "GET", "/health/live")
        context.expect("another client's /health/live", other.status, equals: 200)
    }

    public static let connectionSlots = Scenario(
        name: "connection-slots",
        requirement: requirement,
        specScenario: "One address must not take every connection slot",
        summary: "One instance, HTTP_MAX_CONNECTIONS=32, HTTP_MAX_CONNECTIONS_PER_ADDRESS=8: 40 kept-alive connections from one "
            + "address; the instance keeps 8 and closes the other 32 as they open "
            + "(signet_http_connections_refused_total 32); a client on another address is answered at once; the balancer's "
            + "address (TRUSTED_PROXIES) is not bounded: 12 connections from it all stay open."
    ) { context in
        let signet = try await instance(
            context, "sim-connection-slots", ["HTTP_MAX_CONNECTIONS": "32", "HTTP_MAX_CONNECTIONS_PER_ADDRESS": "8"])
        let held = try await blocking {
            try (0..<40).map { _ in try LoopbackConnection(port: signet.port, from: attacker) }
        }
        try await waitUntil("the instance closes the connections past the bound", timeout: .seconds(10)) {
            held.filter(\.closedByPeer).count >= 32
        }
        context.expect("connections from one address the instance keeps", held.filter { !$0.closedByPeer }.count, equals: 8)
        context.expect(
            "signet_http_connections_refused_total{reason=\"per_address\"}",
            try await signet.metric(#"signet_http_connections_refused_total{reason="per_address"}"#), equals: 32)
        let started = ContinuousClock.now
        let other = try await HTTP.request(from: "127.0.0.4", port: signet.port, "GET", "/health/live")
        context.expect("another address's /health/live", other.status, equals: 200)
        context.expect(
            "answered within", ContinuousClock.now - started, in: .zero ... .seconds(2), describe: { "\($0)" })
        let balancer = try await blocking {
            try (0..<12).map { _ in try LoopbackConnection(port: signet.port, from: LoadBalancer.sourceAddress) }
        }
        let answer = try await HTTP.request(from: LoadBalancer.sourceAddress, port: signet.port, "GET", "/health/live")
        context.expect("a 13th request from the balancer's address", answer.status, equals: 200)
        context.expect("the balancer's connections still open", balancer.filter { !$0.closedByPeer }.count, equals: 12)
        withExtendedLifetime(held) {}
    }
}
