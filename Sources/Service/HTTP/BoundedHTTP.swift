import AsyncHTTPClient
import Foundation
import NIOCore

/// One HTTP call to a dependency (Vault, OPA) that cannot outlive its bound: the client's own
/// deadline covers connecting, sending and reading, and `withDeadline` resumes the caller at the
/// bound whatever the connection does.
enum BoundedHTTP {
    struct Answer: Sendable {
        let status: Int
        let body: Data
    }

    struct TimedOut: Error, CustomStringConvertible {
        let timeout: Duration
        var description: String { "no answer within \(timeout.milliseconds) ms" }
    }

    /// Largest body read from a dependency.
    static let maxBodyBytes = 1 << 20

    /// - Parameter observe: told each call's latency and whether it failed (no answer, or a 5xx).
    static func send(
        _ request: HTTPClientRequest, on http: HTTPClient, timeout: Duration,
        observe: (@Sendable (Duration, Bool) -> Void)? = nil
    ) async throws -> Answer {
        let started = ContinuousClock.now
        let outcome = await withDeadline(timeout) {
            let response = try await http.execute(request, deadline: .now() + .milliseconds(timeout.milliseconds))
            let body = try await response.body.collect(upTo: maxBodyBytes)
            return Answer(status: Int(response.status.code), body: Data(buffer: body))
        }
        let failed: Bool = if case .success(let answer) = outcome { answer.status >= 500 } else { true }
        observe?(ContinuousClock.now - started, failed)
        switch outcome {
        case .success(let answer): return answer
        case .failure(let error): throw error
        case .timedOut: throw TimedOut(timeout: timeout)
        }
    }
}
