import Foundation
import Service

/// Vault as the home of the secret material (DESIGN.md §Tokens and secrets), through the Vault
/// fake: created on first start, shared by instances starting at once, nowhere in PostgreSQL,
/// and a Vault outage that does not stop tokens.
public enum VaultScenarios {
    public static let secretsInVault = Scenario(
        name: "vault-secrets",
        requirement: "Detailed health endpoint reports per-service status",
        specScenario: "(design) secret material in Vault",
        summary: "Two instances start at once on an empty Vault: one HMAC key and one signing key set, in Vault only; "
            + "a token from one verifies on the other; a key rotation reaches both; Vault down later: tokens still flow; "
            + "Vault down at start: exit 1 with one line."
    ) { context in
        let vault = try await VaultFake.start()
        context.atTearDown { await vault.stop() }
        let database = try await context.database()
        let environment = context.environment(
            database: database, applicationName: "vault-secrets",
            [
                "VAULT_ADDR": vault.url, "VAULT_TOKEN": vault.token, "REDIS_RATE_LIMIT_ENABLED": "false",
                // Instances behind one balancer share one issuer.
                "SIGNET_ISSUER": "http://signet.sim.invalid",
            ])
        async let startedA = context.startSignet(id: "vault-a", environment: environment)
        async let startedB = context.startSignet(id: "vault-b", environment: environment)
        let (a, b) = try await (startedA, startedB)

        context.expect("HMAC key versions written to Vault", vault.versionCount(path: "signet/credential-hmac"), equals: 1)
        context.expect("signing key set versions written to Vault", vault.versionCount(path: "signet/signing-keys"), equals: 1)
        let serverKeys = try await context.stack.postgres.query("SELECT count(*) AS n FROM server_keys", database: database)
        let signingKeys = try await context.stack.postgres.query("SELECT count(*) AS n FROM signing_keys", database: database)
        context.expect("server keys in PostgreSQL", serverKeys.first?["n"] ?? "?", equals: "0")
        context.expect("signing keys in PostgreSQL", signingKeys.first?["n"] ?? "?", equals: "0")

        let jwksA = try await HTTP.request(.GET, "\(a.url)/.well-known/jwks.json").body
        let jwksB = try await HTTP.request(.GET, "\(b.url)/.well-known/jwks.json").body
        context.check(
            "both instances publish the same keys", jwksA == jwksB && jwksA.contains("\"kid\""), expected: "equal JWKS",
            observed: jwksA == jwksB ? "equal" : "different")

        // A client registered on one instance authenticates on the other: one HMAC key.
        let (clientID, secret) = try await HealthScenarios.registerAgent(context, base: a.url, scopes: ["reports:read"])
        let tokenFromB = try await HealthScenarios.requestToken(base: b.url, clientID: clientID, secret: secret)
        context.expect("token from B for a client registered on A", tokenFromB.status, equals: 200)
        let accessToken = tokenFromB.json["access_token"] as? String ?? ""
        context.expect("A finds B's token active", try await introspect(context, base: a.url, token: accessToken), equals: true)

        // Rotation on A writes to Vault; B signs with the new key within its refresh interval.
        let rotated = try await HTTP.admin(.POST, "\(a.url)/v1/keys/rotate", token: context.adminToken)
        context.expect("key rotation on A", rotated.status, equals: 201)
        let newKid = rotated.json["kid"] as? String ?? "?"
        context.expect("signing key set versions after rotation", vault.versionCount(path: "signet/signing-keys"), equals: 2)
        // Within B's refresh interval (2 s) plus slack; the check records what B last signed with.
        var signedWith = "none"
        let deadline = ContinuousClock.now + .seconds(10)
        while signedWith != newKid, ContinuousClock.now < deadline {
            let token = try await HealthScenarios.requestToken(base: b.url, clientID: clientID, secret: secret)
            signedWith = kid(of: token.json["access_token"] as? String ?? "") ?? "none"
            if signedWith != newKid { try await Task.sleep(for: .milliseconds(100)) }
        }
        context.expect("B signs with the rotated key within 10 s", signedWith, equals: newKid)

        // Vault down later: the material in memory keeps tokens flowing; health says so.
        try await vault.setDown(true)
        let duringOutage = try await HealthScenarios.requestToken(base: b.url, clientID: clientID, secret: secret)
        context.expect("token while Vault is down", duringOutage.status, equals: 200)
        let (health, _) = try await HealthScenarios.detailed(context, "\(a.opsURL)/health/detailed", until: "vault", is: "unreachable")
        context.expect("health while Vault is down", health.status, equals: 503)
        try await vault.setDown(false)

        // Vault down at start: no half-configured instance.
        try await vault.setDown(true)
        try await context.expectStartRefused(id: "vault-c", environment: environment, when: "with Vault down at start", naming: "Vault")
        try await vault.setDown(false)
    }

