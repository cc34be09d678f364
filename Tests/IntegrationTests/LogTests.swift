import Foundation
import Service
import Simulator
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The `signet` process's own log lines (`LOG_FORMAT=json`, `LOG_LEVEL=debug`): every line one
/// JSON object, one access line per request, and no secret in any line after a whole
/// registration, token, rotation, introspection and revocation flow.
final class LogTests: XCTestCase {
    func testAFullFlowLogsJSONLinesWithoutASecret() async throws {
        let port = try freePort()
        let adminToken = "log-test-admin-token-\(UUID().uuidString)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try SignetBinary.locate())
        process.environment = [
            "DATABASE_URL": try TestDatabase.url(applicationName: unique("logs")),
            "REDIS_URL": ProcessInfo.processInfo.environment["SIGNET_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
            "REDIS_KEY_PREFIX": "logs-\(UUID().uuidString.prefix(8)):",
            "SIGNET_ADMIN_TOKEN": adminToken,
            "PORT": String(port),
            "OPS_PORT": String(try freePort()),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "debug",
            "SHUTDOWN_DRAIN_MS": "0",
            "SIGNET_INSTANCE_ID": "log-test",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let collected = Task.detached { errors.fileHandleForReading.readDataToEndOfFile() }

        let base = "http://127.0.0.1:\(port)"
        try await eventually("signet answers", timeout: .seconds(30)) {
            (try? await Self.call("GET", "\(base)/health/live"))?.status == 200
        }
        var secrets = [adminToken]
        let registered = try await Self.call(
            "POST", "\(base)/v1/agents", bearer: adminToken,
            json: #"{"name":"\#(unique("log-flow"))","owner":"logs","scopes":["read","credentials:rotate"]}"#)
        XCTAssertEqual(registered.status, 201)
        let id = try XCTUnwrap(registered.object["id"] as? String)
        let clientID = try XCTUnwrap(registered.object["client_id"] as? String)
        let secret = try XCTUnwrap(registered.object["client_secret"] as? String)
        secrets.append(secret)

        let basic = Data("\(clientID):\(secret)".utf8).base64EncodedString()
        let issued = try await Self.call(
            "POST", "\(base)/oauth/token", basic: basic, form: "grant_type=client_credentials&scope=read%20credentials%3Arotate")
        XCTAssertEqual(issued.status, 200)
        let token = try XCTUnwrap(issued.object["access_token"] as? String)
        secrets.append(token)
        let wrong = try await Self.call(
            "POST", "\(base)/oauth/token", form: "grant_type=client_credentials&client_id=\(clientID)&client_secret=\(secret)x")
        XCTAssertEqual(wrong.status, 401)

        let rotated = try await Self.call("POST", "\(base)/v1/agents/\(id)/credentials/rotate", basic: basic, json: "{}")
        XCTAssertEqual(rotated.status, 201)
        let newSecret = try XCTUnwrap(rotated.object["client_secret"] as? String)
        secrets.append(newSecret)
        let second = try await Self.call(
            "POST", "\(base)/oauth/token", form: "grant_type=client_credentials&client_id=\(clientID)&client_secret=\(newSecret)")
        let secondToken = try XCTUnwrap(second.object["access_token"] as? String)
        secrets.append(secondToken)

        let introspected = try await Self.call("POST", "\(base)/oauth/introspect", bearer: adminToken, form: "token=\(secondToken)")
        XCTAssertEqual(introspected.object["active"] as? Bool, true)
        let revoked = try await Self.call("POST", "\(base)/oauth/revoke", bearer: adminToken, form: "token=\(secondToken)")
        XCTAssertEqual(revoked.status, 200)
        let refusedAdmin = try await Self.call("GET", "\(base)/v1/agents/\(id)", bearer: adminToken + "x")
        XCTAssertEqual(refusedAdmin.status, 401)

        kill(process.processIdentifier, SIGTERM)
        try await eventually("the process exits", timeout: .seconds(15)) { !process.isRunning }
        let lines = String(decoding: await collected.value, as: UTF8.self).split(separator: "\n").map(String.init)

        XCTAssertGreaterThan(lines.count, 10)
        var accessLines: [[String: Any]] = []
        for line in lines {
            let object = try XCTUnwrap(
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], "not one JSON object: \(line)")
            XCTAssertNotNil(object["time"] as? String, line)
            XCTAssertNotNil(object["level"] as? String, line)
            XCTAssertNotNil(object["message"] as? String, line)
            XCTAssertEqual(object["instance"] as? String, "log-test", line)
            if object["message"] as? String == "request" { accessLines.append(object) }
            for secret in secrets {
                XCTAssertFalse(line.contains(secret), "a secret or token in a log line: \(line)")
                // A token's signature alone, or a secret's body without its prefix, is as bad.
                XCTAssertFalse(line.contains(String(secret.suffix(24))), "part of a secret in a log line: \(line)")
            }
        }
        let routes = accessLines.compactMap { "\($0["method"] ?? "") \($0["route"] ?? "") \($0["status"] ?? "")" }
        XCTAssertTrue(routes.contains("POST /v1/agents 201"), "\(routes)")
        XCTAssertTrue(routes.contains("POST /v1/agents/{id}/credentials/rotate 201"), "\(routes)")
        XCTAssertTrue(routes.contains("POST /oauth/token 401"), "\(routes)")
        XCTAssertTrue(routes.contains("GET /v1/agents/{id} 401"), "\(routes)")
        XCTAssertFalse(routes.contains { $0.contains(id) }, "a route template, never the id")
        let tokenLine = try XCTUnwrap(accessLines.first { $0["route"] as? String == "/oauth/token" && $0["status"] as? String == "200" })
        XCTAssertEqual(tokenLine["principal"] as? String, "client")
        XCTAssertNotNil(tokenLine["request_id"] as? String)
        XCTAssertNotNil(Double(tokenLine["durationMs"] as? String ?? ""))
    }

    struct Answer {
        let status: Int
        let object: [String: Any]
    }

    static func call(
        _ method: String, _ url: String, bearer: String? = nil, basic: String? = nil, json: String? = nil, form: String? = nil
    ) async throws -> Answer {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = 10
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        if let basic { request.setValue("Basic \(basic)", forHTTPHeaderField: "Authorization") }
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.utf8)
        }
        if let form {
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(form.utf8)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return Answer(status: (response as? HTTPURLResponse)?.statusCode ?? 0, object: object)
    }
}
