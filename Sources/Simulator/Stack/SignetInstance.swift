import Foundation

/// One real `signet` process with its own port and environment, so nothing but PostgreSQL and
/// Redis is shared between instances. Its log lines are kept for assertions.
public final class SignetInstance: Sendable {
    public let id: String
    public let port: Int
    /// The operations listener's port (`OPS_PORT`): `/metrics` and `/health/*` without tokens.
    public let opsPort: Int
    public let environment: [String: String]
    public let process: ManagedProcess

    public var url: String { "http://127.0.0.1:\(port)" }
    /// The operations listener, where the scraper and the detailed health checks go.
    public var opsURL: String { "http://127.0.0.1:\(opsPort)" }

    private init(id: String, port: Int, opsPort: Int, environment: [String: String], process: ManagedProcess) {
        self.id = id
        self.port = port
        self.opsPort = opsPort
        self.environment = environment
        self.process = process
    }

    /// Starts an instance and waits until `/health/live` answers 200.
    ///
    /// - Parameter environment: Signet's variables; `PORT`, `OPS_PORT` and `SIGNET_INSTANCE_ID`
    ///   are added when missing, `SHUTDOWN_DRAIN_MS=0` (an instance the Simulator stops stops at once;
    ///   a scenario about draining sets its own) and `LOG_FORMAT=text`.
    public static func start(id: String, environment: [String: String]) async throws -> SignetInstance {
        let binary = try SignetBinary.locate()
        var variables = environment
        let port = try Int(variables["PORT"] ?? "") ?? freePort()
        variables["PORT"] = String(port)
        let opsPort = try Int(variables["OPS_PORT"] ?? "") ?? freePort()
        variables["OPS_PORT"] = String(opsPort)
        variables["HOST"] = variables["HOST"] ?? "127.0.0.1"
        variables["SIGNET_INSTANCE_ID"] = variables["SIGNET_INSTANCE_ID"] ?? id
        variables["PATH"] = variables["PATH"] ?? "/usr/bin:/bin"
        variables["SHUTDOWN_DRAIN_MS"] = variables["SHUTDOWN_DRAIN_MS"] ?? "0"
        // The scenarios read these lines as text (`LogTests` covers the JSON format).
        variables["LOG_FORMAT"] = variables["LOG_FORMAT"] ?? "text"
        let process = try ManagedProcess(name: "signet:\(id)", executable: binary, arguments: [], environment: variables)
        let instance = SignetInstance(id: id, port: port, opsPort: opsPort, environment: variables, process: process)
        do {
            try await waitUntil("signet \(id) answers /health/live", timeout: .seconds(30)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("signet \(id)", status: process.exitStatus ?? -1, output: process.output)
                }
                // A plain connect first: it is refused at once while nothing listens, where the HTTP
                // client would retry the refused connection for up to its 5 s connect timeout,
                // past the moment the process exits or starts to listen.
                guard try await blocking({ tcpExchange(port: port) != nil }) else { return false }
                return try await HTTP.request(.GET, "\(instance.url)/health/live").status == 200
            }
        } catch {
            await instance.stop()
            if let status = process.exitStatus {
                throw SimulatorError.processExited("signet \(id)", status: status, output: process.output)
            }
            throw error
        }
        return instance
    }

    /// Every log line so far.
    public var logLines: [String] { process.output }

    /// Log lines containing `text`.
    public func logLines(containing text: String) -> [String] { process.lines(containing: text) }

    /// The value of one series of its `GET /metrics` on the operations listener (the whole line
    /// before the value, labels included, as `signet_redis_call_duration_seconds_count`), or nil
    /// when it is not exported.
    public func metric(_ series: String) async throws -> Double? {
        let scrape = try await HTTP.request(.GET, "\(opsURL)/metrics")
        guard scrape.status == 200 else { throw SimulatorError.setupFailed("GET /metrics on \(id): \(scrape.status)") }
        for line in scrape.body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), line[..<space] == series else { continue }
            return Double(line[line.index(after: space)...])
        }
        return nil
    }

    public func stop() async {
        await process.stop()
    }
}

/// Finds the `signet` executable: `SIGNET_BINARY`, else beside the running executable (as
/// `swift build` lays out `signet`, `signet-sim` and the test bundles), else `.build/debug`.
public enum SignetBinary {
    public static func locate() throws -> String {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["SIGNET_BINARY"] { candidates.append(explicit) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent("signet").path)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("signet").path)
        candidates.append(fileManager.currentDirectoryPath + "/.build/debug/signet")
        guard let found = candidates.first(where: { fileManager.isExecutableFile(atPath: $0) }) else {
            throw SimulatorError.missingTool("the signet binary (looked in: \(candidates.joined(separator: ", "))); run swift build")
        }
        return found
    }
}
