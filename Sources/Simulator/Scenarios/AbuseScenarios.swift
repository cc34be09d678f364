import Foundation

/// The abuse an identity service meets first, tried through haproxy as an attacker on another
/// address would (issue 10).
public enum AbuseScenarios {
    static let requirement = "Authentication before rate limiting"

    public static let lockoutThroughBalancer = Scenario(
        name: "lockout-behind-balancer",
        requirement: requirement,
        specScenario: "A client id is public: naming it must not spend its quota",
        summary: "Two instances behind haproxy (X-Forwarded-For trusted from it only), address budget 10: 60 wrong-secret "
            + "requests naming the victim from 127.0.0.2, each with a forged X-Forwarded-For, are 10 × 401 then 429 from either "
            + "instance; the victim on 127.0.0.1 still gets its token with its quota untouched."
    ) { context in
        let database = try await context.database()
        let variables = context.environment(
            database: database, applicationName: "sim-abuse",
            [
                "REDIS_KEY_PREFIX": "sim-\(UUID().uuidString.prefix(8).lowercased()):", "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "10",
                "RATE_LIMIT_MAX_REQUESTS": "30",
            ])
        let first = try await context.startSignet(id: "a", environment: variables)
        let second = try await context.startSignet(id: "b", environment: variables)
        let balancer = try await context.startLoadBalancer([first, second])
        let (clientID, secret) = try await HealthScenarios.registerAgent(context, base: balancer.url, scopes: ["read"])

        var statuses: [Int] = []
        var instances: Set<String> = []
        for index in 0..<60 {
            let response = try await HTTP.request(
                from: "127.0.0.2", port: balancer.port, "POST", "/oauth/token",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Forwarded-For", "198.51.100.\(index)")],
                body: "grant_type=client_credentials&client_id=\(clientID)&client_secret=wrong")
            statuses.append(response.status)
            if response.status == 429 { instances.insert(response.header("Signet-Instance") ?? "?") }
        }
        context.expect("the attacker's first 10 requests", Array(statuses.prefix(10)), equals: Array(repeating: 401, count: 10))
        context.expect("its next 50", Set(statuses.dropFirst(10)), equals: [429])
        context.expect("instances that refused it", instances, equals: [first.id, second.id])
        let basic = Data("\(clientID):\(secret)".utf8).base64EncodedString()
        let own = try await HTTP.request(
            from: "127.0.0.1", port: balancer.port, "POST", "/oauth/token",
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Basic \(basic)")],
            body: "grant_type=client_credentials")
        context.expect("the victim's own token request", own.status, equals: 200)
        context.expect("the victim's quota", own.header("RateLimit")?.hasPrefix("limit=30, remaining=29") ?? false, equals: true)
    }
}
