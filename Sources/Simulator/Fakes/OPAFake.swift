import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// An HTTP fake of Open Policy Agent: `GET /health` and `POST /v1/data/<path>` answering
/// `{"result": ...}` from a decision function the test sets.
///
/// The default decision is Signet's built-in policy, the one `fixtures/opa/signet.rego`
/// encodes: the granted scopes are the requested ones the agent is registered for (all of its
/// scopes when none are requested; none for an agent that is not active). Input: `{"agent": {"id", "scopes", ...}, "requested_scopes": [...]}`;
/// result: `{"scopes": [...]}`.
///
/// Knobs: `latency`, `failing` (500 on every call), `down` (connection refused).
public final class OPAFake: Sendable {
    /// A decision: the decision path and the `input` document in, the `result` document out.
    public typealias Decision = @Sendable (_ path: String, _ input: [String: Any]) -> Any

    struct State: Sendable {
        var latency: Duration = .zero
        var failing = false
        var decisions = 0
        var healthChecks = 0
        /// The decision is still `builtInPolicy`: answered through `Codable` types rather than
        /// `JSONSerialization` and `Any` casts, which cost a load run more than Signet itself.
        var builtIn = true
    }

    private struct BuiltInRequest: Decodable {
        struct Input: Decodable {
            struct Agent: Decodable {
                let scopes: [String]?
                let status: String?
            }
            let agent: Agent?
            let requested_scopes: [String]?
        }
        let input: Input?
    }

    private struct BuiltInAnswer: Encodable {
        struct Result: Encodable { let scopes: [String] }
        let result: Result
    }

    private let state: NIOLockedValueBox<State>
    private let decision: NIOLockedValueBox<Decision>
    private let server: FakeServer

    public var url: String { server.url }

    private init(state: NIOLockedValueBox<State>, decision: NIOLockedValueBox<Decision>, server: FakeServer) {
        self.state = state
        self.decision = decision
        self.server = server
    }

    /// - Parameter proxied: false runs it without its fault proxy (load runs): `setDown` then fails.
    public static func start(proxied: Bool = true) async throws -> OPAFake {
        let state = NIOLockedValueBox(State())
        let decision = NIOLockedValueBox<Decision>(builtInPolicy)
        let router = Router()
        router.get("/health") { _, _ in
            let (delay, failing) = state.withLockedValue { state in
                state.healthChecks += 1
                return (state.latency, state.failing)
            }
            try await Task.sleep(for: delay)
            return failing ? jsonBody(["error": "fake failure"], status: .internalServerError) : jsonBody([:])
        }
        router.post("/v1/data/**") { request, context in
            let (delay, failing) = state.withLockedValue { ($0.latency, $0.failing) }
            try await Task.sleep(for: delay)
            if failing { return jsonBody(["code": "internal_error", "message": "fake failure"], status: .internalServerError) }
            var request = request
            let buffer = try await request.collectBody(upTo: 1 << 20)
            let builtIn = state.withLockedValue { state in
                guard state.builtIn else { return false }
                state.decisions += 1
                return true
            }
            if builtIn {
                let input = (try? JSONDecoder().decode(BuiltInRequest.self, from: Data(buffer.readableBytesView)))?.input
                let registered = input?.agent?.scopes ?? []
                let requested = input?.requested_scopes ?? []
                let granted =
                    input?.agent?.status != "active" ? [] : requested.isEmpty ? registered : requested.filter(registered.contains)
                let data = (try? JSONEncoder().encode(BuiltInAnswer(result: .init(scopes: granted)))) ?? Data("{}".utf8)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
            let body = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
            let path = context.parameters.getCatchAll().joined(separator: "/")
            let decide = decision.withLockedValue { $0 }
            state.withLockedValue { $0.decisions += 1 }
            return jsonBody(["result": decide(path, body?["input"] as? [String: Any] ?? [:])])
        }
        let server = try await FakeServer.start(name: "opa", router: router, proxied: proxied)
        return OPAFake(state: state, decision: decision, server: server)
    }

    /// Signet's built-in policy: requested ∩ registered, or all registered when none requested;
    /// nothing for an agent that is not active.
    public static let builtInPolicy: Decision = { _, input in
        let agent = input["agent"] as? [String: Any]
        guard agent?["status"] as? String == "active" else { return ["scopes": [String]()] }
        let registered = agent?["scopes"] as? [String] ?? []
        let requested = input["requested_scopes"] as? [String] ?? []
        let granted = requested.isEmpty ? registered : requested.filter(registered.contains)
        return ["scopes": granted]
    }

    public func setDecision(_ decision: @escaping Decision) {
        self.decision.withLockedValue { $0 = decision }
        state.withLockedValue { $0.builtIn = false }
    }
    public func setLatency(_ latency: Duration) { state.withLockedValue { $0.latency = latency } }
    public func setFailing(_ failing: Bool) { state.withLockedValue { $0.failing = failing } }
    public func setDown(_ down: Bool) async throws { try await server.setDown(down) }

    /// How many `/health` requests were answered.
    public var healthCheckCount: Int { state.withLockedValue { $0.healthChecks } }

    /// How many decisions were asked for.
    public var decisionCount: Int { state.withLockedValue { $0.decisions } }

    public func stop() async { await server.stop() }
}