    public static let importFromPostgres = Scenario(
        name: "vault-import",
        requirement: "Detailed health endpoint reports per-service status",
        specScenario: "(design) moving a deployment to Vault",
        summary: "An instance ran without Vault (material in PostgreSQL); restarted with an empty Vault, it copies that "
            + "material there: the old client secret and the old token keep working, and Vault holds the same keys."
    ) { context in
        let database = try await context.database()
        let issuer = ["SIGNET_ISSUER": "http://signet.sim.invalid", "REDIS_RATE_LIMIT_ENABLED": "false"]
        let before = try await context.startSignet(
            id: "pre-vault", environment: context.environment(database: database, applicationName: "vault-import", issuer))
        let (clientID, secret) = try await HealthScenarios.registerAgent(context, base: before.url, scopes: ["reports:read"])
        let oldToken = try await HealthScenarios.requestToken(base: before.url, clientID: clientID, secret: secret)
        let jwksBefore = try await HTTP.request(.GET, "\(before.url)/.well-known/jwks.json").body
        await before.stop()

        let vault = try await VaultFake.start()
        context.atTearDown { await vault.stop() }
        var environment = context.environment(database: database, applicationName: "vault-import", issuer)
        environment["VAULT_ADDR"] = vault.url
        environment["VAULT_TOKEN"] = vault.token
        let after = try await context.startSignet(id: "with-vault", environment: environment)
        context.expect("HMAC key copied to Vault", vault.versionCount(path: "signet/credential-hmac"), equals: 1)
        context.expect("signing keys copied to Vault", vault.versionCount(path: "signet/signing-keys"), equals: 1)
        let jwksAfter = try await HTTP.request(.GET, "\(after.url)/.well-known/jwks.json").body
        context.check(
            "the same published keys", jwksBefore == jwksAfter, expected: "equal JWKS",
            observed: jwksBefore == jwksAfter ? "equal" : "different")
        let newToken = try await HealthScenarios.requestToken(base: after.url, clientID: clientID, secret: secret)
        context.expect("the old client secret with Vault", newToken.status, equals: 200)
        let active = try await introspect(context, base: after.url, token: oldToken.json["access_token"] as? String ?? "")
        context.expect("a token signed before the move is still active", active, equals: true)
        context.check(
            "the move is logged", !after.logLines(containing: LogLine.secretsInPostgres.text).isEmpty, expected: "a warning",
            observed: "\(after.logLines(containing: LogLine.secretsInPostgres.text).count) lines")
    }

    static func introspect(_ context: ScenarioContext, base: String, token: String) async throws -> Bool {
        let response = try await HTTP.request(
            .POST, "\(base)/oauth/introspect",
            headers: [("Authorization", "Bearer \(context.adminToken)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: "token=\(token)")
        return response.json["active"] as? Bool ?? false
    }

    static func kid(of token: String) -> String? {
        guard let header = token.split(separator: ".").first, let data = Data(base64URL: String(header)) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["kid"] as? String
    }
}
