import Foundation

/// haproxy in round-robin in front of several Signet instances, each request balanced on its
/// own, as a production load balancer would, and each instance in rotation only while its
/// `/health/ready` answers 200.
public final class LoadBalancer: Sendable {
    public let port: Int
    let process: ManagedProcess
    let configurationFile: URL

    public var url: String { "http://127.0.0.1:\(port)" }

    /// The loopback address haproxy connects to the instances from.
    static let sourceAddress = "127.0.0.9"
    /// `TRUSTED_PROXIES` for instances behind a balancer: haproxy's own source address only.
    public static let trustedProxies = "\(sourceAddress)/32"

    /// The variables of an instance behind a balancer on `port`: its address as their shared
    /// issuer, and haproxy (which appends the client's address to X-Forwarded-For) as the only
    /// proxy believed.
    public static func instanceVariables(port: Int) -> [String: String] {
        ["SIGNET_ISSUER": "http://127.0.0.1:\(port)", "TRUSTED_PROXIES": trustedProxies]
    }

    private init(port: Int, process: ManagedProcess, configurationFile: URL) {
        self.port = port
        self.process = process
        self.configurationFile = configurationFile
    }

    public static func start(backendPorts: [Int], port requested: Int? = nil) async throws -> LoadBalancer {
        let executable = ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let executable else { throw SimulatorError.missingTool("haproxy (apt-get install haproxy)") }
        let port = try requested ?? freePort()
        let servers = backendPorts.enumerated().map { "    server signet\($0.offset) 127.0.0.1:\($0.element)" }
        let configuration = """
            global
                maxconn 8192
            defaults
                mode http
                timeout connect 2s
                timeout client 60s
                timeout server 60s
                timeout check 2s
                # Connections to the instances stay open between requests (haproxy's default
                # keep-alive): a new connection per request cost an instance 607 µs of CPU per
                # token against 337 µs (docs/performance.md).
                # An instance leaves the rotation when /health/ready stops answering 200 (it
                # drains for SHUTDOWN_DRAIN_MS after SIGTERM) and comes back after two good checks.
                option httpchk GET /health/ready
                http-check expect status 200
                default-server check inter 500ms fall 2 rise 2
                # A connection refused (an instance stopped without draining, or between its stop
                # and its start) is tried again on the other instance; nothing had been sent. A
                # request an instance closed its connection on is not sent again (no
                # empty-response): it may have been done, and rolling-restart must see draining
                # answer every request itself.
                retries 3
                option redispatch 1
                retry-on conn-failure
                # The client's address, appended to X-Forwarded-For: Signet believes it from
                # TRUSTED_PROXIES only (LoadBalancer.trustedProxies).
                option forwardfor
                # Connections to the instances come from an address of haproxy's own, so a client
                # on 127.0.0.1 talking to an instance directly is not taken for the balancer.
                source \(Self.sourceAddress)
            frontend signet
                bind 127.0.0.1:\(port)
                # No instance ready (PostgreSQL down takes every one out): answer as an instance
                # would, 503 with Retry-After, not haproxy's own page without it (explore found that).
                http-request return status 503 content-type "application/json; charset=utf-8" hdr Retry-After 1 hdr Cache-Control no-store string "{\\"error\\":\\"temporarily_unavailable\\",\\"error_description\\":\\"no instance is ready; retry\\"}" if { nbsrv(instances) eq 0 }
                default_backend instances
            backend instances
                balance roundrobin
            \(servers.joined(separator: "\n"))

            """
        let file = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-sim-haproxy-\(port).cfg")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = try ManagedProcess(
            name: "haproxy:\(port)",
            executable: executable,
            arguments: ["-db", "-f", file.path],
            removeOnExit: file
        )
        let balancer = LoadBalancer(port: port, process: process, configurationFile: file)
        do {
            try await waitUntil("haproxy listens on \(port)", timeout: .seconds(15)) {
                if !process.isRunning {
                    throw SimulatorError.processExited("haproxy", status: process.exitStatus ?? -1, output: process.output)
                }
                return try await blocking { tcpExchange(port: port) != nil }
            }
        } catch {
            await balancer.stop()
            throw error
        }
        return balancer
    }

    public func stop() async {
        await process.stop()
    }
}
