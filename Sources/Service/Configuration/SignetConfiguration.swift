import CLibPQ
import Configuration
import Foundation
import Logging
import Spec

/// Everything Signet reads from its environment, validated before anything starts.
///
/// Built from a `ConfigReader` so production reads the process environment and tests pass a
/// dictionary; every default comes from `Spec.Defaults`. A bad value throws a `ConfigurationError`
/// naming the variable, and `signet` exits 2 with that one line: nothing starts half-configured.
public struct SignetConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// libpq connection string or URI. Secret: it may hold a password.
    public var databaseURL: String
    public var pool: PoolConfiguration
    /// Server-side `statement_timeout` for every pooled connection.
    public var statementTimeout: Duration
    /// Bearer token of the admin API. Secret.
    public var adminToken: String
    /// Bound of each health check (`/health/ready`).
    public var healthCheckTimeout: Duration
    /// An identifier of this process, sent as `Signet-Instance` on every response.
    public var instanceID: String
    /// The `iss` of every token and the issuer of the RFC 8414 metadata (`SIGNET_ISSUER`).
    public var issuer: String
    /// The `aud` of every token (`SIGNET_TOKEN_AUDIENCE`, default: the issuer).
    public var tokenAudience: String
    /// Access token lifetime (`TOKEN_TTL_SECONDS`).
    public var tokenTTL: Duration
    /// The deepest `act` chain a token exchange may make (`TOKEN_EXCHANGE_MAX_DEPTH`).
    public var tokenExchangeMaxDepth: Int
    /// How long a client stays in this instance's cache while the change listener is current
    /// (`CREDENTIAL_CACHE_TTL_MS`).
    public var credentialCacheTTL: Duration
    /// Most clients in this instance's cache (`CREDENTIAL_CACHE_SIZE`).
    public var credentialCacheSize: Int
    /// The rate limiter (`RATE_LIMIT_*`, `REDIS_URL`, `REDIS_RATE_LIMIT_ENABLED`, `REDIS_TIMEOUT_MS`).
    public var rateLimit: RateLimitConfiguration
    /// A health check answering slower than this is `degraded` (`HEALTH_DEGRADED_LATENCY_MS`).
    public var healthDegradedLatency: Duration
    /// When set, `/health/detailed` requires it as a bearer token (`HEALTH_DETAILED_TOKEN`). Secret.
    public var healthDetailedToken: String?
    /// When set, `/metrics` requires it as a bearer token (`METRICS_TOKEN`). Secret.
    public var metricsToken: String?
    /// Vault, when `VAULT_ADDR` is set.
    public var vault: VaultConfiguration?
    /// OPA, when `OPA_URL` is set.
    public var opa: OPAConfiguration?
    /// The load balancers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`); none by default.
    public var trustedProxies: TrustedProxies
    /// Per-connection bounds (`HTTP_IDLE_TIMEOUT_MS`, `HTTP_BODY_TIMEOUT_MS`, `HTTP_MAX_CONNECTIONS`).
    public var connections: ConnectionLimits
    /// The operations listener (`OPS_HOST`, `OPS_PORT`): `/metrics` and `/health/*` without tokens.
    public var operationsHost: String
    public var operationsPort: Int
    /// After SIGTERM, how long the instance keeps serving while `/health/ready` answers 503
    /// (`SHUTDOWN_DRAIN_MS`).
    public var shutdownDrain: Duration
    /// How log lines are written (`LOG_FORMAT`): JSON by default when standard error is not a
    /// terminal, text on one.
    public var logFormat: LogFormat
    /// The lowest level logged (`LOG_LEVEL`, default info): `trace` … `critical`.
    public var logLevel: Logger.Level
    /// One line per request (`ACCESS_LOG`, default true), at info.
    public var accessLog: Bool
    /// DPoP proofs must carry a server nonce (`DPOP_NONCE_REQUIRED`, default false; RFC 9449 §8).
    public var dpopNonceRequired: Bool
    /// Trusted issuers' `jwks_uri` may be http on loopback (`TRUSTED_ISSUER_ALLOW_HTTP`, tests).
    public var trustedIssuerAllowHTTP: Bool

    public enum LogFormat: String, Sendable {
        case json, text
    }

    /// The variables holding secrets: their values are never logged or echoed in an error.
    public static let secretVariables: Set<String> = [
        "DATABASE_URL", "SIGNET_ADMIN_TOKEN", "REDIS_URL", "REDIS_SENTINEL_PASSWORD", "VAULT_TOKEN", "HEALTH_DETAILED_TOKEN",
        "METRICS_TOKEN",
    ]

    /// Reads and validates the whole configuration.
    public init(reader: ConfigReader) throws(ConfigurationError) {
        let env = EnvironmentReader(reader: reader)
        host = try env.string("HOST", default: Defaults.host)
        port = try env.integer("PORT", default: Defaults.port, in: 0...65_535)
        databaseURL = try env.requiredString("DATABASE_URL")
        try Self.validateConnectionString(databaseURL)

        let poolMax = try env.integer("DB_POOL_MAX", default: Defaults.databasePoolMax, in: 1...10_000)
        let poolMin = try env.integer("DB_POOL_MIN", default: Defaults.databasePoolMin, in: 0...10_000)
        guard poolMin <= poolMax else {
            throw ConfigurationError(
                variable: "DB_POOL_MIN",
                reason: "must be ≤ DB_POOL_MAX (got \(poolMin) > \(poolMax))"
            )
        }
        pool = PoolConfiguration(
            minimumConnections: poolMin,
            maximumConnections: poolMax,
            idleTimeout: .milliseconds(
                try env.integer("DB_POOL_IDLE_TIMEOUT_MS", default: Defaults.databasePoolIdleTimeoutMilliseconds, in: 1...Int(Int32.max))
            ),
            connectionTimeout: .milliseconds(
                try env.integer(
                    "DB_POOL_CONNECTION_TIMEOUT_MS",
                    default: Defaults.databasePoolConnectionTimeoutMilliseconds,
                    in: 1...Int(Int32.max)
                )
            )
        )
        statementTimeout = .milliseconds(
            try env.integer("DB_STATEMENT_TIMEOUT_MS", default: Defaults.databaseStatementTimeoutMilliseconds, in: 1...Int(Int32.max))
        )
        pool.queryTimeout = statementTimeout + PoolConfiguration.queryTimeoutMargin
        adminToken = try env.requiredString("SIGNET_ADMIN_TOKEN")
        guard adminToken.count >= Defaults.adminTokenMinimumLength else {
            throw ConfigurationError(
                variable: "SIGNET_ADMIN_TOKEN",
                reason: "must be at least \(Defaults.adminTokenMinimumLength) characters (got \(adminToken.count))"
            )
        }
        healthCheckTimeout = .milliseconds(
            try env.integer("HEALTH_CHECK_TIMEOUT_MS", default: Defaults.healthCheckTimeoutMilliseconds, in: 1...Int(Int32.max))
        )
        healthDegradedLatency = .milliseconds(
            try env.integer("HEALTH_DEGRADED_LATENCY_MS", default: Defaults.healthDegradedLatencyMilliseconds, in: 1...Int(Int32.max))
        )
        healthDetailedToken = try env.optionalString("HEALTH_DETAILED_TOKEN")
        metricsToken = try env.optionalString("METRICS_TOKEN")
        // Guessable operations tokens are refused like a short admin token.
        for (variable, token) in [("HEALTH_DETAILED_TOKEN", healthDetailedToken), ("METRICS_TOKEN", metricsToken)] {
            if let token, token.count < Defaults.adminTokenMinimumLength {
                throw ConfigurationError(
                    variable: variable, reason: "must be at least \(Defaults.adminTokenMinimumLength) characters (got \(token.count))")
            }
        }
        if let address = try env.optionalString("VAULT_ADDR") {
            try Self.validateHTTPURL(address, variable: "VAULT_ADDR")
            guard let token = try env.optionalString("VAULT_TOKEN") else {
                throw ConfigurationError(variable: "VAULT_TOKEN", reason: "is required when VAULT_ADDR is set")
            }
            vault = VaultConfiguration(
                address: address,
                token: token,
                mount: try env.string("VAULT_KV_MOUNT", default: Defaults.vaultKVMount),
                timeout: .milliseconds(try env.integer("VAULT_TIMEOUT_MS", default: Defaults.vaultTimeoutMilliseconds, in: 1...60_000))
            )
        } else {
            vault = nil
        }
        if let url = try env.optionalString("OPA_URL") {
            try Self.validateHTTPURL(url, variable: "OPA_URL")
            let path = try env.string("OPA_DECISION_PATH", default: Defaults.opaDecisionPath)
            guard !path.hasPrefix("/"), !path.hasSuffix("/"),
                path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy({ segment in
                    !segment.isEmpty && segment.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
                })
            else {
                throw ConfigurationError(
                    variable: "OPA_DECISION_PATH", reason: "must be a path like signet/token (letters, digits, _ and - between slashes)")
            }
            opa = OPAConfiguration(
                url: url,
                decisionPath: path,
                timeout: .milliseconds(try env.integer("OPA_TIMEOUT_MS", default: Defaults.opaTimeoutMilliseconds, in: 1...60_000)),
                decisionCacheLifetime: .milliseconds(
                    try env.integer(
                        "OPA_DECISION_CACHE_MS", default: Defaults.opaDecisionCacheMilliseconds,
                        in: 0...Defaults.opaDecisionCacheMaxMilliseconds))
            )
        } else {
            opa = nil
        }
        instanceID = try env.string("SIGNET_INSTANCE_ID", default: Self.defaultInstanceID())
        issuer = try env.string("SIGNET_ISSUER", default: "http://\(host):\(port)")
        try Self.validateHTTPURL(issuer, variable: "SIGNET_ISSUER", trailingSlash: false)
        tokenAudience = try env.string("SIGNET_TOKEN_AUDIENCE", default: issuer)
        tokenTTL = .seconds(try env.integer("TOKEN_TTL_SECONDS", default: Defaults.tokenTTLSeconds, in: 1...86_400))
        tokenExchangeMaxDepth = try env.integer("TOKEN_EXCHANGE_MAX_DEPTH", default: Defaults.tokenExchangeMaxDepth, in: 1...8)
        credentialCacheTTL = .milliseconds(
            try env.integer(
                "CREDENTIAL_CACHE_TTL_MS", default: Defaults.credentialCacheTTLMilliseconds,
                in: Defaults.credentialCacheMilliseconds...86_400_000))
        credentialCacheSize = try env.integer("CREDENTIAL_CACHE_SIZE", default: Defaults.credentialCacheSize, in: 1...10_000_000)

        let redisEnabled = try env.boolean("REDIS_RATE_LIMIT_ENABLED", default: Defaults.redisRateLimitEnabled)
        let topology = try Self.redisTopology(env)
        rateLimit = RateLimitConfiguration(
            maxRequests: try env.integer("RATE_LIMIT_MAX_REQUESTS", default: Defaults.rateLimitMaxRequests, in: 1...1_000_000_000),
            windowMilliseconds: Int64(
                try env.integer("RATE_LIMIT_WINDOW_MS", default: Defaults.rateLimitWindowMilliseconds, in: 1...Int(Int32.max))
            ),
            redis: redisEnabled ? topology : nil,
            redisTimeout: .milliseconds(try env.integer("REDIS_TIMEOUT_MS", default: Defaults.redisTimeoutMilliseconds, in: 1...10_000)),
            keyPrefix: try env.string("REDIS_KEY_PREFIX", default: "signet:"),
            addressMaxRequests: try env.integer(
                "RATE_LIMIT_ADDRESS_MAX_REQUESTS", default: Defaults.rateLimitAddressMaxRequests, in: 1...1_000_000_000),
            adminMaxRequests: try env.integer(
                "RATE_LIMIT_ADMIN_MAX_REQUESTS", default: Defaults.rateLimitAdminMaxRequests, in: 1...1_000_000_000),
            discoveryMaxRequests: try env.integer(
                "RATE_LIMIT_DISCOVERY_MAX_REQUESTS", default: Defaults.rateLimitDiscoveryMaxRequests, in: 1...1_000_000_000)
        )
        let proxies = try env.optionalString("TRUSTED_PROXIES") ?? ""
        guard let trusted = TrustedProxies(proxies) else {
            throw ConfigurationError(
                variable: "TRUSTED_PROXIES",
                reason: "must be a comma-separated list of IPv4 or IPv6 addresses or CIDRs such as 10.0.0.0/8 (got \"\(proxies)\")")
        }
        trustedProxies = trusted
        connections = ConnectionLimits(
            idleTimeout: .milliseconds(
                try env.integer("HTTP_IDLE_TIMEOUT_MS", default: Defaults.httpIdleTimeoutMilliseconds, in: 100...Int(Int32.max))),
            bodyTimeout: .milliseconds(
                try env.integer("HTTP_BODY_TIMEOUT_MS", default: Defaults.httpBodyTimeoutMilliseconds, in: 100...Int(Int32.max))),
            maxConnections: try env.integer("HTTP_MAX_CONNECTIONS", default: Defaults.httpMaxConnections, in: 1...1_000_000),
            maxConnectionsPerAddress: try env.integer(
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS", default: Defaults.httpMaxConnectionsPerAddress, in: 1...1_000_000),
            writeTimeout: .milliseconds(
                try env.integer("HTTP_WRITE_TIMEOUT_MS", default: Defaults.httpWriteTimeoutMilliseconds, in: 100...Int(Int32.max))),
            maxPipelinedRequests: try env.integer(
                "HTTP_MAX_PIPELINED_REQUESTS", default: Defaults.httpMaxPipelinedRequests, in: 2...1024)
        )
        operationsHost = try env.string("OPS_HOST", default: Defaults.operationsHost)
        operationsPort = try env.integer("OPS_PORT", default: Defaults.operationsPort, in: 0...65_535)
        if operationsPort != 0, operationsPort == port, operationsHost == host {
            throw ConfigurationError(variable: "OPS_PORT", reason: "must differ from PORT on the same host (got \(operationsPort))")
        }
        shutdownDrain = .milliseconds(
            try env.integer("SHUTDOWN_DRAIN_MS", default: Defaults.shutdownDrainMilliseconds, in: 0...600_000))
        let format = try env.optionalString("LOG_FORMAT") ?? (isatty(2) == 1 ? "text" : "json")
        guard let logFormat = LogFormat(rawValue: format.lowercased()) else {
            throw ConfigurationError(variable: "LOG_FORMAT", reason: "must be json or text (got \"\(format)\")")
        }
        self.logFormat = logFormat
        let level = try env.optionalString("LOG_LEVEL") ?? "info"
        guard let logLevel = Logger.Level(rawValue: level.lowercased()) else {
            let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError(variable: "LOG_LEVEL", reason: "must be one of \(levels) (got \"\(level)\")")
        }
        self.logLevel = logLevel
        accessLog = try env.boolean("ACCESS_LOG", default: true)
        dpopNonceRequired = try env.boolean("DPOP_NONCE_REQUIRED", default: false)
        trustedIssuerAllowHTTP = try env.boolean("TRUSTED_ISSUER_ALLOW_HTTP", default: false)
    }

    /// Reads the process environment.
    public static func fromEnvironment() throws(ConfigurationError) -> SignetConfiguration {
        try SignetConfiguration(reader: ConfigReader(provider: EnvironmentVariablesProvider(secretsSpecifier: .specific(secretVariables))))
    }

    /// Reads a given set of variables, as tests and the Simulator do.
    public static func from(environment: [String: String]) throws(ConfigurationError) -> SignetConfiguration {
        try SignetConfiguration(
            reader: ConfigReader(
                provider: EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secretVariables))
            )
        )
    }

    private static func validateConnectionString(_ value: String) throws(ConfigurationError) {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(value, &message) else {
            // libpq's message can quote the string, and so a password: never show it.
            if let message { PQfreemem(message) }
            throw ConfigurationError(variable: "DATABASE_URL", reason: "is not a valid libpq connection string or URI")
        }
        PQconninfoFree(options)
    }

    /// An http(s) URL with a host and no query, fragment or user info (and, unless allowed, no
    /// trailing slash): the issuer and the Vault and OPA addresses.
    private static func validateHTTPURL(_ value: String, variable: String, trailingSlash: Bool = true) throws(ConfigurationError) {
        guard let url = URL(string: value), ["http", "https"].contains(url.scheme ?? ""), let host = url.host, !host.isEmpty,
            url.query == nil, url.fragment == nil, url.user == nil, trailingSlash || !value.hasSuffix("/")
        else {
            throw ConfigurationError(
                variable: variable,
                reason: "must be an http(s) URL without query, fragment, user info"
                    + (trailingSlash ? "" : " or trailing slash") + " (got \"\(value)\")"
            )
        }
    }

    /// `REDIS_URL` alone (one server); `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER` (the master
    /// the sentinels name); or `REDIS_CLUSTER_NODES` (a cluster's seed nodes). Beside sentinels or
    /// cluster nodes `REDIS_URL` may carry only a login and database (database 0 for a cluster),
    /// no host.
    static func redisTopology(_ env: EnvironmentReader) throws(ConfigurationError) -> RedisTopology {
        let master = try env.optionalString("REDIS_SENTINEL_MASTER")
        let sentinelPassword = try env.optionalString("REDIS_SENTINEL_PASSWORD")
        let sentinelList = try env.list("REDIS_SENTINELS")
        let clusterList = try env.list("REDIS_CLUSTER_NODES")
        if sentinelList == nil {
            if master != nil {
                throw ConfigurationError(variable: "REDIS_SENTINEL_MASTER", reason: "is set but REDIS_SENTINELS is not")
            }
            if sentinelPassword != nil {
                throw ConfigurationError(variable: "REDIS_SENTINEL_PASSWORD", reason: "is set but REDIS_SENTINELS is not")
            }
        }
        if let clusterList {
            guard sentinelList == nil else {
                throw ConfigurationError(
                    variable: "REDIS_CLUSTER_NODES", reason: "is set beside REDIS_SENTINELS: a cluster has no sentinels; unset one of them")
            }
            let seeds = try addresses(clusterList, variable: "REDIS_CLUSTER_NODES")
            let login = try hostlessLogin(env, beside: "REDIS_CLUSTER_NODES", chooses: "the nodes")
            guard login.database == 0 else {
                throw ConfigurationError(
                    variable: "REDIS_URL", reason: "names database \(login.database), but a Redis Cluster has database 0 only")
            }
            if let prefix = try env.optionalString("REDIS_KEY_PREFIX"), prefix.contains("{") || prefix.contains("}") {
                throw ConfigurationError(
                    variable: "REDIS_KEY_PREFIX",
                    reason: "must not contain { or } with REDIS_CLUSTER_NODES (the limiter's keys carry the hash tag)")
            }
            return .cluster(RedisClusterNodes(seeds: seeds, login: login))
        }
        guard let sentinelList else {
            let url = try env.string("REDIS_URL", default: Defaults.redisURL)
            guard let endpoint = RedisEndpoint(url: url) else {
                // The URL may hold a password: never echoed.
                throw ConfigurationError(variable: "REDIS_URL", reason: "must look like redis://[[user]:password@]host[:port][/db]")
            }
            return .server(endpoint)
        }
        let sentinels = try addresses(sentinelList, variable: "REDIS_SENTINELS")
        guard let master else {
            throw ConfigurationError(
                variable: "REDIS_SENTINEL_MASTER", reason: "must name the master the sentinels watch (REDIS_SENTINELS is set)")
        }
        let login = try hostlessLogin(env, beside: "REDIS_SENTINELS", chooses: "the master")
        return .sentinel(RedisSentinels(sentinels: sentinels, masterName: master, sentinelPassword: sentinelPassword, master: login))
    }

    /// A list of `host:port`, without repeats.
    private static func addresses(_ list: [String], variable: String) throws(ConfigurationError) -> [RedisAddress] {
        var addresses: [RedisAddress] = []
        for item in list {
            guard let address = RedisAddress(item) else {
                throw ConfigurationError(variable: variable, reason: "must be a comma-separated list of host:port (\"\(item)\" is not one)")
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw ConfigurationError(variable: variable, reason: "must name at least one host:port") }
        return addresses
    }

    /// The login (and database) a hostless `REDIS_URL` gives beside sentinels or cluster nodes.
    private static func hostlessLogin(
        _ env: EnvironmentReader, beside variable: String, chooses what: String
    ) throws(ConfigurationError) -> RedisEndpoint {
        guard let url = try env.optionalString("REDIS_URL") else { return RedisEndpoint() }
        guard let hostless = RedisEndpoint(hostlessURL: url) else {
            // The URL may hold a password: never echoed.
            throw ConfigurationError(
                variable: "REDIS_URL",
                reason: "names a host, but \(variable) chooses \(what): unset one of them "
                    + "(beside \(variable) REDIS_URL may carry a login and database only: redis://[[user]:password@]/[db])")
        }
        return hostless
    }

    private static func defaultInstanceID() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() & 0xFFFF_FFFF, radix: 16)
    }
}

