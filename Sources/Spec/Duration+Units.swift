/// The one conversion of a `Duration` to whole units, for logs, metrics, socket options and
/// settings that take numbers (each rounds down).
extension Duration {
    /// Whole milliseconds.
    public var milliseconds: Int64 { whole(1_000_000_000_000_000) }
    /// Whole microseconds.
    public var microseconds: Int64 { whole(1_000_000_000_000) }
    /// Whole nanoseconds.
    public var nanoseconds: Int64 { whole(1_000_000_000) }
    /// Milliseconds with their fraction, for measurements.
    public var fractionalMilliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    private func whole(_ attosecondsPerUnit: Int64) -> Int64 {
        let (seconds, attoseconds) = components
        return seconds * (1_000_000_000_000_000_000 / attosecondsPerUnit) + attoseconds / attosecondsPerUnit
    }
}
