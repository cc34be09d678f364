import Foundation

/// A throwaway Prometheus (Debian's `prometheus` package) on a loopback port, scraping Signet
/// instances every second, with its data in a temporary folder removed when it stops.
public final class PrometheusServer: Sendable {
    public let port: Int
    let process: ManagedProcess

    public var url: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, process: ManagedProcess) {
        self.port = port
        self.process = process
    }

    /// Scrapes each instance's operations listener (`OPS_PORT`), where `/metrics` needs no token.
    public static func start(scraping targets: [SignetInstance]) async throws -> PrometheusServer {
        let executable = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let executable else { throw SimulatorError.missingTool("prometheus (apt-get install prometheus)") }
        let port = try freePort()
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-prometheus-\(port)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let configuration = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: signet
                scrape_timeout: 1s
                static_configs:
                  - targets: [\(targets.map { "\"127.0.0.1:\($0.opsPort)\"" }.joined(separator: ", "))]

            """
        let file = folder.appendingPathComponent("prometheus.yml")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = try ManagedProcess(
            name: "prometheus:\(port)",
            executable: executable,
            arguments: [
                "--config.file=\(file.path)", "--storage.tsdb.path=\(folder.appendingPathComponent("data").path)",
                "--web.listen-address=127.0.0.1:\(port)",
            ],
            removeOnExit: folder
        )
        let server = PrometheusServer(port: port, process: process)
        do {
            try await waitUntil("Prometheus answers on \(port)", timeout: .seconds(30)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("prometheus", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await HTTP.request(.GET, "\(server.url)/-/ready").status == 200
            }
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    /// The samples of an instant query: each series' labels and value.
    public func query(_ expression: String) async throws -> [(labels: [String: String], value: Double)] {
        var components = URLComponents(string: "\(url)/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: expression)]
        let answer = try await HTTP.request(.GET, components.url!.absoluteString)
        guard answer.status == 200, let data = answer.json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { throw SimulatorError.setupFailed("Prometheus query \(expression): \(answer.status) \(answer.body.prefix(200))") }
        return result.compactMap { sample in
            guard let labels = sample["metric"] as? [String: String], let pair = sample["value"] as? [Any], pair.count == 2,
                let text = pair[1] as? String, let value = Double(text)
            else { return nil }
            return (labels, value)
        }
    }

    public func stop() async {
        await process.stop()
    }
}
