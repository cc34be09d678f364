import ArgumentParser
import Foundation
import Simulator
import Spec

/// `signet-sim`: run the spec scenarios, bring up a local stack by hand, or check a deployment.
@main
struct SignetSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signet-sim",
        abstract: "Signet's Simulator: spec scenarios against real PostgreSQL and Redis, with fault injection.",
        subcommands: [
            List.self, Run.self, Stack.self, Chaos.self, ExploreCommand.self, ProxyCommand.self, K6ConfigCommand.self,
            QueryBenchCommand.self,
        ]
    )
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the scenarios.")

    func run() async throws {
        for scenario in Catalogue.all {
            print("\(scenario.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(scenario.specScenario) — \(scenario.summary)")
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a local stack, run scenarios, print a report; exit 1 on any failure.")

    @Argument(help: "The scenario to run (see `list`).")
    var name: String?

    @Flag(help: "Run every scenario.")
    var all = false

    @Option(help: "Write a JUnit XML report here (one testsuite per scenario, one testcase per check).")
    var junit: String?

    @Option(help: "Write a JSON report here (every check, expected and observed).")
    var json: String?

    func validate() throws {
        guard all != (name != nil) else { throw ValidationError("give a scenario name or --all") }
        if let name, Catalogue.named(name) == nil { throw ValidationError("no scenario named \(name); see `signet-sim list`") }
    }

    func run() async throws {
        let scenarios = all ? Catalogue.all : [Catalogue.named(name!)!]
        let stack = try await LocalStack.start()
        var reports: [ScenarioReport] = []
        for scenario in scenarios {
            let report = await ScenarioRunner.run(scenario, on: stack)
            print(report.rendered)
            reports.append(report)
        }
        await stack.stop()
        let checks = reports.flatMap(\.checks)
        let failedScenarios = reports.filter { !$0.passed }.count
        print(
            "\(reports.count - failedScenarios) scenarios passed, \(failedScenarios) failed; "
                + "\(checks.count(where: \.passed)) checks passed, \(checks.count(where: \.failed)) failed, "
                + "\(checks.count { $0.outcome == .skipped }) skipped"
        )
        try ReportOutput.write(reports, junit: junit, json: json)
        for report in reports where !report.passed { print("rerun: signet-sim run \(report.scenario)") }
        if failedScenarios > 0 { throw ExitCode.failure }
    }
}

/// `--junit` and `--json` of `run` and `chaos`.
enum ReportOutput {
    static func write(_ reports: [ScenarioReport], junit: String?, json: String?) throws {
        if let junit { try ReportFiles.junit(reports).write(toFile: junit, atomically: true, encoding: .utf8) }
        if let json { try ReportFiles.json(reports).write(toFile: json, atomically: true, encoding: .utf8) }
    }
}

struct Stack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring up a stack for manual work.",
        subcommands: [Up.self]
    )

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Start PostgreSQL, Redis, N Signet instances (haproxy in front when N > 1), Vault and OPA fakes; print addresses; run until Ctrl-C."
        )

        @Option(help: "How many Signet instances.")
        var instances = 1

        @Option(help: "The port of haproxy (N > 1) or of the single instance; 0 picks a free one.")
        var port = 0

        @Option(help: "Extra Signet variables, NAME=VALUE; repeatable.")
        var env: [String] = []

        @Flag(help: "Run the instances with the load model's settings (Spec.LoadModel.stackEnvironment), as ci/load does.")
        var loadModel = false

        @Option(
            help: """
                Put PostgreSQL, Redis, Vault and OPA behind proxies named postgres, redis, vault and opa, served on this \
                Toxiproxy API (HOST:PORT), as a staging stack behind signet-sim proxy: `chaos --allow-faults` drives them.
                """)
        var toxiproxyApi: String?

        func validate() throws {
            guard (1...16).contains(instances) else { throw ValidationError("--instances must be from 1 to 16") }
            if let toxiproxyApi, ToxiproxyAddress.parse(toxiproxyApi) == nil {
                throw ValidationError("--toxiproxy-api takes HOST:PORT (got \(toxiproxyApi))")
            }
            for pair in env where !pair.contains("=") { throw ValidationError("--env takes NAME=VALUE (got \(pair))") }
        }

        func run() async throws {
            let stack = try await LocalStack.start()
            let adminToken = "sim-admin-token-0123456789abcdefghijkl"
            var variables: [String: String]
            let database: String
            let vaultLine: String
            let opaURL: String
            var proxied: ProxiedDependencies?
            // Held for the whole run: a fake stops serving once nothing holds it.
            var fakes: (VaultFake, OPAFake)?
            if let toxiproxyApi, let (host, apiPort) = ToxiproxyAddress.parse(toxiproxyApi) {
                let dependencies = try await ProxiedDependencies.start(stack: stack, host: host, port: apiPort, databasePrefix: "stack")
                proxied = dependencies
                database = dependencies.database
                variables = dependencies.environment(applicationName: "signet", adminToken: adminToken)
                vaultLine = "\(dependencies.vault.url)  (token \(dependencies.vault.token))"
                opaURL = dependencies.opa.url
            } else {
                database = try await stack.postgres.createDatabase(prefix: "stack")
                let vault = try await VaultFake.start(seedDirectory: URL(fileURLWithPath: "fixtures/vault"))
                // Load runs never take OPA down: no fault proxy to copy every decision through.
                let opa = try await OPAFake.start(proxied: !loadModel)
                variables = stack.instanceEnvironment(
                    database: database, applicationName: "signet", adminToken: adminToken,
                    ["VAULT_ADDR": vault.url, "VAULT_TOKEN": vault.token, "OPA_URL": opa.url])
                vaultLine = "\(vault.url)  (token \(vault.token))"
                opaURL = opa.url
                fakes = (vault, opa)
            }
            // Instances behind one balancer share its address as their issuer.
            let balancerPort = instances > 1 ? (port == 0 ? try freePort() : port) : nil
            if let balancerPort {
                variables.merge(LoadBalancer.instanceVariables(port: balancerPort)) { _, balancer in balancer }
            }
            if loadModel { variables.merge(LoadModel.stackEnvironment) { _, model in model } }
            for pair in env {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                variables[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            var started: [SignetInstance] = []
            for index in 0..<instances {
                var own = variables
                if instances == 1, port != 0 { own["PORT"] = String(port) }
                started.append(try await SignetInstance.start(id: "signet-\(index)", environment: own))
            }
            let balancer =
                instances > 1 ? try await LoadBalancer.start(backendPorts: started.map(\.port), port: balancerPort) : nil
            var lines = [
                "PostgreSQL   \(stack.postgres.url(database: database))",
                "Redis        \(stack.redis.url)",
                "Vault fake   \(vaultLine)",
                "OPA fake     \(opaURL)",
            ]
            lines += started.map { "Signet       \($0.url)  (Signet-Instance: \($0.id); metrics and detailed health on \($0.opsURL))" }
            if let balancer { lines.append("haproxy      \(balancer.url)  (round robin over \(instances) instances)") }
            if let proxied {
                lines +=
                    ["Toxiproxy    \(proxied.toxiproxy.url)  (signet-sim proxy: PostgreSQL, Redis, Vault and OPA behind it)"]
                    + proxied.proxyLines
            }
            lines += ["Admin token  \(adminToken)", "Ctrl-C stops everything."]
            // Unbuffered, so a script reading a pipe sees the addresses at once.
            FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            // Signal handlers installed by the stack stop every process on Ctrl-C.
            while true { try await Task.sleep(for: .seconds(3600)) }
            withExtendedLifetime(fakes) {}
            withExtendedLifetime(proxied) {}
        }
    }
}

struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run checks against a deployed Signet (creates and deactivates test agents); with --allow-faults and its proxies, the fault scenarios too."
    )

    @Option(help: "The Signet base URL, e.g. https://signet.internal")
    var target: String

    @Option(help: "The admin token (or set SIGNET_ADMIN_TOKEN).")
    var adminToken: String?

    @Option(
        help: """
            Where /health/detailed is read: an instance's operations listener (OPS_HOST:OPS_PORT), e.g. \
            http://10.0.0.5:8081. Without it, --target is asked, which answers it only with HEALTH_DETAILED_TOKEN.
            """)
    var operations: String?

    @Option(help: "Write a JUnit XML report here.")
    var junit: String?

    @Option(help: "Write a JSON report here.")
    var json: String?

    @OptionGroup var proxies: DependencyProxies

    @Flag(help: "Inject faults through the proxies. Without it, only the fault-free checks run.")
    var allowFaults = false

    @Option(help: "The target's DB_POOL_CONNECTION_TIMEOUT_MS: pool exhaustion must be answered 503 past it.")
    var dbPoolTimeoutMs = 5000

    func validate() throws {
        if allowFaults, proxies.toxiproxy == nil || proxies.proxy.isEmpty {
            throw ValidationError("--allow-faults needs --toxiproxy URL and at least one --proxy DEPENDENCY=PROXY")
        }
    }

    func run() async throws {
        guard let token = adminToken ?? ProcessInfo.processInfo.environment["SIGNET_ADMIN_TOKEN"] else {
            throw ValidationError("give --admin-token or set SIGNET_ADMIN_TOKEN")
        }
        var faults: ChaosFaults?
        if allowFaults, let toxiproxy = proxies.toxiproxy {
            let named = proxies.named
            let chosen = ChaosFaults(
                toxiproxy: ToxiproxyClient(base: toxiproxy), proxies: named, poolTimeout: .milliseconds(dbPoolTimeoutMs))
            faults = chosen
            print("chaos run \(chosen.runID): its toxics are named \(ChaosFaults.toxicPrefix)\(chosen.runID)-…")
            // Ctrl-C (or a kill): this run's toxics are removed before exiting.
            onStopSignals(exitCode: 130) { await chosen.cleanUp() }
        } else if proxies.toxiproxy != nil || !proxies.proxy.isEmpty {
            print("no --allow-faults: proxies named, but only the fault-free checks run")
        }
        let report = await Simulator.Chaos.run(target: target, adminToken: token, operations: operations, faults: faults)
        print(report.rendered)
        print(report.totals)
        try ReportOutput.write([report], junit: junit, json: json)
        if !report.passed { throw ExitCode.failure }
    }
}