/// Reads single variables and turns bad values into `ConfigurationError`s.
struct EnvironmentReader {
    let reader: ConfigReader

    private func raw(_ variable: String) -> String? {
        let key = ConfigKey(variable.lowercased().replacingOccurrences(of: "_", with: "."))
        return reader.string(forKey: key, isSecret: SignetConfiguration.secretVariables.contains(variable))
    }

    /// A comma-separated list, each item trimmed; nil when unset.
    func list(_ variable: String) throws(ConfigurationError) -> [String]? {
        try optionalString(variable).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    func string(_ variable: String, default defaultValue: String) throws(ConfigurationError) -> String {
        guard let value = raw(variable) else { return defaultValue }
        guard !value.isEmpty else { throw ConfigurationError(variable: variable, reason: "must not be empty") }
        return value
    }

    /// Nil when unset; an empty value is an error.
    func optionalString(_ variable: String) throws(ConfigurationError) -> String? {
        guard let value = raw(variable) else { return nil }
        guard !value.isEmpty else { throw ConfigurationError(variable: variable, reason: "must not be empty when set") }
        return value
    }

    func requiredString(_ variable: String) throws(ConfigurationError) -> String {
        guard let value = raw(variable), !value.isEmpty else {
            throw ConfigurationError(variable: variable, reason: "is required but not set")
        }
        return value
    }

    func boolean(_ variable: String, default defaultValue: Bool) throws(ConfigurationError) -> Bool {
        guard let text = raw(variable) else { return defaultValue }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ConfigurationError(variable: variable, reason: "must be true or false (got \"\(text)\")")
        }
    }

