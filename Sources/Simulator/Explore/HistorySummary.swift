import Foundation

/// What a history measured, for people: answer times overall and during each fault, statuses, and
/// how many events of each type (`explore` prints it before the verdicts).
public enum HistorySummary {
    public static func lines(_ events: [HistoryEvent]) -> [String] {
        let requests = events.filter { $0.type == "request" && $0.status != nil }
        var lines = [
            "\(events.count) events: \(events.count { $0.type == "request" }) requests, \(events.count { $0.type == "fault" }) faults, "
                + "\(events.count { $0.type == "health" }) health readings, \(events.count { $0.type == "verify" }) reads afterwards",
            "answers: " + times(requests) + "; " + statuses(requests),
        ]
        for fault in events.filter({ $0.type == "fault" }).sorted(by: { ($0.at ?? 0) < ($1.at ?? 0) }) {
            guard let kind = fault.kind, let at = fault.at, let until = fault.until else { continue }
            let during = requests.filter { ($0.sent ?? 0) >= at && ($0.sent ?? 0) <= until }
            lines.append("  during \(kind.rawValue) (\(until - at) ms): " + times(during) + "; " + statuses(during))
        }
        return lines
    }

    /// `p50 N ms, p99 N ms, slowest N ms`.
    static func times(_ requests: [HistoryEvent]) -> String {
        let sorted = requests.compactMap { request in request.answered.flatMap { answered in request.sent.map { answered - $0 } } }.sorted()
        guard !sorted.isEmpty else { return "no answers" }
        func at(_ share: Double) -> Int { sorted[min(sorted.count - 1, Int(Double(sorted.count) * share))] }
        return "p50 \(at(0.5)) ms, p99 \(at(0.99)) ms, slowest \(sorted.last!) ms"
    }

    /// `200 × N, 429 × N, …` in status order.
    static func statuses(_ requests: [HistoryEvent]) -> String {
        Dictionary(grouping: requests, by: { $0.status ?? 0 }).map { ($0.key, $0.value.count) }.sorted { $0.0 < $1.0 }
            .map { "\($0.0) × \($0.1)" }.joined(separator: ", ")
    }
}
