import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Service
import Simulator
import XCTest

/// The real PostgreSQL that `ci/test` starts, and helpers to boot Signet against it in-process
/// through the same `buildApplication` that production runs.
enum TestDatabase {
    struct NotConfigured: Error, CustomStringConvertible {
        var description: String { "SIGNET_TEST_DATABASE_URL is not set: run the tests through ci/test, which starts PostgreSQL" }
    }

    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["SIGNET_TEST_DATABASE_URL"], !url.isEmpty else { throw NotConfigured() }
        return url
    }

    /// The test database URL with a given application name, so a test can count its own
    /// connections in `pg_stat_activity`.
    static func url(applicationName: String, database: String? = nil) throws -> String {
        var components = URLComponents(string: try url())!
        if let database { components.path = "/" + database }
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "application_name", value: applicationName)]
        return components.string!
    }

    /// Runs one statement on a fresh connection (for assertions made from outside Signet).
    static func query(_ sql: String, _ parameters: [String?] = [], url: String? = nil) async throws -> [Record] {
        let target = try url ?? self.url()
        return try await Task.detached {
            try PostgresConnection.connect(target, settings: []).query(sql, parameters).records
        }.value
    }

    /// A new, empty database; its name.
    static func create() async throws -> String {
        let name = "signet_test_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await query("CREATE DATABASE \(name)")
        return name
    }

    /// Connections to PostgreSQL under `applicationName`.
    static func connectionCount(applicationName: String) async throws -> Int {
        let rows = try await query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName])
        return Int(rows.first?["n"] ?? "") ?? -1
    }
}

/// A Signet built for one test: its configuration, its pool, and every log line it wrote.
struct TestSignet {
    static let adminToken = "test-admin-token-0123456789abcdef-xyz"
    /// `METRICS_TOKEN` and `HEALTH_DETAILED_TOKEN` of every test instance (unless
    /// `operationsTokens` is false): in-process tests read `/metrics` and `/health/detailed` on
    /// the public router with them (`TestClientProtocol.operations`).
    static let metricsToken = "test-metrics-token-0123456789abcdefghij"
    static let healthToken = "test-health-token-0123456789abcdefghijk"

    let configuration: SignetConfiguration
    let pool: ConnectionPool
    let logs: InMemoryLogHandler
    let application: any ApplicationProtocol

