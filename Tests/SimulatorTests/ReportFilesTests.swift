import Foundation
import XCTest

@testable import Simulator

/// JUnit XML and JSON of scenario reports, exactly (issue 27).
final class ReportFilesTests: XCTestCase {
    let reports = [
        ScenarioReport(
            scenario: "redis-fallback", specScenario: "Redis <unavailable> & \"slow\"",
            checks: [
                Check(name: "tokens flow", outcome: .passed, expected: "200", observed: "200", at: .milliseconds(1500)),
                Check(name: "health\n503", outcome: .failed, expected: "503", observed: "200 'ok'", at: .milliseconds(2250)),
                Check(name: "sentinel", outcome: .skipped, expected: "a sentinel", observed: "none configured", at: .zero),
            ], duration: .seconds(3), error: nil),
        ScenarioReport(scenario: "pool", specScenario: "Pool", checks: [], duration: .milliseconds(10), error: "set-up failed\u{1}"),
    ]

    func testJUnitXMLIsWhatCISystemsRead() {
        XCTAssertEqual(
            ReportFiles.junit(reports),
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites name="signet-sim" tests="4" failures="1" errors="1" skipped="1" time="3.010">
              <testsuite name="redis-fallback" tests="3" failures="1" errors="0" skipped="1" time="3.000">
                <properties><property name="spec" value="Redis &lt;unavailable&gt; &amp; &quot;slow&quot;"/></properties>
                <testcase classname="redis-fallback" name="tokens flow" time="1.500"/>
                <testcase classname="redis-fallback" name="health&#10;503" time="2.250">
                  <failure message="expected 503, observed 200 &apos;ok&apos;"/>
                </testcase>
                <testcase classname="redis-fallback" name="sentinel" time="0.000">
                  <skipped message="none configured"/>
                </testcase>
              </testsuite>
              <testsuite name="pool" tests="1" failures="0" errors="1" skipped="0" time="0.010">
                <properties><property name="spec" value="Pool"/></properties>
                <testcase classname="pool" name="stopped" time="0.010">
                  <error message="set-up failed "/>
                </testcase>
              </testsuite>
            </testsuites>

            """)
    }

    func testJSONCarriesEveryCheck() throws {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ReportFiles.json(reports).utf8)) as? [String: Any])
        let entries = try XCTUnwrap(object["reports"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["scenario"] as? String }, ["redis-fallback", "pool"])
        XCTAssertEqual(entries.map { $0["passed"] as? Bool }, [false, false])
        let checks = try XCTUnwrap(entries[0]["checks"] as? [[String: Any]])
        XCTAssertEqual(checks.map { $0["outcome"] as? String }, ["passed", "failed", "skipped"])
        XCTAssertEqual(checks[1]["observed"] as? String, "200 'ok'")
        XCTAssertEqual(checks[1]["atMs"] as? Int, 2250)
        XCTAssertEqual(entries[1]["error"] as? String, "set-up failed\u{1}")
    }
}
