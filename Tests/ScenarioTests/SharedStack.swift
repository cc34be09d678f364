import Simulator
import XCTest

/// One local stack (PostgreSQL + Redis processes) for the whole test run: scenarios use their
/// own databases, so sharing is safe. The Simulator stops it at exit, on any exit path.
actor SharedStack {
    static let shared = SharedStack()
    private var stack: LocalStack?

    func get() async throws -> LocalStack {
        if let stack { return stack }
        let started = try await LocalStack.start()
        stack = started
        return started
    }
}

extension XCTestCase {
    /// Runs a catalogue scenario on the shared stack and fails the test with each failed check.
    func runScenario(_ scenario: Scenario, file: StaticString = #filePath, line: UInt = #line) async throws {
        let stack = try await SharedStack.shared.get()
        let report = await ScenarioRunner.run(scenario, on: stack)
        print(report.rendered)
        for check in report.checks where !check.passed {
            XCTFail("\(check.name): expected \(check.expected), observed \(check.observed)", file: file, line: line)
        }
        if let error = report.error { XCTFail("scenario stopped: \(error)", file: file, line: line) }
        XCTAssertFalse(report.checks.isEmpty, "a scenario that checks nothing proves nothing", file: file, line: line)
    }
}
