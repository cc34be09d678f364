/// The numbers the production-readiness spec and DESIGN.md fix, in one place.
///
/// Every default of the service's configuration, every pool bound and every health threshold comes
/// from here, so the service, the Simulator, the tests and the load suite cannot drift apart.
public enum Defaults {
    /// Listen address (`HOST`).
    public static let host = "127.0.0.1"
    /// Listen port (`PORT`).
    public static let port = 8080

    /// Most connections the pool opens at once (`DB_POOL_MAX`); the spec's `max=20`.
    public static let databasePoolMax = 20
    /// Connections opened at start and kept open (`DB_POOL_MIN`); the spec's `min=2`.
    public static let databasePoolMin = 2
    /// Idle connections above `min` are closed after this (`DB_POOL_IDLE_TIMEOUT_MS`).
    public static let databasePoolIdleTimeoutMilliseconds = 30_000
    /// One deadline for waiting in the queue and connecting (`DB_POOL_CONNECTION_TIMEOUT_MS`).
    public static let databasePoolConnectionTimeoutMilliseconds = 5_000
    /// Server-side limit on one statement (`DB_STATEMENT_TIMEOUT_MS`), so no query holds a lease forever.
    public static let databaseStatementTimeoutMilliseconds = 5_000

    /// Redis for shared rate limits (`REDIS_URL`).
    public static let redisURL = "redis://127.0.0.1:6379"
    /// Whether the limiter uses Redis (`REDIS_RATE_LIMIT_ENABLED`).
    public static let redisRateLimitEnabled = true
    /// Bound of every Redis call of the limiter, connecting included (`REDIS_TIMEOUT_MS`).
    public static let redisTimeoutMilliseconds = 150
    /// Sliding window length (`RATE_LIMIT_WINDOW_MS`).
    public static let rateLimitWindowMilliseconds = 60_000
    /// Requests allowed per window and subject (`RATE_LIMIT_MAX_REQUESTS`).
    public static let rateLimitMaxRequests = 100
    /// Requests allowed per window and source address for requests without valid credentials,
    /// failed authentication included (`RATE_LIMIT_ADDRESS_MAX_REQUESTS`).
    public static let rateLimitAddressMaxRequests = 60
    /// The admin principal's own budget per window (`RATE_LIMIT_ADMIN_MAX_REQUESTS`): operator
    /// automation, not one client.
    public static let rateLimitAdminMaxRequests = 1_000
    /// Requests per window and source address to the JWKS and the authorization server metadata
    /// (`RATE_LIMIT_DISCOVERY_MAX_REQUESTS`): generous, so resource servers behind one NAT are not
    /// starved by a noisy neighbour, and apart from the address's API budget.
    public static let rateLimitDiscoveryMaxRequests = 1_000
    /// How long an unknown (well-formed) client id is answered without a query.
    public static let unknownClientCacheMilliseconds = 60_000
    /// Clock skew allowed between Signet and the resource servers: a token's `iat` may be this far
    /// in the future, and a revoked token id is kept this long past the token's `exp`.
    public static let clockSkewSeconds = 60
    /// The furthest ahead a client assertion's `exp` may be (RFC 7523 §3: short-lived), before
    /// the clock skew.
    public static let clientAssertionMaxLifetimeSeconds = 300
    /// How long a one-time value (an assertion's or a DPoP proof's `jti`) is remembered as used:
    /// the longest an assertion is accepted (its lifetime and the skew) plus the skew again, for
    /// an instance whose clock is behind.
    public static let replayWindowMilliseconds: Int64 = Int64(clientAssertionMaxLifetimeSeconds + 2 * clockSkewSeconds) * 1000

    /// After SIGTERM, how long the listener keeps serving with `/health/ready` at 503, so a load
    /// balancer's health checks take the instance out before it stops accepting
    /// (`SHUTDOWN_DRAIN_MS`).
    public static let shutdownDrainMilliseconds = 5_000
    /// After the drain, how long requests in flight may take to finish before they are cancelled
    /// and the process exits anyway.
    public static let shutdownInFlightMilliseconds = 10_000

    /// A connection with nothing read or written for this long is closed (`HTTP_IDLE_TIMEOUT_MS`);
    /// a request's header arriving slowly counts as idle.
    public static let httpIdleTimeoutMilliseconds = 30_000
    /// A request's body must arrive whole within this, from its header (`HTTP_BODY_TIMEOUT_MS`).
    public static let httpBodyTimeoutMilliseconds = 10_000
    /// Most connections one instance holds open at once (`HTTP_MAX_CONNECTIONS`); further ones wait
    /// in the listen backlog, unanswered, until one closes.
    public static let httpMaxConnections = 2_048
    /// The operations listener's address (`OPS_HOST`, `OPS_PORT`): `/metrics` and `/health/*`
    /// without tokens, for the scraper and the balancer. Loopback: keep it off the public network.
    public static let operationsHost = "127.0.0.1"
    public static let operationsPort = 8081
    /// Most connections one source address holds open on an instance (`HTTP_MAX_CONNECTIONS_PER_ADDRESS`;
    /// IPv6 by /64; `TRUSTED_PROXIES` unbounded); further ones are closed as they open. Half of
    /// `httpMaxConnections`: a thousand agents behind one NAT, each with its connection, fit; one
    /// address still leaves the other half to everyone else.
    public static let httpMaxConnectionsPerAddress = 1_024
    /// A response that makes no progress for this long closes its connection (`HTTP_WRITE_TIMEOUT_MS`).
    public static let httpWriteTimeoutMilliseconds = 10_000
    /// Most requests one connection may have read and not yet answered (`HTTP_MAX_PIPELINED_REQUESTS`);
    /// at it the connection is not read from until an answer is written (at least 2: a request's
    /// body may arrive after its head).
    public static let httpMaxPipelinedRequests = 16

