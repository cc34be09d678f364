import Foundation

/// One line of an `explore` history (JSON lines): what was configured, each fault, each request
/// with what it proved, each health reading, and the reads made after the run. `type` says which:
///
/// - `run`: `seed`, `durationMs`, `instances`, `limit` and `windowMs` (the agents' rate limit),
///   `answerBoundMs`, `env` (what the instances were given), `replay` (the command that reruns it);
/// - `fault`: `kind`, `at` and `until` (ms from the start), `instance` for a restart;
/// - `request`: `op`, `sent` and `answered` (ms), `instance` (the `Signet-Instance` that answered),
///   `status`, `retryAfter`, `policy` (its `RateLimit-Policy`: the limiter counted it against that
///   budget), `agent` (whose budget it spent, when authenticated as an agent),
///   `target` (the agent an admin request acted on),
///   `credential` (the credential it authenticated with), `jti` (the token it issued, introspected or
///   revoked), `active` (introspection's answer), `error` (no answer: what the client saw);
/// - `health`: `at`, `instance`, `dependencies` (each dependency's `status`);
/// - `verify`: after the run, `op` (`agent`, `credential`, `audit`), `agent`, `credential`,
///   `found`, `state`, `actions` (the audit rows' actions and their subject ids).
public struct HistoryEvent: Codable, Equatable, Sendable {
    public var type: String
    // run
    public var seed: UInt64?
    public var durationMs: Int?
    public var instances: Int?
    public var limit: Int?
    public var windowMs: Int?
    public var answerBoundMs: Int?
    public var env: [String: String]?
    public var replay: String?
    // fault
    public var kind: FaultKind?
    public var at: Int?
    public var until: Int?
    // request, health, verify
    public var op: String?
    public var sent: Int?
    public var answered: Int?
    public var instance: String?
    public var status: Int?
    public var retryAfter: String?
    public var policy: String?
    public var agent: String?
    public var target: String?
    public var credential: String?
    public var jti: String?
    public var active: Bool?
    public var error: String?
    public var dependencies: [String: String]?
    public var found: Bool?
    public var state: String?
    public var actions: [String]?

    public init(type: String) { self.type = type }

    public static func fault(_ fault: ScheduledFault) -> HistoryEvent {
        var event = HistoryEvent(type: "fault")
        event.kind = fault.kind
        event.at = fault.at
        event.until = fault.until
        event.instance = fault.instance.map(String.init)
        return event
    }

    public static func request(_ op: String, sent: Int, answered: Int, status: Int?) -> HistoryEvent {
        var event = HistoryEvent(type: "request")
        event.op = op
        event.sent = sent
        event.answered = answered
        event.status = status
        return event
    }
}

/// Reading and writing a history: one JSON object per line, keys sorted, so two histories of one
/// seed differ only where the runs did.
public enum History {
    public static func encode(_ events: [HistoryEvent]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
    }

    /// The events of `text`; a line that is not an event is an error naming its number.
    public static func decode(_ text: String) throws -> [HistoryEvent] {
        let decoder = JSONDecoder()
        var events: [HistoryEvent] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            do {
                events.append(try decoder.decode(HistoryEvent.self, from: Data(line.utf8)))
            } catch {
                throw SimulatorError.setupFailed("history line \(index + 1) is not an event: \(error)")
            }
        }
        return events
    }
}
