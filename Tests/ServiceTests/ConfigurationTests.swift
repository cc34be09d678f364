import Service
import Spec
import XCTest

final class ConfigurationTests: XCTestCase {
    static let valid = [
        "DATABASE_URL": "postgresql://signet@127.0.0.1:5432/signet",
        "SIGNET_ADMIN_TOKEN": String(repeating: "t", count: 40),
    ]

    func configuration(_ overrides: [String: String?]) throws(ConfigurationError) -> SignetConfiguration {
        var environment = Self.valid
        for (key, value) in overrides { environment[key] = value }
        return try SignetConfiguration.from(environment: environment)
    }

    func error(_ overrides: [String: String?]) -> ConfigurationError? {
        do {
            _ = try configuration(overrides)
            return nil
        } catch {
            return error
        }
    }

    func testDefaultsComeFromSpec() throws {
        let configuration = try configuration([:])
        XCTAssertEqual(configuration.host, Defaults.host)
        XCTAssertEqual(configuration.port, Defaults.port)
        XCTAssertEqual(configuration.pool.maximumConnections, 20)
        XCTAssertEqual(configuration.pool.minimumConnections, 2)
        XCTAssertEqual(configuration.pool.idleTimeout, .milliseconds(30_000))
        XCTAssertEqual(configuration.pool.connectionTimeout, .milliseconds(5_000))
        XCTAssertEqual(configuration.healthCheckTimeout, .milliseconds(2_000))
    }

    func testPoolVariablesAreRead() throws {
        let configuration = try configuration([
            "DB_POOL_MAX": "7", "DB_POOL_MIN": "3", "DB_POOL_IDLE_TIMEOUT_MS": "200", "DB_POOL_CONNECTION_TIMEOUT_MS": "300",
        ])
        XCTAssertEqual(
            configuration.pool,
            PoolConfiguration(
                minimumConnections: 3, maximumConnections: 7, idleTimeout: .milliseconds(200), connectionTimeout: .milliseconds(300))
        )
    }

    func testEachBadValueNamesItsVariable() {
        let cases: [(String, [String: String?], String)] = [
            ("DB_POOL_MAX", ["DB_POOL_MAX": "abc"], "must be a whole number (got \"abc\")"),
            ("DB_POOL_MAX", ["DB_POOL_MAX": "0"], "between 1 and"),
            ("DB_POOL_MIN", ["DB_POOL_MIN": "5", "DB_POOL_MAX": "2"], "must be ≤ DB_POOL_MAX (got 5 > 2)"),
            ("DB_POOL_MIN", ["DB_POOL_MIN": "-1"], "must not be negative (got -1)"),
            ("DB_POOL_IDLE_TIMEOUT_MS", ["DB_POOL_IDLE_TIMEOUT_MS": "-5"], "must not be negative"),
            ("DB_POOL_CONNECTION_TIMEOUT_MS", ["DB_POOL_CONNECTION_TIMEOUT_MS": "1.5"], "whole number"),
            ("PORT", ["PORT": "70000"], "between 0 and 65535"),
            ("HEALTH_CHECK_TIMEOUT_MS", ["HEALTH_CHECK_TIMEOUT_MS": "soon"], "whole number"),
            ("DATABASE_URL", ["DATABASE_URL": nil], "is required"),
            ("DATABASE_URL", ["DATABASE_URL": "postgresql://u:hunter2@[::1"], "not a valid"),
            ("SIGNET_ADMIN_TOKEN", ["SIGNET_ADMIN_TOKEN": nil], "is required"),
            ("SIGNET_ADMIN_TOKEN", ["SIGNET_ADMIN_TOKEN": "short"], "at least 32 characters (got 5)"),
            ("VAULT_ADDR", ["VAULT_ADDR": "vault:8200", "VAULT_TOKEN": "t"], "must be an http(s) URL"),
            ("VAULT_TOKEN", ["VAULT_ADDR": "http://127.0.0.1:8200"], "is required when VAULT_ADDR is set"),
            ("VAULT_TOKEN", ["VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": ""], "must not be empty"),
            ("OPA_URL", ["OPA_URL": "ftp://opa"], "must be an http(s) URL"),
            ("OPA_DECISION_PATH", ["OPA_URL": "http://127.0.0.1:8181", "OPA_DECISION_PATH": "/signet//token"], "must be a path"),
            ("OPA_TIMEOUT_MS", ["OPA_URL": "http://127.0.0.1:8181", "OPA_TIMEOUT_MS": "0"], "between 1 and"),
            (
                "OPA_DECISION_CACHE_MS",
                ["OPA_URL": "http://127.0.0.1:8181", "OPA_DECISION_CACHE_MS": String(Defaults.opaDecisionCacheMaxMilliseconds + 1)],
                "between 0 and \(Defaults.opaDecisionCacheMaxMilliseconds)"
            ),
            ("HEALTH_DEGRADED_LATENCY_MS", ["HEALTH_DEGRADED_LATENCY_MS": "slow"], "whole number"),
            ("HEALTH_DETAILED_TOKEN", ["HEALTH_DETAILED_TOKEN": ""], "must not be empty"),
        ]
        for (variable, overrides, reason) in cases {
            let error = error(overrides)
            XCTAssertEqual(error?.variable, variable, "\(overrides)")
            XCTAssertTrue(error?.description.hasPrefix(variable) == true, "\(String(describing: error))")
            XCTAssertTrue(error?.reason.contains(reason) == true, "\(String(describing: error)) should say \(reason)")
        }
    }