    /// Vault KV v2 mount (`VAULT_KV_MOUNT`).
    public static let vaultKVMount = "secret"
    /// Bound of one Vault KV call (`VAULT_TIMEOUT_MS`); past it the cached material is used.
    public static let vaultTimeoutMilliseconds = 2_000
    /// OPA decision path (`OPA_DECISION_PATH`).
    public static let opaDecisionPath = "signet/token"
    /// Bound of one OPA decision call (`OPA_TIMEOUT_MS`); past it the token request fails closed.
    public static let opaTimeoutMilliseconds = 500
    /// How long an OPA decision is reused for the same input (`OPA_DECISION_CACHE_MS`); 0, the
    /// default, asks OPA on every token request.
    public static let opaDecisionCacheMilliseconds = 0
    /// The longest `OPA_DECISION_CACHE_MS` Signet accepts: five minutes of a stale policy at most.
    public static let opaDecisionCacheMaxMilliseconds = 300_000
    /// Most OPA decisions kept per instance when they are reused (LRU).
    public static let opaDecisionCacheSize = 10_000

    /// Each health check's bound (`HEALTH_CHECK_TIMEOUT_MS`); the spec's 2000 ms.
    public static let healthCheckTimeoutMilliseconds = 2_000
    /// An answer slower than this is `degraded` (`HEALTH_DEGRADED_LATENCY_MS`); the spec's 1000 ms.
    public static let healthDegradedLatencyMilliseconds = 1_000

    /// Access token lifetime (`TOKEN_TTL_SECONDS`).
    public static let tokenTTLSeconds = 900
    /// The deepest `act` chain a token exchange may make (`TOKEN_EXCHANGE_MAX_DEPTH`).
    public static let tokenExchangeMaxDepth = 4
    /// How long a rotated-out client secret stays valid unless the request says otherwise.
    public static let credentialRotationGraceSeconds = 86_400

    /// How long a verified client's agent and credentials are cached per instance while its
    /// change listener is not current (disconnected, or its heartbeat late): a revocation or
    /// deactivation made on another instance is then seen within this time.
    public static let credentialCacheMilliseconds = 1_000
    /// How long they are cached while the listener is current (`CREDENTIAL_CACHE_TTL_MS`): every
    /// change is announced by `NOTIFY` and drops the entry at once on every instance.
    public static let credentialCacheTTLMilliseconds = 300_000
    /// Most clients cached per instance (`CREDENTIAL_CACHE_SIZE`), least recently used out first;
    /// the same bound again for ids known to name no client.
    public static let credentialCacheSize = 100_000
    /// How often the change listener proves its connection with a round trip; it counts as
    /// current for two of these after the last one was sent (the second is its bound).
    public static let changeListenerHeartbeatMilliseconds = 1_000
    /// Cross-instance revocation must take effect within this on the token path (issue 14's
    /// `revocation-propagation` scenario, p99).
    public static let revocationPropagationMilliseconds = 100
    /// How often each instance re-reads the signing keys, so a key rotation on one instance is
    /// used by all within this time.
    public static let signingKeyRefreshMilliseconds = 2_000
    /// `lastUsedAt` of a credential is written at most this often.
    public static let lastUsedRecordSeconds = 60
    /// A retired signing key stays in the JWKS this long after its last token expired (clock skew).
    public static let signingKeyPublishSlackSeconds = 60

    /// Shortest admin token accepted (`SIGNET_ADMIN_TOKEN`): 32 characters.
    public static let adminTokenMinimumLength = 32
}

/// Limits on what a client may send; past them the request gets a 4xx, never a partial write.
public enum Limits {
    /// Largest JSON request body, in bytes.
    public static let maxRequestBodyBytes = 64 * 1024
    /// Longest agent name and owner, in characters.
    public static let maxNameLength = 128
    /// Most scopes one agent may hold.
    public static let maxScopesPerAgent = 64
    /// Longest scope token (RFC 6749 §3.3 characters only).
    public static let maxScopeLength = 128
    /// Largest agent metadata object, as compact JSON bytes.
    public static let maxMetadataBytes = 16 * 1024
    /// Deepest nesting of objects and arrays in a JSON body.
    public static let maxJSONDepth = 32
    /// Most object keys in one JSON body, nested ones included.
    public static let maxJSONKeys = 1024
    /// Most fields in an `/oauth/*` form, and the longest name or value (a JWT to introspect fits).
    public static let maxFormFields = 32
    public static let maxFormFieldBytes = 4096
    /// Longest request target (path and query), and most bytes of all header names and values.
    public static let maxURLBytes = 8192
    public static let maxHeaderBytes = 32 * 1024
    /// Default and largest page size of list endpoints.
    public static let defaultPageSize = 50
    public static let maxPageSize = 100
}
