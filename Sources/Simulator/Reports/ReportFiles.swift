import Foundation

/// Scenario reports as files CI systems read: JUnit XML (one `testsuite` per scenario, one
/// `testcase` per check; a failed check is a `failure`, a skipped one `skipped`, a scenario that
/// stopped an `error`) and JSON (every check with what was expected and observed). Pure: the
/// reports in, the text out.
public enum ReportFiles {
    public static func junit(_ reports: [ScenarioReport], suite: String = "signet-sim") -> String {
        func seconds(_ duration: Duration) -> String { String(format: "%.3f", duration.fractionalMilliseconds / 1000) }
        let checks = reports.flatMap(\.checks)
        let errors = reports.filter { $0.error != nil }.count
        var lines = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<testsuites name="\#(escape(suite))" tests="\#(checks.count + errors)" failures="\#(checks.count(where: \.failed))" "#
                + #"errors="\#(errors)" skipped="\#(checks.count { $0.outcome == .skipped })" "#
                + #"time="\#(seconds(reports.reduce(.zero) { $0 + $1.duration }))">"#,
        ]
        for report in reports {
            let name = escape(report.scenario)
            lines.append(
                #"  <testsuite name="\#(name)" tests="\#(report.checks.count + (report.error == nil ? 0 : 1))" "#
                    + #"failures="\#(report.checks.count(where: \.failed))" errors="\#(report.error == nil ? 0 : 1)" "#
                    + #"skipped="\#(report.checks.count { $0.outcome == .skipped })" time="\#(seconds(report.duration))">"#)
            lines.append(#"    <properties><property name="spec" value="\#(escape(report.specScenario))"/></properties>"#)
            for check in report.checks {
                let open = #"    <testcase classname="\#(name)" name="\#(escape(check.name))" time="\#(seconds(check.at))""#
                switch check.outcome {
                case .passed:
                    lines.append(open + "/>")
                case .failed:
                    lines.append(open + ">")
                    lines.append(
                        #"      <failure message="expected \#(escape(check.expected)), observed \#(escape(check.observed))"/>"#)
                    lines.append("    </testcase>")
                case .skipped:
                    lines.append(open + ">")
                    lines.append(#"      <skipped message="\#(escape(check.observed))"/>"#)
                    lines.append("    </testcase>")
                }
            }
            if let error = report.error {
                lines.append(#"    <testcase classname="\#(name)" name="stopped" time="\#(seconds(report.duration))">"#)
                lines.append(#"      <error message="\#(escape(error))"/>"#)
                lines.append("    </testcase>")
            }
            lines.append("  </testsuite>")
        }
        lines.append("</testsuites>")
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ reports: [ScenarioReport]) -> String {
        let object: [[String: Any]] = reports.map { report in
            var entry: [String: Any] = [
                "scenario": report.scenario, "spec": report.specScenario, "passed": report.passed,
                "durationMs": Int(report.duration.fractionalMilliseconds.rounded()),
                "checks": report.checks.map { check in
                    [
                        "name": check.name, "outcome": "\(check.outcome)", "expected": check.expected, "observed": check.observed,
                        "atMs": Int(check.at.fractionalMilliseconds.rounded()),
                    ] as [String: Any]
                },
            ]
            if let error = report.error { entry["error"] = error }
            return entry
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["reports": object], options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// XML attribute text: the five predefined entities, and control characters (not allowed in
    /// XML 1.0) as spaces.
    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            case _ where scalar.value < 0x20 && scalar != "\t": out += " "
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