    func integer(_ variable: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text = raw(variable) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(variable: variable, reason: "must be a whole number (got \"\(text)\")")
        }
        guard range.contains(value) else {
            let reason =
                value < 0 && range.lowerBound >= 0
                ? "must not be negative (got \(value))"
                : "must be between \(range.lowerBound) and \(range.upperBound) (got \(value))"
            throw ConfigurationError(variable: variable, reason: reason)
        }
        return value
    }
}

/// Vault's settings (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_KV_MOUNT`).
public struct VaultConfiguration: Sendable {
    public var address: String
    /// Secret.
    public var token: String
    public var mount: String
    /// Bound of one KV call (`VAULT_TIMEOUT_MS`).
    public var timeout: Duration
}

/// OPA's settings (`OPA_URL`, `OPA_DECISION_PATH`, `OPA_TIMEOUT_MS`, `OPA_DECISION_CACHE_MS`).
public struct OPAConfiguration: Sendable {
    public var url: String
    public var decisionPath: String
    public var timeout: Duration
    /// Zero: every token request asks OPA.
    public var decisionCacheLifetime: Duration
}

/// Bounds on each HTTP connection: idle (a slow header included), the body of one request, a
/// response's progress, requests pipelined on it; and how many an instance holds at once, in all
/// and per source address.
public struct ConnectionLimits: Sendable {
    public var idleTimeout: Duration
    public var bodyTimeout: Duration
    public var maxConnections: Int
    public var maxConnectionsPerAddress: Int
    public var writeTimeout: Duration
    public var maxPipelinedRequests: Int
}