    func testVaultAndOPAAreConfiguredOnlyWhenTheirAddressIsSet() throws {
        let none = try SignetConfiguration.from(environment: [
            "DATABASE_URL": "postgresql://localhost/x", "SIGNET_ADMIN_TOKEN": String(repeating: "a", count: 32),
        ])
        XCTAssertNil(none.vault)
        XCTAssertNil(none.opa)
        let both = try SignetConfiguration.from(environment: [
            "DATABASE_URL": "postgresql://localhost/x", "SIGNET_ADMIN_TOKEN": String(repeating: "a", count: 32),
            "VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "root", "OPA_URL": "http://127.0.0.1:8181/",
        ])
        XCTAssertEqual(both.vault?.mount, "secret")
        XCTAssertEqual(both.opa?.decisionPath, "signet/token")
        XCTAssertEqual(both.opa?.timeout, .milliseconds(500))
        XCTAssertEqual(both.opa?.decisionCacheLifetime, .zero, "decisions are not reused unless asked for")
        XCTAssertEqual(both.healthDegradedLatency, .milliseconds(1000))
    }

    /// The load stack's variables are ones Signet accepts, and mean what the load model says.
    func testTheLoadModelsEnvironmentIsAValidConfiguration() throws {
        let environment = Self.valid.merging(LoadModel.stackEnvironment) { _, model in model }
        let configuration = try SignetConfiguration.from(environment: environment.merging(["OPA_URL": "http://127.0.0.1:8181"]) { $1 })
        XCTAssertEqual(configuration.opa?.decisionCacheLifetime, .milliseconds(LoadModel.opaDecisionCacheMilliseconds))
    }

    func testSecretsNeverAppearInErrors() {
        let error = error(["DATABASE_URL": "postgresql://u:hunter2@[::1", "SIGNET_ADMIN_TOKEN": "hunter2"])
        XCTAssertNotNil(error)
        XCTAssertFalse(error!.description.contains("hunter2"))
        let tokenError = self.error(["SIGNET_ADMIN_TOKEN": "hunter2-short"])
        XCTAssertFalse(tokenError!.description.contains("hunter2"))
    }
}

final class RateLimitConfigurationTests: XCTestCase {
    func testRateLimitVariables() throws {
        var environment = ConfigurationTests.valid
        environment["REDIS_URL"] = "redis://:pa55@cache.internal:6380/2"
        environment["RATE_LIMIT_WINDOW_MS"] = "10000"
        environment["RATE_LIMIT_MAX_REQUESTS"] = "10"
        let configuration = try SignetConfiguration.from(environment: environment)
        XCTAssertEqual(configuration.rateLimit.maxRequests, 10)
        XCTAssertEqual(configuration.rateLimit.windowMilliseconds, 10_000)
        XCTAssertEqual(configuration.rateLimit.redis?.server?.host, "cache.internal")
        XCTAssertEqual(configuration.rateLimit.redis?.server?.port, 6380)
        XCTAssertEqual(configuration.rateLimit.redis?.server?.password, "pa55")
        XCTAssertEqual(configuration.rateLimit.redis?.server?.database, 2)
        XCTAssertEqual(configuration.rateLimit.redisTimeout, .milliseconds(150))

        environment["REDIS_RATE_LIMIT_ENABLED"] = "false"
        XCTAssertNil(try SignetConfiguration.from(environment: environment).rateLimit.redis, "no Redis at all when disabled")
    }

