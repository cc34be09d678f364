import Foundation
import Logging
import Service

/// Reads the environment, then runs Signet until SIGTERM or SIGINT. A configuration error is one
/// line on standard error and exit code 2; a failure to start (database unreachable) exit 1.
let configuration: SignetConfiguration
do {
    configuration = try SignetConfiguration.fromEnvironment()
} catch {
    FileHandle.standardError.write(Data("signet: configuration error: \(error)\n".utf8))
    exit(2)
}

let level = configuration.logLevel
switch configuration.logFormat {
case .json:
    LoggingSystem.bootstrap { label in
        var handler = JSONLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
case .text:
    LoggingSystem.bootstrap { label in
        // One event, one line: control characters a client sent are escaped first.
        var handler = EscapingLogHandler(StreamLogHandler.standardError(label: label))
        handler.logLevel = level
        return handler
    }
}
var logger = Logger(label: "signet")
logger[metadataKey: "instance"] = .string(configuration.instanceID)

do {
    var dependencies = Dependencies.live(configuration: configuration, logger: logger)
    // A fault `signet-sim explore` injects to prove its revocation checker (docs/chaos.md): no change
    // listener, and cache entries kept CREDENTIAL_CACHE_TTL_MS anyway, so another instance's
    // revocation reaches this one only when its entry expires. Never for production.
    if ProcessInfo.processInfo.environment["SIGNET_FAULT_STALE_CREDENTIAL_CACHE"] == "true" {
        dependencies.tuning.listensForChanges = false
        dependencies.tuning.credentialCacheFallbackTTL = configuration.credentialCacheTTL
        logger.warning(
            "SIGNET_FAULT_STALE_CREDENTIAL_CACHE=true: no change listener, cache entries kept CREDENTIAL_CACHE_TTL_MS; revocations on other instances are not honoured here until then. A fault for tests, never for production"
        )
    }
    dependencies.metrics.bootstrapProcessWide()
    let application = try await buildApplication(configuration: configuration, dependencies: dependencies)
    logger.info("signet starting", metadata: ["address": "\(configuration.host):\(configuration.port)"])
    try await runUntilSignalled(application, drain: dependencies.drain, drainDuration: configuration.shutdownDrain, logger: logger)
} catch {
    logger.critical("signet could not start or stopped with an error", metadata: ["error": "\(error)"])
    exit(1)
}
