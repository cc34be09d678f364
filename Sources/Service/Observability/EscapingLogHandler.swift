import Logging

/// Wraps a line-oriented log handler so that nothing a client sends can forge a line: control
/// characters in the message and in every metadata value (a `%0A` in a client id, a header) are
/// written as escapes (`\n`, `\u{1B}`), and a backslash as two, before the wrapped handler sees
/// them, so an escape in a line always means an escaped character.
///
/// The logger's own metadata lives here, not in the wrapped handler, and is merged into each event
/// when it is logged: every request sets its id on a copy of the logger, and `StreamLogHandler`
/// renders its whole metadata again on every change (3 % of a token request, measured with
/// `perf`), while most requests log nothing.
public struct EscapingLogHandler<Wrapped: LogHandler>: LogHandler {
    public var wrapped: Wrapped
    public var metadata: Logger.Metadata = [:]

    public init(_ wrapped: Wrapped) {
        self.wrapped = wrapped
        metadataProvider = wrapped.metadataProvider
        // Asked of the wrapped handler only when it has one: one without support logs a complaint.
        if metadataProvider != nil { self.wrapped.metadataProvider = nil }
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    /// Kept here too, and its values merged and escaped like the rest (between the logger's
    /// metadata and the event's, as swift-log orders them).
    public var metadataProvider: Logger.MetadataProvider?

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: Self.escape(event.message.description))
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { merged.merge(provided) { _, provided in provided } }
        if let own = event.metadata { merged.merge(own) { _, event in event } }
        event.metadata = merged.isEmpty ? nil : Self.escape(merged)
        wrapped.log(event: event)
    }

    static func escape(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(escape)
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(escape(text))
        case .stringConvertible(let convertible): .string(escape(convertible.description))
        case .array(let values): .array(values.map(escape))
        case .dictionary(let values): .dictionary(escape(values))
        }
    }

    /// The text with every control character (C0, DEL, C1, and the Unicode line and paragraph
    /// separators) escaped; anything else unchanged.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0) || $0 == "\\" }) else { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\\": escaped += "\\\\"
            case _ where needsEscape(scalar): escaped += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}
