import Foundation

/// The checks `signet-sim chaos` runs against an already deployed Signet: fault-free ones, and,
/// given `faults` (`--allow-faults` and the Toxiproxy proxies of its dependencies), the fault
/// scenarios of `ChaosFaults`. It changes nothing but the test agents it creates and deactivates
/// (and the toxics it adds and removes).
public enum Chaos {
    /// - Parameter operations: the base URL of an instance's operations listener, where
    ///   `/health/detailed` is read; nil asks `target` (which answers it only with a token).
    public static func run(target: String, adminToken: String, operations: String? = nil, faults: ChaosFaults? = nil) async
        -> ScenarioReport
    {
        let started = ContinuousClock.now
        var checks: [Check] = []
        func record(_ name: String, _ passed: Bool, expected: String, observed: String) {
            checks.append(
                Check(
                    name: name, outcome: passed ? .passed : .failed, expected: expected, observed: observed,
                    at: ContinuousClock.now - started))
        }
        func skip(_ name: String, expected: String, observed: String) {
            checks.append(Check(name: name, outcome: .skipped, expected: expected, observed: observed, at: ContinuousClock.now - started))
        }
        let base = target.hasSuffix("/") ? String(target.dropLast()) : target
        let operationsBase = operations.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? base
        var failure: String?
        do {
            try await registryRoundTrip(base: base, token: adminToken, record: record)
            try await healthShape(base: base, operations: operationsBase, record: record, skip: skip)
            if let faults {
                let leftovers = try await faults.removeLeftovers()
                record("toxics an earlier run left behind, removed", true, expected: "reported", observed: "\(leftovers)")
                let client = SignetClient(base: base, adminToken: adminToken)
                let agent = try await client.register(prefix: "chaos-faults", owner: "signet-sim-chaos", scopes: ["chaos:check"])
                do {
                    try await faults.run(base: base, operations: operationsBase, agent: agent, adminToken: adminToken, record: record)
                } catch {
                    await faults.cleanUp()
                    _ = try? await HTTP.admin(.DELETE, "\(base)/v1/agents/\(agent.id)", token: adminToken)
                    throw error
                }
                _ = try? await HTTP.admin(.DELETE, "\(base)/v1/agents/\(agent.id)", token: adminToken)
            }
            try await rateLimit(base: base, token: adminToken, record: record, skip: skip)
        } catch {
            failure = "\(error)"
        }
        return ScenarioReport(
            scenario: "chaos",
            specScenario: faults == nil ? "fault-free checks against \(base)" : "checks and faults against \(base)",
            checks: checks,
            duration: ContinuousClock.now - started,
            error: failure
        )
    }

    typealias Record = (String, Bool, String, String) -> Void
    /// Records a check that could not run because the target lacks the feature.
    typealias Skip = (String, String, String) -> Void

