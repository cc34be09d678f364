import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SignetJOSE

/// The long-lived parts of one Signet process, built once (`buildServices`) and shared by both
/// listeners' routers. Nothing here runs until `lifecycle` runs under the application's service
/// group.
public struct Services: Sendable {
    let pool: ConnectionPool
    let secrets: any SecretStore
    let hasher: CredentialHasher
    let keyRing: KeyRing
    let directory: ClientDirectory
    /// Nil when `Dependencies.Tuning.listensForChanges` is false.
    let listener: ChangeListener?
    let recorder: LastUsedRecorder
    let tokens: TokenService
    let limiter: RateLimiter
    let health: HealthMonitor
    /// One for both listeners: one readiness memory, so a change of state is logged once.
    let healthRoutes: HealthRoutes
    let housekeeping: Housekeeping
    let metrics: SignetMetrics
    let drain: DrainState
    /// Source addresses over their budget, and the client lookups each has under way.
    let addressGate: AddressGate
    /// Client ids whose agent is over its budget, until the limiter said it may retry.
    let clientHolds: AddressGate
    /// The JWT-bearer grant's trusted issuers and their keys.
    let trustedIssuers: TrustedIssuers
    let now: @Sendable () -> Date
    let onRoutes: (@Sendable ([(method: String, path: String)]) -> Void)?

    /// What runs under the service group, beside the listeners.
    var lifecycle: [any Service] {
        [pool, keyRing, recorder, limiter, housekeeping] + (listener.map { [$0] } ?? [])
    }
}

/// Builds the long-lived parts: migrates the schema, loads the secret material (Vault or
/// PostgreSQL) and installs the signing keys; builds the Vault and OPA clients once each.
public func buildServices(configuration: SignetConfiguration, dependencies: Dependencies) async throws -> Services {
    let logger = dependencies.logger
    let pool = dependencies.pool
    let metrics = dependencies.metrics
    let tuning = dependencies.tuning
    let now = dependencies.clock.wall
    let monotonic = dependencies.clock.monotonic
    let startup = StartupConnection(
        databaseURL: configuration.databaseURL, settings: Dependencies.postgresSettings(configuration),
        session: Dependencies.postgresSession(configuration))
    try await startup.run { try Migrations.apply(on: $0, logger: logger) }
    try await NIOThreadPool.singleton.runIfActive { try SessionCheck.refuseSharedSessions(startup.connect) }

    let vault = configuration.vault.map { settings in
        var client = VaultClient(address: settings.address, token: settings.token, mount: settings.mount, timeout: settings.timeout)
        client.metrics = metrics
        return client
    }
    let opa = configuration.opa.map { settings in
        var client = OPAClient(url: settings.url, decisionPath: settings.decisionPath, timeout: settings.timeout)
        client.metrics = metrics
        return client
    }
    let policy: any TokenPolicy =
        if let opa, let settings = configuration.opa {
            OPAPolicy(
                client: opa, logger: logger,
                cache: settings.decisionCacheLifetime > .zero ? DecisionCache(lifetime: settings.decisionCacheLifetime) : nil)
        } else {
            BuiltInPolicy()
        }

    let secrets = try await SecretMaterial.load(vault: vault, pool: pool, startup: startup, now: now, logger: logger)
    let hasher = CredentialHasher(key: secrets.hmacKey)
    let keyRing = KeyRing(store: secrets.store, logger: logger, clock: dependencies.clock)
    try await keyRing.install(secrets.signingKeys)
    let directory = ClientDirectory(
        pool: pool, hasher: hasher, ttl: configuration.credentialCacheTTL, fallbackTTL: tuning.credentialCacheFallbackTTL,
        capacity: configuration.credentialCacheSize, listenerGrace: tuning.changeListenerHeartbeat * 2, now: now,
        clock: monotonic, onLookup: tuning.onClientLookup)
    let listener =
        tuning.listensForChanges
        ? ChangeListener(directory: directory, heartbeat: tuning.changeListenerHeartbeat, logger: logger, now: monotonic) {
            try startup.connect()
        } : nil
    let recorder = LastUsedRecorder(pool: pool, logger: logger, flushInterval: tuning.lastUsedFlushInterval)
    var tokens = TokenService(
        keyRing: keyRing, directory: directory, policy: policy, recorder: recorder, pool: pool, issuer: configuration.issuer,
        audience: configuration.tokenAudience, ttl: configuration.tokenTTL, now: now, metrics: metrics)
    tokens.exchangeMaxDepth = configuration.tokenExchangeMaxDepth
    if configuration.dpopNonceRequired { tokens.dpopNonces = DPoPNonces(sharedKey: secrets.hmacKey) }
    pool.observeAcquireWait { metrics.poolAcquired(after: $0) }
    let limiter = RateLimiter(configuration: configuration.rateLimit, logger: logger, metrics: metrics, clock: dependencies.clock)
    tokens.replay = limiter
    let trustedIssuers = TrustedIssuers(
        load: { try await TrustedIssuerStore(pool: pool).all() }, clock: dependencies.clock.monotonic, logger: logger)
    let health = HealthMonitor.live(
        configuration: configuration, pool: pool, limiter: limiter, directory: directory, vault: vault, opa: opa,
        trustedIssuers: trustedIssuers, logger: logger, clock: dependencies.clock)
    return Services(
        pool: pool, secrets: secrets.store, hasher: hasher, keyRing: keyRing, directory: directory, listener: listener,
        recorder: recorder, tokens: tokens, limiter: limiter, health: health,
        healthRoutes: HealthRoutes(monitor: health, drain: dependencies.drain),
        housekeeping: Housekeeping(pool: pool, logger: logger, now: now), metrics: metrics, drain: dependencies.drain,
        addressGate: tuning.addressGate, clientHolds: AddressGate(), trustedIssuers: trustedIssuers, now: now,
        onRoutes: tuning.onRoutes)
}
