import Foundation
import NIOConcurrencyHelpers
import Service
import Spec

#if canImport(Glibc)
    import Glibc
#endif

/// Operating Signet behind a load balancer (issue 12): instances are restarted one at a time
/// under traffic, and nobody notices.
public enum OperationsScenarios {
    static let requirement = "Operations: draining restarts"

    public static let rollingRestart = Scenario(
        name: "rolling-restart",
        requirement: requirement,
        specScenario: "A rolling restart behind the load balancer fails no request",
        summary: "Two instances behind haproxy (health checks on /health/ready) under steady traffic (token requests and "
            + "admin reads from 8 clients): a is sent SIGTERM, drains (readiness 503, still serving), exits 0 and is "
            + "started again; once it serves again, b the same. Zero failed requests; each instance's share is reported."
    ) { context in
        let database = try await context.database()
        var variables = context.environment(database: database, applicationName: "sim-rolling", CacheScenarios.unlimited())
        variables["SHUTDOWN_DRAIN_MS"] = String(Defaults.shutdownDrainMilliseconds)
        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let balancer = try await context.startLoadBalancer([first, second])
        let agent = try await CacheScenarios.register(context, base: balancer.url)
        let traffic = Traffic()

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var turn = worker
                    while !traffic.stopped {
                        turn += 1
                        await traffic.send(
                            turn.isMultiple(of: 2)
                                ? {
                                    try await HealthScenarios.requestToken(
                                        base: balancer.url, clientID: agent.clientID, secret: agent.secret)
                                }
                                : { try await HTTP.admin(.GET, "\(balancer.url)/v1/agents/\(agent.id)", token: context.adminToken) }
                        )
                    }
                }
            }
            defer { traffic.stop() }
            try await traffic.waitUntilServed(by: [first.id, second.id], after: traffic.snapshot(), within: .seconds(15))

            for instance in [first, second] {
                let restarted = try await OperationsScenarios.restart(instance, context: context)
                try await traffic.waitUntilServed(by: [restarted.id], after: traffic.snapshot(), within: .seconds(30))
            }
            traffic.stop()
            try await group.waitForAll()
        }

        let totals = traffic.snapshot()
        context.check(
            "requests sent during the rolling restart", totals.sent > 500, expected: "more than 500",
            observed: "\(totals.sent)")
        context.check(
            "failed requests", totals.failures.isEmpty, expected: "0",
            observed: totals.failures.isEmpty
                ? "0" : "\(totals.failures.count): " + totals.failures.prefix(5).joined(separator: "; "))
        context.check(
            "requests served by each instance", true, expected: "reported",
            observed: totals.served.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }

    public static let prometheusScrape = Scenario(
        name: "prometheus-scrape",
        requirement: requirement,
        specScenario: "A real Prometheus scrapes every instance and sees the series move",
        summary: "Two instances, a real Prometheus (Debian's package) scraping both every second on their operations "
            + "listeners (OPS_PORT, no token; the public listener refuses /metrics without METRICS_TOKEN): both targets up, the pool and request series present for each, and "
            + "signet_token_requests_total{result=\"issued\"} rising by the 40 tokens issued, through Prometheus's HTTP API."
    ) { context in
        let database = try await context.database()
        let variables = context.environment(database: database, applicationName: "sim-prometheus", CacheScenarios.unlimited())
        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let publicScrape = try await HTTP.request(.GET, "\(first.url)/metrics")
        context.expect("GET /metrics on the public listener without METRICS_TOKEN", publicScrape.status, equals: 404)
        let prometheus = try await PrometheusServer.start(scraping: [first, second])
        context.atTearDown { await prometheus.stop() }

        try await waitUntil("Prometheus scrapes both instances", timeout: .seconds(20)) {
            try await prometheus.query(#"up{job="signet"}"#).filter { $0.value == 1 }.count == 2
        }
        context.expect("targets up", try await prometheus.query(#"up{job="signet"}"#).filter { $0.value == 1 }.count, equals: 2)
        let issued = #"sum(signet_token_requests_total{job="signet",result="issued"})"#
        let before = try await prometheus.query(issued).first?.value ?? 0
        let agent = try await CacheScenarios.register(context, base: first.url)
        for instance in [first, second] {
            for _ in 0..<20 {
                let answer = try await HealthScenarios.requestToken(base: instance.url, clientID: agent.clientID, secret: agent.secret)
                guard answer.status == 200 else { throw SimulatorError.setupFailed("token: \(answer.status) \(answer.body)") }
            }
        }
        var after = before
        try await waitUntil("Prometheus sees the 40 tokens", timeout: .seconds(20)) {
            after = try await prometheus.query(issued).first?.value ?? 0
            return after >= before + 40
        }
        context.expect("issued tokens seen by Prometheus, after minus before", Int(after - before), equals: 40)
        let pools = try await prometheus.query(#"signet_db_pool_connections{job="signet",state="total"}"#)
        context.expect("instances exporting pool connections", Set(pools.compactMap { $0.labels["instance"] }).count, equals: 2)
        let tokenRoute = try await prometheus.query(
            #"sum by (instance) (signet_http_request_duration_seconds_count{route="/oauth/token",status_class="2xx"})"#)
        context.expect("instances with timed token requests", tokenRoute.filter { $0.value >= 20 }.count, equals: 2)
        let health = try await prometheus.query(#"signet_health_check_status{dependency="database",status="healthy"}"#)
        context.expect("instances reporting a healthy database", health.filter { $0.value == 1 }.count, equals: 2)
    }

    /// SIGTERM, then checks the drain on the instance itself: readiness 503 at once while requests
    /// are still served, a clean exit within the drain plus the in-flight bound; then the same
    /// instance (id, port, variables) is started again.
    static func restart(_ instance: SignetInstance, context: ScenarioContext) async throws -> SignetInstance {
        let signalled = ContinuousClock.now
        instance.process.signal(SIGTERM)
        try await waitUntil("\(instance.id) reports draining", timeout: .seconds(2)) {
            (try? await HTTP.request(.GET, "\(instance.url)/health/ready"))?.status == 503
        }
        context.expect(
            "\(instance.id): /health/ready answers 503 after SIGTERM within", ContinuousClock.now - signalled,
            in: .zero ... .seconds(1), describe: format)
        let live = try? await HTTP.request(.GET, "\(instance.url)/health/live")
        context.expect("\(instance.id): /health/live while draining", live?.status ?? 0, equals: 200)
        let drain = Duration.milliseconds(Defaults.shutdownDrainMilliseconds)
        let bound = drain + .milliseconds(Defaults.shutdownInFlightMilliseconds)
        while instance.process.isRunning, ContinuousClock.now - signalled < bound + .seconds(5) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let exited = ContinuousClock.now - signalled
        context.expect("\(instance.id): exit status after SIGTERM", instance.process.exitStatus ?? -1, equals: 0)
        context.expect(
            "\(instance.id): exited after the drain, within the drain plus the in-flight bound", exited,
            in: drain...bound, describe: format)
        return try await context.startSignet(id: instance.id, environment: instance.environment)
    }

    /// Requests sent by the workers and their outcomes, by the instance that answered.
    final class Traffic: Sendable {
        struct Totals {
            var sent = 0
            var served: [String: Int] = [:]
            var failures: [String] = []
        }

        private let totals = NIOLockedValueBox(Totals())
        private let done = NIOLockedValueBox(false)

        var stopped: Bool { done.withLockedValue { $0 } }
        func stop() { done.withLockedValue { $0 = true } }
        func snapshot() -> Totals { totals.withLockedValue { $0 } }

        func send(_ request: () async throws -> HTTP.Response) async {
            let outcome: String?
            let instance: String?
            do {
                let response = try await request()
                instance = response.header("Signet-Instance")
                outcome = response.status == 200 ? nil : "\(response.status) from \(instance ?? "?"): \(response.body.prefix(120))"
            } catch {
                instance = nil
                outcome = "no answer: \(error)"
            }
            totals.withLockedValue { totals in
                totals.sent += 1
                if let instance, outcome == nil { totals.served[instance, default: 0] += 1 }
                if let outcome { totals.failures.append(outcome) }
            }
        }

        /// Waits until each of `instances` answered more requests than in `earlier`.
        func waitUntilServed(by instances: [String], after earlier: Totals, within bound: Duration) async throws {
            try await waitUntil("\(instances.joined(separator: ", ")) serve traffic through the balancer", timeout: bound) {
                let now = self.snapshot()
                return instances.allSatisfy { now.served[$0, default: 0] > earlier.served[$0, default: 0] }
            }
        }
    }
}
