import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// `GET /metrics` against a real PostgreSQL and Redis: the series exist, move with traffic, have
/// bounded labels whatever a client sends, and are protected by `METRICS_TOKEN` when it is set.
final class MetricsTests: XCTestCase {
    func testSeriesMoveWithTrafficAndNameRouteTemplates() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            let agent = try await client.agent(scopes: ["read"])
            _ = try await client.accessToken(for: agent)
            _ = try await client.accessToken(for: agent)
            let refused = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=wrong")
            XCTAssertEqual(refused.status, .unauthorized)
            let unknownScope = try await client.tokenRequest(
                "grant_type=client_credentials&client_id=\(agent.clientID)&client_secret=\(agent.secret)&scope=admin")
            XCTAssertEqual(unknownScope.status, .badRequest)
            _ = try await client.admin(.get, "/v1/agents/\(agent.id)")

            let metrics = try await Self.scrape(client)
            XCTAssertEqual(metrics.value(#"signet_token_requests_total{result="issued"}"#), 2)
            XCTAssertEqual(metrics.value(#"signet_token_requests_total{result="invalid_client"}"#), 1)
            XCTAssertEqual(metrics.value(#"signet_token_requests_total{result="invalid_scope"}"#), 1)
            XCTAssertEqual(metrics.value(#"signet_token_requests_total{result="unavailable"}"#), 0)
            XCTAssertEqual(metrics.value("signet_token_signing_duration_seconds_count"), 2)
            XCTAssertEqual(
                metrics.value(#"signet_http_request_duration_seconds_count{route="/v1/agents/{id}",method="GET",status_class="2xx"}"#), 1,
                "the route template, never the id")
            XCTAssertFalse(metrics.text.contains(agent.id), "no id in any label")
            XCTAssertEqual(
                metrics.value(#"signet_http_request_duration_seconds_count{route="/oauth/token",method="POST",status_class="4xx"}"#), 2)
            XCTAssertGreaterThanOrEqual(metrics.value(#"signet_rate_limit_decisions_total{backend="redis",result="allowed"}"#) ?? 0, 6)
            XCTAssertEqual(metrics.value(#"signet_rate_limit_backend{backend="redis"}"#), 1)
            XCTAssertGreaterThan(metrics.value("signet_redis_call_duration_seconds_count") ?? 0, 0)
            XCTAssertGreaterThanOrEqual(metrics.value(#"signet_db_pool_connections{state="total"}"#) ?? 0, 1)
            XCTAssertEqual(metrics.value("signet_db_pool_waiting"), 0)
            XCTAssertNotNil(metrics.value("signet_db_pool_acquire_timeouts_total"))
            XCTAssertGreaterThan(metrics.value("signet_db_pool_acquire_wait_seconds_count") ?? 0, 0)
            XCTAssertGreaterThan(metrics.value("signet_db_pool_connections_opened_total") ?? 0, 0)
            XCTAssertEqual(metrics.value(#"signet_health_check_status{dependency="database",status="healthy"}"#), 1)
            XCTAssertEqual(metrics.value(#"signet_health_check_status{dependency="database",status="unreachable"}"#), 0)
            XCTAssertNotNil(metrics.value(#"signet_health_check_latency_seconds{dependency="redis"}"#))
            XCTAssertNotNil(metrics.value("signet_http_requests_in_flight"))

            // Counters only go up between scrapes.
            _ = try await client.accessToken(for: agent)
            let later = try await Self.scrape(client)
            XCTAssertEqual(later.value(#"signet_token_requests_total{result="issued"}"#), 3)
            XCTAssertGreaterThanOrEqual(
                later.value("signet_db_pool_connections_opened_total") ?? 0, metrics.value("signet_db_pool_connections_opened_total") ?? 0)
        }
    }

    /// The attacker's view: whatever paths, ids, methods and client ids are sent, the number of
    /// series stays what it was after one request of each kind.
    func testLabelsStayBoundedWhateverClientsSend() async throws {
        let signet = try await TestSignet.make()
        try await signet.test { client in
            func burst(_ round: Int) async throws {
                let random = UUID().uuidString
                _ = try await client.execute(uri: "/no/such/path/\(random)", method: .get)
                _ = try await client.admin(.get, "/v1/agents/\(UUID().uuidString.lowercased())")
                _ = try await client.admin(.get, "/v1/agents/not-a-uuid-\(round)")
                _ = try await client.execute(uri: "/v1/agents/\(random)", method: HTTPRequest.Method("X\(round)")!)
                _ = try await client.tokenRequest("grant_type=client_credentials&client_id=sgc_\(random)&client_secret=x")
            }
            try await burst(0)
            _ = try await Self.scrape(client)  // the scrape's own series appear from the next one on
            let before = try await Self.scrape(client).seriesCount
            for round in 1...1000 { try await burst(round) }
            let after = try await Self.scrape(client)
            XCTAssertEqual(after.seriesCount, before, "5000 distinct paths, ids, methods and client ids add no series")
            XCTAssertEqual(
                after.value(#"signet_http_request_duration_seconds_count{route="unmatched",method="GET",status_class="4xx"}"#), 1001)
            XCTAssertEqual(
                after.value(#"signet_http_request_duration_seconds_count{route="unmatched",method="other",status_class="4xx"}"#), 1001)
        }
    }

    func testMetricsTokenIsRequiredOnThePublicListenerAndFailuresCountAgainstTheAddress() async throws {
        let token = "metrics-token-0123456789abcdefghijklmn"
        let signet = try await TestSignet.make(["METRICS_TOKEN": token, "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "2"])
        try await signet.test { client in
            let anonymous = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(anonymous.status, .unauthorized)
            XCTAssertEqual(anonymous.errorCode, "unauthorized")
            XCTAssertTrue(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            let wrong = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)x"])
            XCTAssertEqual(wrong.status, .unauthorized)
            XCTAssertFalse(wrong.text.contains(token))
            let guessing = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)y"])
            XCTAssertEqual(guessing.status, .tooManyRequests, "failed operations authentication spends the address's budget of 2")
            for _ in 0..<10 {
                let scraped = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"])
                XCTAssertEqual(scraped.status, .ok, "never limited, far past the address budget of 2")
                XCTAssertEqual(scraped.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
                XCTAssertNil(scraped.headers[.init("RateLimit")!])
            }
        }
    }

    /// Documentation that is true: every `signet_*` metric that the docs (operations,
    /// configuration, API, Simulator), the alert rules or the dashboard name is one a running
    /// instance exports.
    func testEveryMetricTheDocsAlertsAndDashboardNameIsExported() async throws {
        let signet = try await TestSignet.make()
        let exported: Set<String> = try await signet.test { client in
            let agent = try await client.agent(scopes: ["read"])
            _ = try await client.accessToken(for: agent)
            let text = try await Self.scrape(client).text
            return Set(
                text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
                    String(line.prefix { $0 != "{" && $0 != " " })
                })
        }
        // Exported only where they happen: Vault and OPA calls (not configured here), and the
        // master behind Sentinel and the cluster's slot map (a single Redis here; the
        // redis-sentinel-failover and redis-cluster scenarios read them).
        let elsewhere: Set<String> = [
            "signet_dependency_call_duration_seconds", "signet_dependency_call_errors_total", "signet_redis_master",
            "signet_redis_master_switches_total", "signet_redis_cluster_masters", "signet_redis_cluster_map_changes_total",
        ]
        // Not metrics: the change listener's NOTIFY channel (`ChangeListener.channel`).
        let notMetrics: Set<String> = ["signet_clients"]
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pattern = try Regex(#"signet_[a-z_]+[a-z]"#)
        for file in [
            "docs/operations.md", "docs/configuration.md", "docs/api.md", "docs/simulator.md", "docs/alerts.yml",
            "docs/grafana-dashboard.json",
        ] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let named = Set(text.matches(of: pattern).map { String(text[$0.range]) })
            XCTAssertFalse(named.isEmpty, file)
            for name in named {
                let base = ["_bucket", "_count", "_sum"].reduce(name) { name, suffix in
                    name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name
                }
                guard !elsewhere.contains(base), !notMetrics.contains(name) else { continue }
                XCTAssertTrue(
                    exported.contains(name) || exported.contains(base + "_count") || exported.contains(base + "_bucket"),
                    "\(file) names \(name), which is not exported")
            }
        }
    }

    struct Scrape {
        let text: String

        /// The value of the sample whose name and labels are exactly `series`.
        func value(_ series: String) -> Double? {
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " ") else { continue }
                if line[..<space] == series { return Double(line[line.index(after: space)...]) }
            }
            return nil
        }

        var seriesCount: Int { text.split(separator: "\n").count { !$0.hasPrefix("#") } }
    }

    static func scrape(_ client: any TestClientProtocol) async throws -> Scrape {
        let response = try await client.operations("/metrics")
        XCTAssertEqual(response.status, .ok)
        return Scrape(text: response.text)
    }
}
