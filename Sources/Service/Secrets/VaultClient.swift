import AsyncHTTPClient
import Foundation
import NIOCore

/// HashiCorp Vault over HTTP (`VAULT_ADDR`, token auth with `VAULT_TOKEN`, KV v2 at
/// `VAULT_KV_MOUNT`). Every call is bounded (`BoundedHTTP`).
public struct VaultClient: Sendable {
    public let address: String
    let token: String
    public let mount: String
    let http: HTTPClient

    public init(address: String, token: String, mount: String, http: HTTPClient = .shared) {
        self.address = address.hasSuffix("/") ? String(address.dropLast()) : address
        self.token = token
        self.mount = mount
        self.http = http
    }

    /// `GET /v1/sys/health?standbyok=true&perfstandbyok=true`: 200 is healthy (a standby is
    /// fine); sealed (503) and uninitialised (501) are failures with that message.
    public func health(timeout: Duration) async throws -> String? {
        let request = HTTPClientRequest(url: "\(address)/v1/sys/health?standbyok=true&perfstandbyok=true")
        let answer = try await BoundedHTTP.send(request, on: http, timeout: timeout)
        switch answer.status {
        case 200: return nil
        case 503: throw HealthCheckError("Vault is sealed")
        case 501: throw HealthCheckError("Vault is not initialized")
        default: throw HealthCheckError("Vault answered HTTP \(answer.status) on sys/health")
        }
    }
}
