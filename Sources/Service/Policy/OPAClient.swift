import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// Open Policy Agent over HTTP (`OPA_URL`): health, and token decisions at
/// `POST /v1/data/<OPA_DECISION_PATH>` with the contract of `fixtures/opa/signet.rego`.
public struct OPAClient: Sendable {
    public let url: String
    public let decisionPath: String
    /// The bound of one decision call (`OPA_TIMEOUT_MS`).
    public let timeout: Duration
    let http: HTTPClient
    /// Told each decision call's latency and failure (`signet_dependency_call_*{dependency="opa"}`).
    public var metrics: SignetMetrics?

    public init(url: String, decisionPath: String, timeout: Duration, http: HTTPClient = OPAClient.sharedHTTP) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.decisionPath = decisionPath
        self.timeout = timeout
        self.http = http
    }

    /// The process's client for OPA (never shut down, like `HTTPClient.shared`): there is a
    /// decision per token request, so it keeps up to 64 connections per host, where the shared
    /// client's 8 make concurrent decisions queue. It never follows a redirect: a decision
    /// comes from `OPA_URL` or not at all.
    public static let sharedHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// The body of a decision request: `{"input": {"agent": {id, owner, scopes, status},
    /// "requested_scopes": [...], "client_ip"?, "requested_resources"?, "token_exchange"?: {"subject",
    /// "actor_chain"}}}`, written directly (no `JSONSerialization` on
    /// the token path).
    static func decisionBody(_ subject: PolicySubject, requested: [String]) -> [UInt8] {
        var agent = JSONObjectWriter(capacity: 160)
        agent.field("id", subject.agentID)
        agent.field("owner", subject.owner)
        agent.field("scopes", subject.scopes)
        agent.field("status", subject.status.rawValue)
        var input = JSONObjectWriter(capacity: 256)
        input.field("agent", object: agent.finish())
        input.field("requested_scopes", requested)
        if let address = subject.clientAddress { input.field("client_ip", address) }
        if !subject.resources.isEmpty { input.field("requested_resources", subject.resources) }
        if let exchange = subject.exchange {
            var chain = JSONObjectWriter(capacity: 128)
            chain.field("subject", exchange.subject)
            chain.field("actor_chain", exchange.actors)
            input.field("token_exchange", object: chain.finish())
        }
        var body = JSONObjectWriter(capacity: 272)
        body.field("input", object: input.finish())
        return body.finish()
    }

    /// `GET /health`: any answer but 200 is a failure.
    public func health(timeout: Duration) async throws -> String? {
        let status = try await BoundedHTTP.send(HTTPClientRequest(url: "\(url)/health"), on: http, timeout: timeout).status
        guard status == 200 else { throw HealthCheckError("OPA answered HTTP \(status) on /health") }
        return nil
    }

    /// Asks for a decision; returns `result.scopes`. Throws `PolicyError.unavailable` on no
    /// answer in time, a non-200 answer or a result without a list of strings at `scopes`.
    func decide(body: [UInt8]) async throws(PolicyError) -> [String] {
        var request = HTTPClientRequest(url: "\(url)/v1/data/\(decisionPath)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let answer: BoundedHTTP.Answer
        do {
            answer = try await BoundedHTTP.send(
                request, on: http, timeout: timeout, observe: observer)
        } catch {
            throw .unavailable("OPA did not answer: \(error)")
        }
        guard answer.status == 200 else { throw .unavailable("OPA answered HTTP \(answer.status)") }
        guard let document = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any],
            let result = document["result"] as? [String: Any], let scopes = result["scopes"] as? [String]
        else {
            throw .unavailable("OPA's answer has no result.scopes list (is the policy loaded at \(decisionPath)?)")
        }
        return scopes
    }
}

/// No decision could be had: the token request fails closed with 503, never issues a token.
public enum PolicyError: Error, Sendable, CustomStringConvertible, SignetErrorConvertible {
    /// The message is for the log; clients see a generic sentence.
    case unavailable(String)

    public var description: String {
        switch self {
        case .unavailable(let message): "policy decision unavailable: \(message)"
        }
    }

    public var signetError: SignetError {
        SignetError.unavailable("the policy service is unavailable; no token was issued")
    }
}

/// The token policy when OPA is configured: OPA decides, the answer is narrowed to what the
/// agent may hold (requested ∩ registered), and any failure fails closed. A burst of failures
/// logs one warning, and the recovery one info line.
public final class OPAPolicy: TokenPolicy {
    let client: OPAClient
    private let logger: Logger
    private let failing = Atomic<Bool>(false)
    /// Recent decisions, when `OPA_DECISION_CACHE_MS` is set.
    let cache: DecisionCache?

    public init(client: OPAClient, logger: Logger, cache: DecisionCache? = nil) {
        self.client = client
        self.logger = logger
        self.cache = cache
    }

    public func grantedScopes(for subject: PolicySubject, requested: [String]) async throws -> [String] {
        let body = OPAClient.decisionBody(subject, requested: requested)
        let decided: [String]
        if let cached = cache?.decision(for: body) {
            // Not an answer from OPA: says nothing about whether it is back.
            decided = cached
        } else {
            do {
                decided = try await client.decide(body: body)
            } catch {
                if !failing.exchange(true, ordering: .relaxed) {
                    logger.warning(LogLine.opaDown, metadata: ["error": "\(error)"])
                }
                throw error
            }
            cache?.store(decided, for: body)
            if failing.exchange(false, ordering: .relaxed) {
                logger.info(LogLine.opaBack)
            }
        }
        // OPA may narrow, never widen: only scopes the agent is registered for and asked for.
        let allowed = Set(requested.isEmpty ? subject.scopes : requested.filter(subject.scopes.contains))
        var seen: Set<String> = []
        return decided.filter { allowed.contains($0) && seen.insert($0).inserted }
    }
}

extension OPAClient {
    /// Reports each call to `metrics` as `opa`.
    var observer: (@Sendable (Duration, Bool) -> Void)? {
        guard let metrics else { return nil }
        return { duration, failed in metrics.dependencyCall("opa", took: duration, failed: failed) }
    }
}
