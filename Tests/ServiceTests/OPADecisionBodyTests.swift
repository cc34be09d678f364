import Foundation
import XCTest

@testable import Service

/// The decision request OPA gets, written without `JSONSerialization`: it must decode to the
/// document of `fixtures/opa/signet.rego`'s contract, escaping included.
final class OPADecisionBodyTests: XCTestCase {
    func testTheBodyDecodesToTheContractsDocument() throws {
        let subject = PolicySubject(
            agentID: "3f1c0d2e-0000-4000-8000-000000000001", owner: "team \"a\"\n\r\t\u{1F}\u{2028}/\\ é ✓", status: .active,
            scopes: ["reports:read", "a\u{01}b"], clientAddress: "198.51.100.7")
        let body = OPAClient.decisionBody(subject, requested: ["reports:read", "x\"y"])
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body)) as? NSDictionary)
        let expected: NSDictionary = [
            "input": [
                "agent": [
                    "id": subject.agentID, "owner": subject.owner, "scopes": subject.scopes, "status": "active",
                ],
                "requested_scopes": ["reports:read", "x\"y"],
                "client_ip": "198.51.100.7",
            ]
        ]
        XCTAssertEqual(document, expected)
    }

    func testNoAddressNoRequestedScopes() throws {
        let subject = PolicySubject(agentID: "id", owner: "o", status: .suspended, scopes: [])
        let body = OPAClient.decisionBody(subject, requested: [])
        XCTAssertEqual(
            String(decoding: body, as: UTF8.self),
            #"{"input":{"agent":{"id":"id","owner":"o","scopes":[],"status":"suspended"},"requested_scopes":[]}}"#)
    }
}
