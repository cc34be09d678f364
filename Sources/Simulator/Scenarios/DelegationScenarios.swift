import Foundation
import Spec

#if canImport(Glibc)
    import Glibc
#endif

/// Delegation and workload federation (issue 30): token exchange with actor chains across
/// instances, and the JWT-bearer grant while the trusted issuer's key server is frozen.
public enum DelegationScenarios {
    static let requirement = "Token issuance at production cardinality"
    static let issuer = "http://signet.sim.invalid"
    static let exchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
    static let accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
    /// The bound from a revocation's answer to every derived token being inactive on another instance.
    static let propagationBound = Duration.milliseconds(100)

    public static let delegationChain = Scenario(
        name: "delegation-chain",
        requirement: requirement,
        specScenario: "(design) delegation chains die with the token they came from",
        summary: "Two instances. A lets B act for it, B lets C: B exchanges A's token on a, C exchanges the result on b; "
            + "C's token carries act {C, act {B}} and only the scopes A, B and C share. 20 times, A's credential revoked on a "
            + "makes B's and C's derived tokens inactive at introspection on b within 100 ms (p99), while B's and C's own "
            + "tokens stay active."
    ) { context in
        let database = try await context.database()
        var variables = CacheScenarios.unlimited()
        variables["SIGNET_ISSUER"] = issuer
        let environment = context.environment(database: database, applicationName: "sim-delegation", variables)
        let a = try await context.startSignet(id: "a", environment: environment)
        let b = try await context.startSignet(id: "b", environment: environment)
        let onA = SignetClient(base: a.url, adminToken: context.adminToken)

        var delays: [Duration] = []
        var failures: [String] = []
        for trial in 0..<20 {
            let subject = try await onA.register(prefix: "deleg-a", scopes: ["read", "write", "deploy"])
            let middle = try await onA.register(prefix: "deleg-b", scopes: ["read", "write"])
            let last = try await onA.register(prefix: "deleg-c", scopes: ["read", "deploy"])
            for (grantor, grantee) in [(subject, middle), (middle, last)] {
                let patched = try await HTTP.admin(
                    .PATCH, "\(a.url)/v1/agents/\(grantor.id)", token: context.adminToken, body: #"{"may_act":["\#(grantee.id)"]}"#)
                guard patched.status == 200 else { throw SimulatorError.setupFailed("may_act: \(patched.status) \(patched.body)") }
            }
            let tokenA = try await accessToken(onA, subject, scope: "read write deploy")
            let tokenB = try await accessToken(onA, middle)
            let tokenC = try await accessToken(SignetClient(base: b.url, adminToken: context.adminToken), last)
            let ab = try await exchange(base: a.url, middle, subject: tokenA, actor: tokenB)
            let abc = try await exchange(base: b.url, last, subject: ab, actor: tokenC)
            if trial == 0 {
                let claims = claims(of: abc)
                context.expect("C's token's subject", claims["sub"] as? String ?? "absent", equals: subject.id)
                context.expect("C's token's client", claims["client_id"] as? String ?? "absent", equals: last.clientID)
                let act = claims["act"] as? [String: Any]
                let chain = [act?["sub"] as? String, (act?["act"] as? [String: Any])?["sub"] as? String].compactMap { $0 }
                context.expect("C's token's actor chain (acting agent first)", chain, equals: [last.id, middle.id])
                context.expect("C's token's scopes (what A, B and C share)", claims["scope"] as? String ?? "absent", equals: "read")
                context.expect("C's token active on a", try await introspect(context, base: a.url, abc), equals: true)
            }
            let revoked = try await HTTP.admin(
                .DELETE, "\(a.url)/v1/agents/\(subject.id)/credentials/\(subject.credentialID)", token: context.adminToken)
            guard revoked.status == 204 else { throw SimulatorError.setupFailed("revoking A's credential: \(revoked.status)") }
            let answered = ContinuousClock.now
            var dead = false
            while !dead, ContinuousClock.now - answered < .seconds(2) {
                let (abActive, abcActive) = (
                    try await introspect(context, base: b.url, ab), try await introspect(context, base: b.url, abc)
                )
                dead = !abActive && !abcActive
            }
            if dead { delays.append(ContinuousClock.now - answered) } else { failures.append("trial \(trial)") }
            let ownB = try await introspect(context, base: b.url, tokenB)
            let ownC = try await introspect(context, base: b.url, tokenC)
            if !ownB || !ownC {
                failures.append("trial \(trial): B's or C's own token inactive")
            }
        }
        context.expect("trials where both derived tokens died on b within 2 s, own tokens alive", failures, equals: [])
        let sorted = delays.sorted()
        if !sorted.isEmpty {
            let p99 = sorted[Int((Double(sorted.count) * 0.99).rounded(.up)) - 1]
            context.expect(
                "p99 from the revocation's answer on a to both derived tokens inactive on b", p99, in: .zero...propagationBound,
                describe: format)
            context.check("median", true, expected: "reported", observed: format(sorted[sorted.count / 2]))
        }
    }

    public static let issuerFrozen = Scenario(
        name: "issuer-frozen",
        requirement: "Detailed health endpoint reports per-service status",
        specScenario: "(design) a trusted issuer's key server frozen",
        summary: "A workload gets its agent's token by a trusted issuer's assertion (the JWT-bearer grant); the issuer's key "
            + "server (a process of its own) is then frozen with SIGSTOP: 20 assertions signed with the cached key keep getting "
            + "tokens, each within 1 s; one naming a key the issuer never published fails (invalid_grant) within the key read's "
            + "2 s deadline plus 1 s; /health/detailed reports trustedIssuers degraded naming the issuer; SIGCONT, and tokens flow."
    ) { context in
        let published = IssuerFake.newKey()
        let unpublished = IssuerFake.newKey()
        let workloadIssuer = try await IssuerFake.start(issuer: "https://spire.sim.invalid", keys: [published], serve: false)
        let server = try await startKeyServer(serving: workloadIssuer.jwksJSON)
        context.atTearDown { await server.process.stop() }

        let database = try await context.database()
        var variables = CacheScenarios.unlimited()
        variables["SIGNET_ISSUER"] = issuer
        variables["TRUSTED_ISSUER_ALLOW_HTTP"] = "true"
        let signet = try await context.startSignet(
            id: "fed", environment: context.environment(database: database, applicationName: "sim-federation", variables))
        let trust = try await HTTP.admin(
            .POST, "\(signet.url)/v1/trusted-issuers", token: context.adminToken,
            body: #"{"issuer":"\#(workloadIssuer.issuer)","jwks_uri":"\#(server.url)","audience":"\#(issuer)"}"#)
        context.expect("trusting the issuer", trust.status, equals: 201)
        let subject = "spiffe://sim.invalid/ns/prod/sa/worker"
        let registered = try await HTTP.admin(
            .POST, "\(signet.url)/v1/agents", token: context.adminToken,
            body:
                #"{"name":"worker","owner":"sim","scopes":["read"],"federated_subject":{"issuer":"\#(workloadIssuer.issuer)","subject":"\#(subject)"}}"#
        )
        context.expect("registering the federated agent", registered.status, equals: 201)
        func token(_ key: IssuerFake.Key) async throws -> (HTTP.Response, Duration) {
            let assertion = workloadIssuer.assertion(subject: subject, audience: issuer, key: key)
            let started = ContinuousClock.now
            let response = try await HTTP.request(
                .POST, "\(signet.url)/oauth/token", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=\(assertion)", timeout: .seconds(10))
            return (response, ContinuousClock.now - started)
        }
        let (before, _) = try await token(published)
        context.expect("a token by assertion, keys read from the issuer", before.status, equals: 200)
        context.expect(
            "the token is the agent's", claims(of: before.json["access_token"] as? String ?? "")["sub"] as? String ?? "absent",
            equals: registered.json["id"] as? String ?? "?")

        server.process.signal(SIGSTOP)
        var slowest = Duration.zero
        var refused: [Int] = []
        for _ in 0..<20 {
            let (response, took) = try await token(published)
            slowest = max(slowest, took)
            if response.status != 200 { refused.append(response.status) }
        }
        context.expect("tokens by the cached key while the key server is frozen (statuses other than 200)", refused, equals: [])
        context.expect("slowest of them", slowest, in: .zero ... .seconds(1), describe: format)
        let (unknown, unknownTook) = try await token(unpublished)
        context.expect("an assertion naming a key never published", unknown.status, equals: 400)
        context.expect("its error", unknown.json["error"] as? String ?? "absent", equals: "invalid_grant")
        context.expect("answered within the key read's deadline plus 1 s", unknownTook, in: .zero ... .seconds(3), describe: format)
        let (health, _) = try await HealthScenarios.detailed(
            context, "\(signet.opsURL)/health/detailed", until: "trustedIssuers", is: "degraded")
        let message = (health.json["trustedIssuers"] as? [String: Any])?["message"] as? String ?? ""
        context.check(
            "health names the issuer", message.contains(workloadIssuer.issuer), expected: workloadIssuer.issuer, observed: message)
        let (during, _) = try await token(published)
        context.expect("a token by the cached key after the failed read", during.status, equals: 200)

        server.process.signal(SIGCONT)
        let (after, _) = try await token(published)
        context.expect("a token once the key server runs again", after.status, equals: 200)
    }

    // MARK: Helpers

    /// A key server of its own (Python's `http.server` on a loopback port, serving `jwks`), so
    /// freezing it is freezing a process.
    static func startKeyServer(serving jwks: String) async throws -> (process: ManagedProcess, url: String) {
        let port = try freePort()
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-issuer-\(port)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try jwks.write(to: folder.appendingPathComponent("jwks.json"), atomically: true, encoding: .utf8)
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let python else { throw SimulatorError.missingTool("python3") }
        let process = try ManagedProcess(
            name: "issuer-keys:\(port)", executable: python,
            arguments: ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", folder.path], removeOnExit: folder)
        let url = "http://127.0.0.1:\(port)/jwks.json"
        try await waitUntil("the key server answers on \(port)", timeout: .seconds(10)) {
            if !process.isRunning {
                throw SimulatorError.processExited("python3 http.server", status: process.exitStatus ?? -1, output: process.output)
            }
            return (try? await HTTP.request(.GET, url, timeout: .seconds(1)).status) == 200
        }
        return (process, url)
    }

    static func accessToken(_ client: SignetClient, _ agent: SignetClient.Agent, scope: String? = nil) async throws -> String {
        let response = try await client.token(agent, scope: scope)
        guard let token = response.json["access_token"] as? String else {
            throw SimulatorError.setupFailed("a token for \(agent.name): \(response.status) \(response.body)")
        }
        return token
    }

    /// A delegation: `actor`'s client exchanges `subject` with its own token `actorToken`.
    static func exchange(base: String, _ actor: SignetClient.Agent, subject: String, actor actorToken: String) async throws -> String {
        let encoded = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }
        let response = try await HTTP.request(
            .POST, "\(base)/oauth/token",
            headers: [("Authorization", "Basic \(actor.basic)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: "grant_type=\(encoded(exchangeGrant))&subject_token=\(subject)&subject_token_type=\(encoded(accessTokenType))"
                + "&actor_token=\(actorToken)&actor_token_type=\(encoded(accessTokenType))")
        guard response.status == 200, let token = response.json["access_token"] as? String else {
            throw SimulatorError.setupFailed("a token exchange by \(actor.name): \(response.status) \(response.body)")
        }
        return token
    }

    static func introspect(_ context: ScenarioContext, base: String, _ token: String) async throws -> Bool {
        try await VaultScenarios.introspect(context, base: base, token: token)
    }

    static func claims(of token: String) -> [String: Any] {
        let parts = token.split(separator: ".")
        guard parts.count == 3, let data = Data(base64URL: String(parts[1])) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}
