import Crypto
import Foundation
import Logging
import SignetTestSupport
import Synchronization
import XCTest

@testable import Service

/// The key ring's staleness bound on the injected clock: past it without a successful read, no
/// token is signed; a read restores signing.
final class KeyRingClockTests: XCTestCase {
    private struct Store: SecretStore {
        let key: SigningKey
        let readable: @Sendable () -> Bool

        func credentialHMACKey() async throws -> SymmetricKey { SymmetricKey(size: .bits256) }
        func ensureSigningKeys() async throws -> [SigningKey] { [key] }
        func publishedSigningKeys() async throws -> [SigningKey] {
            guard readable() else { throw DatabaseError.unexpectedResult("the store is down") }
            return [key]
        }
        func rotateSigningKey(publishFor: Duration, audit: AuditContext) async throws -> (current: String, retired: String?) {
            (key.kid, nil)
        }
    }

    private let claims = AccessTokenClaims(
        iss: "http://127.0.0.1:8080", sub: "00000000-0000-4000-8000-000000000001", aud: "signet", client_id: "sgc_test",
        scope: "reports:read", iat: 1_700_000_000, exp: 1_700_000_900, jti: "test", credential_id: "test", generation: 0)

    func testSigningStopsExactlyAtTheStalenessBoundAndResumesAfterARead() async throws {
        let clock = ManualClock()
        let readable = Mutex(true)
        let store = Store(key: SigningKey(privateKey: P256.Signing.PrivateKey(), isCurrent: true), readable: { readable.withLock { $0 } })
        let ring = KeyRing(store: store, logger: Logger(label: "test"), clock: clock.signetClock())
        try await ring.refresh()
        let token = try await ring.sign(claims)
        let verified = await ring.verify(token)
        XCTAssertEqual(verified?.jti, "test")

        clock.advance(by: ring.staleAfter - .milliseconds(1))
        _ = try await ring.sign(claims)
        readable.withLock { $0 = false }
        try? await ring.refresh()
        clock.advance(by: .milliseconds(1))
        do {
            _ = try await ring.sign(claims)
            XCTFail("signed with keys not read for the whole bound")
        } catch let error as SignetError {
            XCTAssertEqual(error.status, .serviceUnavailable)
        }

        readable.withLock { $0 = true }
        try await ring.refresh()
        _ = try await ring.sign(claims)
    }
}