    func testBudgetsProxiesAndConnectionLimits() throws {
        let defaults = try SignetConfiguration.from(environment: ConfigurationTests.valid)
        XCTAssertEqual(defaults.rateLimit.addressMaxRequests, Defaults.rateLimitAddressMaxRequests)
        XCTAssertEqual(defaults.rateLimit.adminMaxRequests, Defaults.rateLimitAdminMaxRequests)
        XCTAssertEqual(defaults.rateLimit.discoveryMaxRequests, Defaults.rateLimitDiscoveryMaxRequests)
        XCTAssertTrue(defaults.trustedProxies.isEmpty, "nobody's X-Forwarded-For is believed by default")
        XCTAssertEqual(defaults.connections.idleTimeout, .milliseconds(30_000))
        XCTAssertEqual(defaults.connections.maxConnections, Defaults.httpMaxConnections)
        XCTAssertEqual(defaults.shutdownDrain, .milliseconds(Defaults.shutdownDrainMilliseconds))

        var environment = ConfigurationTests.valid
        environment["RATE_LIMIT_ADDRESS_MAX_REQUESTS"] = "7"
        environment["RATE_LIMIT_ADMIN_MAX_REQUESTS"] = "8"
        environment["RATE_LIMIT_DISCOVERY_MAX_REQUESTS"] = "9"
        environment["TRUSTED_PROXIES"] = "10.0.0.0/8, ::1"
        environment["HTTP_IDLE_TIMEOUT_MS"] = "5000"
        environment["HTTP_BODY_TIMEOUT_MS"] = "2000"
        environment["HTTP_MAX_CONNECTIONS"] = "64"
        environment["HTTP_MAX_CONNECTIONS_PER_ADDRESS"] = "16"
        environment["HTTP_WRITE_TIMEOUT_MS"] = "1500"
        environment["HTTP_MAX_PIPELINED_REQUESTS"] = "4"
        environment["OPS_HOST"] = "10.0.0.5"
        environment["OPS_PORT"] = "9100"
        environment["SHUTDOWN_DRAIN_MS"] = "0"
        let configuration = try SignetConfiguration.from(environment: environment)
        XCTAssertEqual(
            [
                configuration.rateLimit.addressMaxRequests, configuration.rateLimit.adminMaxRequests,
                configuration.rateLimit.discoveryMaxRequests,
            ],
            [7, 8, 9])
        XCTAssertTrue(configuration.trustedProxies.contains("10.1.2.3"))
        XCTAssertEqual(configuration.connections.idleTimeout, .seconds(5))
        XCTAssertEqual(configuration.connections.bodyTimeout, .seconds(2))
        XCTAssertEqual(configuration.connections.maxConnections, 64)
        XCTAssertEqual(configuration.connections.maxConnectionsPerAddress, 16)
        XCTAssertEqual(configuration.connections.writeTimeout, .milliseconds(1500))
        XCTAssertEqual(configuration.connections.maxPipelinedRequests, 4)
        XCTAssertEqual(configuration.operationsHost, "10.0.0.5")
        XCTAssertEqual(configuration.operationsPort, 9100)
        XCTAssertEqual(configuration.shutdownDrain, .zero, "no drain: stop accepting at once")
    }

    func testBadRateLimitValuesNameTheirVariable() {
        let cases: [(String, String)] = [
            ("REDIS_URL", "http://cache:6379"), ("REDIS_RATE_LIMIT_ENABLED", "maybe"), ("RATE_LIMIT_WINDOW_MS", "0"),
            ("RATE_LIMIT_MAX_REQUESTS", "-1"), ("REDIS_TIMEOUT_MS", "fast"), ("RATE_LIMIT_ADDRESS_MAX_REQUESTS", "0"),
            ("RATE_LIMIT_ADMIN_MAX_REQUESTS", "x"), ("RATE_LIMIT_DISCOVERY_MAX_REQUESTS", "-5"), ("TRUSTED_PROXIES", "10.0.0.0/40"),
            ("TRUSTED_PROXIES", "proxy.internal"), ("HTTP_IDLE_TIMEOUT_MS", "0"), ("HTTP_BODY_TIMEOUT_MS", "soon"),
            ("HTTP_MAX_CONNECTIONS", "0"), ("SHUTDOWN_DRAIN_MS", "-1"), ("SHUTDOWN_DRAIN_MS", "5s"), ("METRICS_TOKEN", "too-short"),
            ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "verbose"), ("ACCESS_LOG", "maybe"), ("HEALTH_DETAILED_TOKEN", "ab"),
            ("HEALTH_DETAILED_TOKEN", String(repeating: "x", count: 31)), ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ("HTTP_WRITE_TIMEOUT_MS", "later"), ("HTTP_MAX_PIPELINED_REQUESTS", "1"), ("OPS_PORT", "70000"), ("OPS_PORT", "8080"),
        ]
        for (variable, value) in cases {
            var environment = ConfigurationTests.valid
            environment[variable] = value
            XCTAssertThrowsError(try SignetConfiguration.from(environment: environment)) { error in
                XCTAssertEqual((error as? ConfigurationError)?.variable, variable)
            }
        }
        var environment = ConfigurationTests.valid
        environment["REDIS_URL"] = "rediss://:hunter2@cache"
        XCTAssertThrowsError(try SignetConfiguration.from(environment: environment)) { error in
            XCTAssertFalse("\(error)".contains("hunter2"), "a Redis password is never echoed")
        }
    }
}
