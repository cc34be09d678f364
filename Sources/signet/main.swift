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
    let dependencies = Dependencies.live(configuration: configuration, logger: logger)
    dependencies.metrics.bootstrapProcessWide()
    let application = try await buildApplication(configuration: configuration, dependencies: dependencies)
    logger.info("signet starting", metadata: ["address": "\(configuration.host):\(configuration.port)"])
    try await runUntilSignalled(application, drain: dependencies.drain, drainDuration: configuration.shutdownDrain, logger: logger)
} catch {
    logger.critical("signet could not start or stopped with an error", metadata: ["error": "\(error)"])
    exit(1)
}