struct ExploreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explore",
        abstract: """
            A fault schedule drawn from a seed against a local stack under a workload of agents; checks invariants on the \
            history; exit 1 on a broken one, with the command that replays it.
            """
    )

    @Option(help: "The seed the fault schedule (and the workload's choices) are drawn from.")
    var seed: UInt64?

    @Option(help: "How long the workload runs: 60s, 2m, or seconds.")
    var duration = "60s"

    @Option(help: "How many Signet instances (haproxy in front when more than one).")
    var instances = 2

    @Option(help: "Extra Signet variables for every instance, NAME=VALUE; repeatable.")
    var env: [String] = []

    @Option(help: "Draw the schedule from these fault kinds only (comma-separated; default: all of them).")
    var faults: String?

    @Option(help: "Write the history here (JSON lines: run, fault, request, health and verify events).")
    var history: String?

    @Option(help: "Check a saved history instead of running: its invariants, exit 1 on a broken one.")
    var check: String?

    @Option(help: "Exit 0 only when these invariants (comma-separated) are broken and every other one holds: a negative control.")
    var expectBroken: String?

    @Flag(help: "Print the schedule the seed draws, and start nothing.")
    var dryRun = false

    @Option(help: "A deployed Signet instead of the local stack (its base URL, a balancer); needs --toxiproxy and --proxy.")
    var target: String?

    @Option(help: "With --target: the admin token (or set SIGNET_ADMIN_TOKEN).")
    var adminToken: String?

    @OptionGroup var proxies: DependencyProxies

    @Option(help: "With --target: each instance's operations listener, where /health/detailed is read; repeatable.")
    var operations: [String] = []

    @Option(help: "With --target: the answer bound, DB_POOL_CONNECTION_TIMEOUT_MS + DB_STATEMENT_TIMEOUT_MS + 1250.")
    var answerBoundMs = 11_250

    func validate() throws {
        if check == nil, seed == nil { throw ValidationError("give --seed N (or --check HISTORY)") }
        guard Self.seconds(duration) != nil else { throw ValidationError("--duration takes seconds: 60s, 2m or 60 (got \(duration))") }
        guard (1...8).contains(instances) else { throw ValidationError("--instances must be from 1 to 8") }
        for pair in env where !pair.contains("=") { throw ValidationError("--env takes NAME=VALUE (got \(pair))") }
        if target != nil {
            guard proxies.toxiproxy != nil, !proxies.proxy.isEmpty else {
                throw ValidationError("--target needs --toxiproxy URL and --proxy DEPENDENCY=PROXY")
            }
            guard env.isEmpty else {
                throw ValidationError("--env sets the local stack's instances; a --target is configured where it runs")
            }
        }
        for name in faults?.split(separator: ",") ?? [] where FaultKind(rawValue: String(name)) == nil {
            throw ValidationError("no fault kind \(name); kinds: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    static func seconds(_ text: String) -> Int? {
        if text.hasSuffix("m"), let minutes = Int(text.dropLast()), minutes > 0 { return minutes * 60 }
        if text.hasSuffix("s"), let seconds = Int(text.dropLast()), seconds > 0 { return seconds }
        if let seconds = Int(text), seconds > 0 { return seconds }
        return nil
    }

    func run() async throws {
        let events: [HistoryEvent]
        if let check {
            events = try History.decode(try String(contentsOfFile: check, encoding: .utf8))
            print("checking \(check): \(events.count) events")
        } else {
            var variables: [String: String] = [:]
            for pair in env {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                variables[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            var deployed: ExploreTarget?
            if let target, let toxiproxy = proxies.toxiproxy {
                guard let token = adminToken ?? ProcessInfo.processInfo.environment["SIGNET_ADMIN_TOKEN"] ?? (dryRun ? "" : nil) else {
                    throw ValidationError("give --admin-token or set SIGNET_ADMIN_TOKEN")
                }
                let named = proxies.named
                deployed = ExploreTarget(
                    base: target, adminToken: token, toxiproxy: toxiproxy, proxies: named, operations: operations,
                    answerBoundMs: answerBoundMs)
                // Ctrl-C (or a kill): explore's toxics are removed before exiting.
                onStopSignals(exitCode: 130) {
                    _ = try? await ToxiproxyClient(base: toxiproxy).removeAll(
                        named: "\(ChaosFaults.toxicPrefix)explore-", from: Array(named.values))
                }
            }
            let options = ExploreOptions(
                seed: seed!, duration: .seconds(Self.seconds(duration)!), instances: instances, env: variables,
                kinds: faults.map { $0.split(separator: ",").compactMap { FaultKind(rawValue: String($0)) } }, target: deployed)
            if dryRun {
                let schedule = options.schedule
                print("seed \(options.seed): \(schedule.faults.count) faults over \(options.duration.components.seconds) s")
                for fault in schedule.faults { print("  " + fault.rendered) }
                return
            }
            // The history: its invariants are checked below, as on a saved one.
            events = try await Explorer.run(options) { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            if let history { try History.encode(events).write(toFile: history, atomically: true, encoding: .utf8) }
        }
        let reports = Invariants.check(events)
        for line in HistorySummary.lines(events) { print(line) }
        for report in reports { print(report.rendered) }
        let broken = Set(reports.filter { !$0.passed }.map(\.name))
        let replay = events.first { $0.type == "run" }?.replay
        if let expectBroken {
            let expected = Set(expectBroken.split(separator: ",").map(String.init))
            guard broken == expected else {
                print("negative control failed: expected exactly \(expected.sorted()) broken, got \(broken.sorted())")
                if let replay { print("rerun: \(replay)") }
                throw ExitCode.failure
            }
            print("negative control: \(expected.sorted().joined(separator: ", ")) broken, as it must be")
            return
        }
        guard broken.isEmpty else {
            if let replay { print("rerun: \(replay)") }
            throw ExitCode.failure
        }
    }
}

/// `--toxiproxy URL --proxy DEPENDENCY=PROXY`: where `chaos` and `explore` inject faults into a
/// deployed stack.
struct DependencyProxies: ParsableArguments {
    @Option(help: "The Toxiproxy API in front of the dependencies (a real Toxiproxy or signet-sim proxy), e.g. http://proxy:8474.")
    var toxiproxy: String?

    @Option(help: "Which proxy carries which dependency, DEPENDENCY=PROXY (redis, postgres, vault, opa); repeatable.")
    var proxy: [String] = []

    func validate() throws {
        for pair in proxy {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, ["redis", "postgres", "vault", "opa"].contains(String(parts[0])) else {
                throw ValidationError("--proxy takes DEPENDENCY=PROXY with DEPENDENCY one of redis, postgres, vault, opa (got \(pair))")
            }
        }
    }

    /// Dependency → proxy name.
    var named: [String: String] {
        Dictionary(
            proxy.map { pair in
                let parts = pair.split(separator: "=").map(String.init)
                return (parts[0], parts[1])
            }
        ) { _, last in last }
    }
}

struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract:
            "Fault proxies behind Toxiproxy's HTTP API (a drop-in for a Toxiproxy server in staging); run until Ctrl-C."
    )

    @Option(help: "Where the API listens, HOST:PORT (Toxiproxy's default).")
    var api = "127.0.0.1:8474"

    @Option(help: "A proxy to create at start, NAME=LISTEN=UPSTREAM (e.g. redis=0.0.0.0:16379=redis:6379); repeatable.")
    var proxy: [String] = []

    func validate() throws {
        guard ToxiproxyAddress.parse(api) != nil else { throw ValidationError("--api takes HOST:PORT (got \(api))") }
        for spec in proxy where spec.split(separator: "=").count != 3 {
            throw ValidationError("--proxy takes NAME=LISTEN=UPSTREAM (got \(spec))")
        }
    }

    func run() async throws {
        let (host, port) = ToxiproxyAddress.parse(api)!
        let server = try await ToxiproxyServer.start(host: host, port: port)
        for spec in proxy {
            let parts = spec.split(separator: "=").map(String.init)
            try await server.create(name: parts[0], listen: parts[1], upstream: parts[2])
        }
        var lines = ["Toxiproxy API  \(server.url)  (\(ToxiproxyServer.version))"]
        for spec in proxy {
            let name = String(spec.split(separator: "=")[0])
            if let created = server.proxy(name) { lines.append("proxy \(name)  \(created.listen) -> \(created.upstream)") }
        }
        lines.append("Ctrl-C stops everything.")
        onStopSignals(exitCode: 0) { await server.stop() }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// On SIGINT or SIGTERM, runs `action`, then exits with `exitCode`: also when a script started the
/// command in the background (bash starts those with SIGINT ignored, so the default never fires).
func onStopSignals(exitCode: Int32, _ action: @escaping @Sendable () async -> Void) {
    for signalNumber in [SIGINT, SIGTERM] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber)
        source.setEventHandler {
            Task {
                await action()
                Foundation.exit(exitCode)
            }
        }
        source.resume()
        stopSignalSources.append(source)
    }
}

/// Kept alive for the run: the handlers `onStopSignals` installed.
nonisolated(unsafe) var stopSignalSources: [any DispatchSourceSignal] = []

struct K6ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "k6-config",
        abstract: "Write the k6 load model (Sources/Spec/LoadModel.swift) to tests/load/config.json, which the scripts read."
    )

    @Option(help: "Where to write it.")
    var output = K6Config.path

    func run() async throws {
        let rendered = try K6Config.rendered()
        try rendered.write(toFile: output, atomically: true, encoding: .utf8)
        print("wrote \(output)")
    }
}

struct QueryBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query-bench",
        abstract: "Each hot statement's cost on one connection, unprepared and prepared (ci/bench runs it).")

    @Option(help: "A migrated Signet database with at least one agent.")
    var databaseURL: String

    @Option(help: "Timed executions of each statement, each way.")
    var iterations = 5_000

    func run() async throws {
        let results = try QueryBench.run(databaseURL: databaseURL, iterations: iterations)
        func micro(_ duration: Duration) -> String {
            String(format: "%6.0f µs", Double(duration.components.attoseconds) / 1e12 + Double(duration.components.seconds) * 1e6)
        }
        print("statement                 unprepared p50 / p99      prepared p50 / p99     p50 saved")
        for result in results {
            let saved = 1 - Double(result.preparedMedian.components.attoseconds) / Double(result.unnamedMedian.components.attoseconds)
            let name = result.statement.padding(toLength: 24, withPad: " ", startingAt: 0)
            print(
                "\(name) \(micro(result.unnamedMedian)) / \(micro(result.unnamedP99))"
                    + "    \(micro(result.preparedMedian)) / \(micro(result.preparedP99))    \(String(format: "%5.1f %%", saved * 100))")
        }
    }
}
