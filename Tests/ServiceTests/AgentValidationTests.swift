import XCTest

@testable import Service

final class AgentValidationTests: XCTestCase {
    func body(_ json: String) -> [String: JSONValue] {
        guard case .object(let object) = JSONValue.parse(Data(json.utf8)) else {
            XCTFail("not an object: \(json)")
            return [:]
        }
        return object
    }

    func message(_ json: String) -> String? {
        do {
            _ = try NewAgent(body(json))
            return nil
        } catch {
            return error.message
        }
    }

    func testValidRegistrationIsNormalised() throws {
        let agent = try NewAgent(body(#"{"name":"  bot ","owner":"team","scopes":["a","b:c","a"],"metadata":{"k":1}}"#))
        XCTAssertEqual(agent, NewAgent.make(name: "bot", owner: "team", scopes: ["a", "b:c"], metadata: ["k": .number(1)]))
    }

    func testEachInvalidFieldIsNamed() {
        XCTAssertEqual(message(#"{"owner":"t"}"#), "name is required")
        XCTAssertEqual(message(#"{"name":"   ","owner":"t"}"#), "name must not be empty")
        XCTAssertEqual(message(#"{"name":5,"owner":"t"}"#), "name must be a string")
        XCTAssertEqual(
            message(#"{"name":"\#(String(repeating: "x", count: 129))","owner":"t"}"#), "name must be at most 128 characters (got 129)")
        XCTAssertEqual(message(#"{"name":"a\u0007b","owner":"t"}"#), "name must not contain control characters")
        XCTAssertEqual(message(#"{"name":"a"}"#), "owner is required")
        XCTAssertEqual(message(#"{"name":"a","owner":"t","scopes":"read"}"#), "scopes must be an array of strings")
        XCTAssertEqual(message(#"{"name":"a","owner":"t","scopes":[1]}"#), "scopes must be an array of strings")
        XCTAssertTrue(message(#"{"name":"a","owner":"t","scopes":["has space"]}"#)?.contains("is not a valid scope token") == true)
        XCTAssertTrue(message(#"{"name":"a","owner":"t","scopes":["quo\"te"]}"#)?.contains("is not a valid scope token") == true)
        XCTAssertTrue(message(#"{"name":"a","owner":"t","scopes":[""]}"#)?.contains("is not a valid scope token") == true)
        XCTAssertEqual(message(#"{"name":"a","owner":"t","metadata":[]}"#), "metadata must be a JSON object")
        XCTAssertEqual(
            message(#"{"name":"a","owner":"t","admin":true}"#),
            "unknown field \"admin\"; allowed: dpop_bound_access_tokens, federated_subject, jwks, may_act, metadata, name, owner, resources, scopes"
        )
    }

    func testScopeTokensFollowRFC6749() {
        XCTAssertTrue(AgentValidation.isScopeToken("agents:read"))
        XCTAssertTrue(AgentValidation.isScopeToken("https://api.example/x!#$%&'()*+,-./;<=>?@[]^_`{|}~"))
        XCTAssertFalse(AgentValidation.isScopeToken("a b"))
        XCTAssertFalse(AgentValidation.isScopeToken("back\\slash"))
        XCTAssertFalse(AgentValidation.isScopeToken("é"))
        XCTAssertFalse(AgentValidation.isScopeToken(String(repeating: "s", count: 129)))
    }

    func testTooManyScopesAndTooMuchMetadataAreRejected() {
        let scopes = (0...64).map { "\"s\($0)\"" }.joined(separator: ",")
        XCTAssertEqual(
            message(#"{"name":"a","owner":"t","scopes":[\#(scopes)]}"#), "an agent may hold at most 64 scopes (got a list of 65)")
        let repeated = Array(repeating: "\"same\"", count: 65).joined(separator: ",")
        XCTAssertEqual(
            message(#"{"name":"a","owner":"t","scopes":[\#(repeated)]}"#), "an agent may hold at most 64 scopes (got a list of 65)",
            "a list longer than the bound is refused even when its duplicates would fit")
        let big = String(repeating: "x", count: 17_000)
        XCTAssertTrue(
            message(#"{"name":"a","owner":"t","metadata":{"k":"\#(big)"}}"#)?.hasPrefix("metadata must be at most 16384 bytes") == true)
    }

    func testPatchAcceptsOnlyKnownFieldsAndStatuses() throws {
        XCTAssertEqual(try AgentPatch(body(#"{"status":"suspended"}"#)).status, .suspended)
        XCTAssertThrowsError(try AgentPatch(body(#"{}"#)))
        XCTAssertThrowsError(try AgentPatch(body(#"{"status":"deactivated"}"#)))
        XCTAssertThrowsError(try AgentPatch(body(#"{"name":"renamed"}"#)))
    }

    func testCursorRoundTripsAndRejectsForgeries() throws {
        XCTAssertEqual(try AgentStore.decodeCursor(AgentStore.encodeCursor(12_345)), 12_345)
        XCTAssertThrowsError(try AgentStore.decodeCursor("not-a-cursor"))
        XCTAssertThrowsError(try AgentStore.decodeCursor(""))
    }
}

extension NewAgent {
    static func make(name: String, owner: String, scopes: [String], metadata: [String: JSONValue]) -> NewAgent {
        // Round-trip through the validator so the test compares like with like.
        var body: [String: JSONValue] = ["name": .string(name), "owner": .string(owner)]
        body["scopes"] = .array(scopes.map(JSONValue.string))
        body["metadata"] = .object(metadata)
        return try! NewAgent(body)
    }
}