    /// - Parameter environment: variables on top of a valid test configuration.
    /// - Parameter database: a database of its own (see `TestDatabase.create()`), for tests of
    ///   state that is global to a database, such as signing keys.
    static func make(
        _ environment: [String: String] = [:],
        applicationName: String = "signet-test",
        database: String? = nil,
        lastUsedFlushInterval: Duration = .milliseconds(50),
        now: @escaping @Sendable () -> Date = { Date() },
        onClientLookup: (@Sendable () -> Void)? = nil,
        credentialCacheFallbackTTL: Duration? = nil,
        listensForChanges: Bool = true,
        addressGate: AddressGate? = nil,
        onRoutes: (@Sendable ([(method: String, path: String)]) -> Void)? = nil,
        operationsTokens: Bool = true
    ) async throws -> TestSignet {
        var variables = [
            "DATABASE_URL": try TestDatabase.url(applicationName: applicationName, database: database),
            "SIGNET_ADMIN_TOKEN": adminToken,
            "PORT": "0",
            // An ephemeral operations listener: several test instances run at once.
            "OPS_PORT": "0",
            "SIGNET_ISSUER": "https://signet.test",
            "REDIS_URL": ProcessInfo.processInfo.environment["SIGNET_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
            "REDIS_KEY_PREFIX": "test-\(UUID().uuidString.prefix(8)):",
            "RATE_LIMIT_MAX_REQUESTS": "1000000",
            "RATE_LIMIT_ADDRESS_MAX_REQUESTS": "1000000",
            "RATE_LIMIT_ADMIN_MAX_REQUESTS": "1000000",
            "RATE_LIMIT_DISCOVERY_MAX_REQUESTS": "1000000",
        ]
        if operationsTokens {
            variables["METRICS_TOKEN"] = metricsToken
            variables["HEALTH_DETAILED_TOKEN"] = healthToken
        }
        variables.merge(environment) { _, new in new }
        let configuration = try SignetConfiguration.from(environment: variables)
        let logs = InMemoryLogHandler()
        var logger = Logger(label: "signet-test") { _ in logs }
        logger.logLevel = .debug
        var dependencies = Dependencies.live(configuration: configuration, logger: logger)
        dependencies.now = now
        dependencies.tuning.lastUsedFlushInterval = lastUsedFlushInterval
        dependencies.tuning.onClientLookup = onClientLookup
        if let credentialCacheFallbackTTL { dependencies.tuning.credentialCacheFallbackTTL = credentialCacheFallbackTTL }
        dependencies.tuning.listensForChanges = listensForChanges
        if let addressGate { dependencies.tuning.addressGate = addressGate }
        dependencies.tuning.onRoutes = onRoutes
        let application = try await buildApplication(configuration: configuration, dependencies: dependencies)
        return TestSignet(configuration: configuration, pool: dependencies.pool, logs: logs, application: application)
    }

    /// Runs `body` with a client of the running application (services, the pool among them, run).
    func test<Value>(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await application.test(.router, body)
    }

    /// Runs `body` against the application listening on a real port (for requests from other
    /// source addresses, and for what happens to connections).
    func live<Value>(_ body: @escaping @Sendable (_ port: Int, any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await application.test(.live) { client in try await body(try XCTUnwrap(client.port), client) }
    }

    /// Runs the application as `signet` runs it (`runService`, its own server configuration
    /// whole: the testing harness's live mode drops the connection limit) on `port`, which the
    /// configuration must name (`PORT`), until `body` returns.
    func serving<Value: Sendable>(_ body: @escaping @Sendable (_ port: Int) async throws -> Value) async throws -> Value {
        let port = configuration.port
        let application = self.application
        let server = Task { try await application.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        try await eventually("the server listens on \(port)") {
            (try? await blocking { try LoopbackConnection(port: port).exchange("GET", "/health/live").status }) == 200
        }
        let value = try await body(port)
        server.cancel()
        _ = await server.result
        return value
    }

    /// Every log line, message and metadata, as text.
    var logText: String {
        logs.entries.map { "\($0.level) \($0.message) \($0.metadata)" }.joined(separator: "\n")
    }
}

extension TestClientProtocol {
    /// A request with the admin token and an optional JSON body.
    func admin(
        _ method: HTTPRequest.Method,
        _ uri: String,
        json: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.authorization: "Bearer \(TestSignet.adminToken)"]
        if json != nil { headers[.contentType] = "application/json" }
        headers.append(contentsOf: extra)
        return try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// `GET /metrics` or `GET /health/detailed` on the public router, with the test instance's
    /// operations token for that route.
    func operations(_ uri: String) async throws -> TestResponse {
        let token = uri.hasPrefix("/metrics") ? TestSignet.metricsToken : TestSignet.healthToken
        return try await execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(token)"])
    }

    /// Registers an agent and returns the response body as an object.
    func register(name: String = "agent-\(UUID().uuidString.prefix(8))", owner: String, scopes: [String] = ["read"]) async throws
        -> [String: Any]
    {
        let scopeList = scopes.map { "\"\($0)\"" }.joined(separator: ",")
        let response = try await admin(.post, "/v1/agents", json: #"{"name":"\#(name)","owner":"\#(owner)","scopes":[\#(scopeList)]}"#)
        XCTAssertEqual(response.status, .created, response.text)
        return response.object
    }
}

extension TestClientProtocol {
    /// Registers an agent and returns its id.
    func registerID(name: String = "agent-\(UUID().uuidString.prefix(8))", owner: String) async throws -> String {
        let body = try await register(name: name, owner: owner)
        return try XCTUnwrap(body["id"] as? String)
    }
}

/// `XCTAssertEqual` for a value that must be awaited.
func assertEqual<Value: Equatable>(
    _ actual: @autoclosure () async throws -> Value,
    _ expected: Value,
    _ message: String = "",
    file: StaticString = #filePath,
    line: UInt = #line
) async throws {
    let value = try await actual()
    XCTAssertEqual(value, expected, message, file: file, line: line)
}

extension TestResponse {
    var text: String { String(buffer: body) }

    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }

    /// The `error` code of a JSON error body.
    var errorCode: String? { object["error"] as? String }
}

/// Waits until `condition` holds, checking every 10 ms, failing the test after `timeout`.
func eventually(
    _ description: String,
    timeout: Duration = .seconds(5),
    file: StaticString = #filePath,
    line: UInt = #line,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    XCTFail("timed out after \(timeout) waiting until \(description)", file: file, line: line)
}

/// A short unique suffix for names and application names.
func unique(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}
