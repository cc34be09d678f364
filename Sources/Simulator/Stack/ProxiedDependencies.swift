import Foundation

/// A stack shaped like staging: this stack's PostgreSQL and Redis, a Vault fake and an OPA fake,
/// each behind a proxy named `postgres`, `redis`, `vault` and `opa` on one Toxiproxy API
/// (`signet-sim proxy`, in process). Instances pointed at `environment` reach every dependency
/// through its proxy, so whatever speaks Toxiproxy's API (`chaos --allow-faults`, `explore`) can
/// break any of them. `stack up --toxiproxy-api` and `explore` start one.
public final class ProxiedDependencies: Sendable {
    public static let names = ["postgres", "redis", "vault", "opa"]

    public let stack: LocalStack
    public let vault: VaultFake
    public let opa: OPAFake
    public let toxiproxy: ToxiproxyServer
    public let database: String
    /// Each proxy's listening port, by name.
    public let ports: [String: Int]

    private init(
        stack: LocalStack, vault: VaultFake, opa: OPAFake, toxiproxy: ToxiproxyServer, database: String, ports: [String: Int]
    ) {
        self.stack = stack
        self.vault = vault
        self.opa = opa
        self.toxiproxy = toxiproxy
        self.database = database
        self.ports = ports
    }

    /// Starts the fakes and the API on `host:port` (0: a free port), a proxy per dependency, and a
    /// fresh database named `<databasePrefix>_…`.
    public static func start(stack: LocalStack, host: String = "127.0.0.1", port apiPort: Int = 0, databasePrefix: String) async throws
        -> ProxiedDependencies
    {
        let database = try await stack.postgres.createDatabase(prefix: databasePrefix)
        let vault = try await VaultFake.start(seedDirectory: URL(fileURLWithPath: "fixtures/vault"))
        let opa = try await OPAFake.start()
        let toxiproxy: ToxiproxyServer
        do {
            toxiproxy = try await ToxiproxyServer.start(host: host, port: apiPort)
        } catch {
            await vault.stop()
            await opa.stop()
            throw error
        }
        func port(_ url: String) -> Int { Int(url.split(separator: ":").last ?? "0") ?? 0 }
        let upstreams = ["postgres": stack.postgres.port, "redis": stack.redis.port, "vault": port(vault.url), "opa": port(opa.url)]
        var ports: [String: Int] = [:]
        for name in names {
            let proxy = try await toxiproxy.create(name: name, listen: "127.0.0.1:0", upstream: "127.0.0.1:\(upstreams[name]!)")
            ports[name] = port(proxy.listen)
        }
        return ProxiedDependencies(stack: stack, vault: vault, opa: opa, toxiproxy: toxiproxy, database: database, ports: ports)
    }

    /// An instance's variables: every dependency through its proxy, the admin token, `extra` on top.
    public func environment(applicationName: String, adminToken: String, _ extra: [String: String] = [:]) -> [String: String] {
        var variables = stack.instanceEnvironment(database: database, applicationName: applicationName, adminToken: adminToken)
        variables["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:\(ports["postgres"]!)/\(database)?application_name=\(applicationName)"
        variables["REDIS_URL"] = "redis://127.0.0.1:\(ports["redis"]!)"
        variables["VAULT_ADDR"] = "http://127.0.0.1:\(ports["vault"]!)"
        variables["VAULT_TOKEN"] = vault.token
        variables["OPA_URL"] = "http://127.0.0.1:\(ports["opa"]!)"
        variables.merge(extra) { _, new in new }
        return variables
    }

    /// One line per proxy: `proxy NAME  LISTEN -> UPSTREAM`.
    public var proxyLines: [String] {
        Self.names.compactMap { name in toxiproxy.proxy(name).map { "proxy \(name)  \($0.listen) -> \($0.upstream)" } }
    }

    public func stop() async {
        await toxiproxy.stop()
        await vault.stop()
        await opa.stop()
    }
}
