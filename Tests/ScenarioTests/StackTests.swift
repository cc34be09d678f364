import Foundation
import Simulator
import XCTest

/// The Simulator's stack and CLI, as an operator reproducing a scenario by hand uses them.
final class StackTests: XCTestCase {
    /// Two instances behind haproxy: requests alternate between them, shown by `Signet-Instance`.
    func testTwoInstancesBehindHAProxyTakeTurns() async throws {
        let stack = try await SharedStack.shared.get()
        let database = try await stack.postgres.createDatabase(prefix: "lb")
        let environment = stack.instanceEnvironment(
            database: database, adminToken: "sim-admin-token-0123456789abcdefghijkl", ["LOG_LEVEL": "warning"])
        let first = try await SignetInstance.start(id: "one", environment: environment)
        let second = try await SignetInstance.start(id: "two", environment: environment)
        let balancer = try await LoadBalancer.start(backendPorts: [first.port, second.port])
        var seen: [String] = []
        for _ in 0..<4 {
            let response = try await HTTP.request(.GET, "\(balancer.url)/health/live")
            XCTAssertEqual(response.status, 200)
            seen.append(response.header("Signet-Instance") ?? "none")
        }
        XCTAssertEqual(Set(seen), ["one", "two"])
        XCTAssertNotEqual(seen[0], seen[1], "round robin: consecutive requests go to different instances: \(seen)")
        XCTAssertEqual(seen[0], seen[2])
        await balancer.stop()
        await second.stop()
        await first.stop()
        XCTAssertFalse(first.process.isRunning)
    }

    /// `chaos` against a live instance: every fault-free check passes (the parts not deployed
    /// yet are reported as skipped).
    func testChaosChecksPassAgainstALiveInstance() async throws {
        let stack = try await SharedStack.shared.get()
        let database = try await stack.postgres.createDatabase(prefix: "chaos")
        let token = "sim-admin-token-0123456789abcdefghijkl"
        let instance = try await SignetInstance.start(
            id: "chaos",
            environment: stack.instanceEnvironment(database: database, adminToken: token)
        )
        let report = await Chaos.run(target: instance.url, adminToken: token, operations: instance.opsURL)
        print(report.rendered)
        XCTAssertTrue(report.passed, report.rendered)
        XCTAssertGreaterThanOrEqual(report.checks.count, 9)
        // Rate limiting is deployed here, so its checks must have run, not been skipped.
        let rateChecks = report.checks.filter { ["429 after the limit", "Retry-After on the 429"].contains($0.name) }
        XCTAssertEqual(rateChecks.map(\.outcome), [.passed, .passed], report.rendered)
        XCTAssertEqual(report.checks.filter { $0.outcome == .skipped }.map(\.name), [], "every fault-free check is deployed here")
        XCTAssertEqual(report.checks.first { $0.name == "/health/detailed" }?.outcome, .passed, report.rendered)
        let wrongToken = await Chaos.run(target: instance.url, adminToken: token + "x")
        XCTAssertFalse(wrongToken.passed, "chaos must fail when it cannot do its job")
        await instance.stop()
    }

    /// `signet-sim run NAME` from a terminal: its own stack, a passing report, exit code 0; an
    /// unknown name is refused with the command that lists them. One scenario, not `--all`: every
    /// scenario of the catalogue already runs once in its own test here (`--all` runs the same
    /// loop over `Catalogue.all`).
    func testSignetSimRunPrintsAPassingReport() async throws {
        let run = try ManagedProcess(name: "signet-sim", executable: try simulatorBinary(), arguments: ["run", "health-all-healthy"])
        try await waitUntil("signet-sim run finishes", timeout: .seconds(120)) { run.hasFinished }
        let output = run.output.joined(separator: "\n")
        XCTAssertEqual(run.exitStatus, 0, output)
        XCTAssertTrue(output.contains("PASS health-all-healthy"), output)
        XCTAssertTrue(output.contains("1 scenarios passed, 0 failed"), output)

        let unknown = try ManagedProcess(name: "signet-sim", executable: try simulatorBinary(), arguments: ["run", "no-such-scenario"])
        try await waitUntil("signet-sim run refuses an unknown name", timeout: .seconds(30)) { unknown.hasFinished }
        XCTAssertNotEqual(unknown.exitStatus, 0)
        XCTAssertTrue(unknown.output.joined(separator: "\n").contains("signet-sim list"), unknown.output.joined(separator: "\n"))
    }

    /// `signet-sim stack up --instances 2` serves through haproxy until Ctrl-C, then leaves
    /// nothing running.
    func testStackUpServesThroughHAProxyAndCtrlCStopsEverything() async throws {
        let up = try ManagedProcess(
            name: "signet-sim stack up",
            executable: try simulatorBinary(),
            arguments: ["stack", "up", "--instances", "2"],
            stopSignal: SIGINT
        )
        try await waitUntil("stack up prints the haproxy address", timeout: .seconds(60)) {
            if !up.isRunning { throw SimulatorError.processExited("stack up", status: up.exitStatus ?? -1, output: up.output) }
            return !up.lines(containing: "haproxy").isEmpty
        }
        let line = try XCTUnwrap(up.lines(containing: "haproxy").first)
        let url = try XCTUnwrap(line.split(separator: " ").first { $0.hasPrefix("http://") }.map(String.init))
        var seen: [String] = []
        for _ in 0..<4 {
            seen.append(try await HTTP.request(.GET, "\(url)/health/live").header("Signet-Instance") ?? "none")
        }
        XCTAssertEqual(Set(seen), ["signet-0", "signet-1"], "\(seen)")
        let children = childProcesses(of: up.pid)
        XCTAssertGreaterThanOrEqual(children.count, 5, "postgres, redis, two signets, haproxy: \(children)")

        up.signal(SIGINT)
        try await waitUntil("stack up exits on Ctrl-C", timeout: .seconds(30)) { up.hasFinished }
        try await waitUntil("every process it started is gone", timeout: .seconds(15)) {
            children.allSatisfy { kill($0, 0) != 0 }
        }
        let refused = try? await HTTP.request(.GET, "\(url)/health/live", timeout: .seconds(2))
        XCTAssertNil(refused, "nothing answers on the haproxy port any more")
    }

    func simulatorBinary() throws -> String {
        let signet = try SignetBinary.locate()
        let simulator = URL(fileURLWithPath: signet).deletingLastPathComponent().appendingPathComponent("signet-sim").path
        guard FileManager.default.isExecutableFile(atPath: simulator) else {
            throw SimulatorError.missingTool("signet-sim beside \(signet): run swift build first")
        }
        return simulator
    }

    /// Direct children of `pid`, read from /proc.
    func childProcesses(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }
}
