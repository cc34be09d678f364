import HTTPTypes
import Hummingbird
import Logging
import XCTest

@testable import Service

/// What a client sees for each database failure: the database's trouble is a 503 with
/// `Retry-After`, never a 500.
final class DatabaseErrorResponseTests: XCTestCase {
    let logger = Logger(label: "test")

    func testAStandbyRefusingAWriteIsA503WithRetryAfter() {
        let readOnly = DatabaseError.server(sqlState: "25006", message: "cannot execute INSERT in a read-only transaction", constraint: nil)
        XCTAssertTrue(readOnly.isReadOnlyServer)
        let response = ErrorMiddleware<SignetRequestContext>.response(for: readOnly, logger: logger)
        XCTAssertEqual(response.status, .serviceUnavailable)
        XCTAssertEqual(response.headers[.retryAfter], "1")
    }

    func testConnectionFailuresAreTheConnectionsAndOtherErrorsAreNot() {
        XCTAssertTrue(DatabaseError.connectionLost("gone").isConnectionFailure)
        for state in ["57P01", "57P02", "57P03", "08006"] {
            XCTAssertTrue(DatabaseError.server(sqlState: state, message: "", constraint: nil).isConnectionFailure, state)
            XCTAssertEqual(
                ErrorMiddleware<SignetRequestContext>.response(for: .server(sqlState: state, message: "", constraint: nil), logger: logger)
                    .status,
                .serviceUnavailable, state)
        }
        XCTAssertFalse(DatabaseError.server(sqlState: "23505", message: "", constraint: nil).isConnectionFailure)
        XCTAssertFalse(DatabaseError.timedOut(.seconds(1)).isConnectionFailure)
    }
}