    static func registryRoundTrip(base: String, token: String, record: Record) async throws {
        let owner = "signet-sim-chaos"
        let name = "chaos-\(UUID().uuidString.prefix(8).lowercased())"
        let (created, agent) = try await SignetClient(base: base, adminToken: token).registration(
            name: name, owner: owner, scopes: ["chaos:check"])
        record("register an agent", created.status == 201, "201", "\(created.status)")
        guard let agent else { throw SimulatorError.setupFailed("registration answered \(created.status): \(created.body)") }
        let (id, secret) = (agent.id, agent.secret)
        let shown = try await HTTP.admin(.GET, "\(base)/v1/agents/\(id)", token: token)
        record("read it back", shown.status == 200 && shown.json["name"] as? String == name, "200 with the same name", "\(shown.status)")
        record(
            "secret not shown again", !shown.body.contains(secret), "no client_secret",
            shown.body.contains(secret) ? "secret present" : "absent")
        let listed = try await HTTP.admin(.GET, "\(base)/v1/agents?owner=\(owner)&limit=100", token: token)
        let ids = (listed.json["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
        record("listed by owner", ids.contains(id), "the new id in items", "\(ids.count) items")
        let patched = try await HTTP.admin(.PATCH, "\(base)/v1/agents/\(id)", token: token, body: #"{"status":"suspended"}"#)
        record(
            "suspend it", patched.json["status"] as? String == "suspended", "status suspended",
            "\(patched.status) \(patched.json["status"] ?? "-")")
        let deleted = try await HTTP.admin(.DELETE, "\(base)/v1/agents/\(id)", token: token)
        record("deactivate it", deleted.status == 204, "204", "\(deleted.status)")
        let unauthorised = try await HTTP.request(.GET, "\(base)/v1/agents")
        record("admin API needs the token", unauthorised.status == 401, "401", "\(unauthorised.status)")
    }

    static func healthShape(base: String, operations: String, record: Record, skip: Skip) async throws {
        let live = try await HTTP.request(.GET, "\(base)/health/live")
        record(
            "/health/live", live.status == 200 && live.json["status"] as? String == "ok", #"200 {"status":"ok"}"#,
            "\(live.status) \(live.body)")
        let ready = try await HTTP.request(.GET, "\(base)/health/ready")
        record(
            "/health/ready",
            [200, 503].contains(ready.status) && ready.json["status"] is String && ready.json["database"] is String,
            "200 or 503 with status and database",
            "\(ready.status) \(ready.body)"
        )
        let detailed = try await HTTP.request(.GET, "\(operations)/health/detailed")
        if detailed.status == 404 {
            skip("/health/detailed (on the operations listener: give --operations)", "200/207/503", "404")
        } else if detailed.status == 401 {
            skip("/health/detailed (protected by HEALTH_DETAILED_TOKEN)", "200/207/503", "401")
        } else {
            let expectedStatus = ["healthy": 200, "degraded": 207, "unhealthy": 503]
            let overall = detailed.json["status"] as? String ?? ""
            let present = ["database", "redis", "vault", "opa"].compactMap { name in
                (detailed.json[name] as? [String: Any]).map { (name, $0) }
            }
            let shapesValid =
                present.contains { $0.0 == "database" }
                && present.allSatisfy { _, entry in
                    ["healthy", "degraded", "unreachable"].contains(entry["status"] as? String ?? "") && entry["latencyMs"] is NSNumber
                }
            let statuses = present.map { $0.1["status"] as? String ?? "" }
            let rolledUp = statuses.contains("unreachable") ? "unhealthy" : statuses.contains("degraded") ? "degraded" : "healthy"
            record(
                "/health/detailed",
                expectedStatus[overall] == detailed.status && shapesValid && rolledUp == overall
                    && detailed.json["checkedAt"] is String && detailed.header("Cache-Control") == "no-store",
                "200 healthy / 207 degraded / 503 unhealthy, matching the per-dependency {status, latencyMs}, checkedAt, no-store",
                "\(detailed.status) \(detailed.body.prefix(300))"
            )
        }
    }

    /// Exhausts the admin token's window on a cheap route and checks the 429.
    static func rateLimit(base: String, token: String, record: Record, skip: Skip) async throws {
        let first = try await HTTP.admin(.GET, "\(base)/v1/agents?limit=1", token: token)
        guard let policy = first.header("RateLimit-Policy") else {
            skip("rate limiting (no RateLimit-Policy header on this target)", "RateLimit-Policy", "absent")
            return
        }
        let limit = policy.split(separator: ";").first.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
        guard limit > 0, limit <= 1000 else {
            record("rate limit small enough to exhaust", false, "a limit ≤ 1000", policy)
            return
        }
        var rejected: HTTP.Response?
        for _ in 0...limit {
            let response = try await HTTP.admin(.GET, "\(base)/v1/agents?limit=1", token: token)
            if response.status == 429 {
                rejected = response
                break
            }
        }
        record("429 after the limit", rejected != nil, "429 within \(limit + 1) requests", rejected.map { "\($0.status)" } ?? "never")
        let retryAfter = rejected?.header("Retry-After").flatMap(Int.init)
        record("Retry-After on the 429", (retryAfter ?? 0) >= 1, "whole seconds ≥ 1", rejected?.header("Retry-After") ?? "absent")
    }
}
