import Crypto
import Spec

/// Whose budget a request spends, and the fixed-size key it is counted under.
///
/// The key is 32 hex digits of SHA-256 over the kind and the identity, so whatever a client
/// sends, a key has one size and never holds the identity itself (an admin token, an address).
public struct RateLimitSubject: Hashable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// An agent, authenticated by its client credentials or by one of its access tokens.
        case agent = "g"
        /// The admin token.
        case admin = "a"
        /// A source address, for requests without a valid principal (none, or failed).
        case address = "i"
        /// A source address, for the JWKS and the metadata: a budget of its own.
        case discovery = "d"
        /// A signed one-time value (a client assertion's or a DPoP proof's `jti`, with the key or
        /// client it belongs to): allowed once per `Defaults.replayWindowMilliseconds`
        /// (`ReplayGuard`).
        case replay = "r"
    }

    public let kind: Kind
    /// The kind's letter and the hash: what a Redis key or an in-memory entry is named by.
    public let key: String

    public init(_ kind: Kind, _ identity: String) {
        self.kind = kind
        var hasher = SHA256()
        hasher.update(data: Array("signet rate-limit subject \(kind.rawValue)\u{0}".utf8))
        hasher.update(data: Array(identity.utf8))
        key = kind.rawValue + Encoding.hex(hasher.finalize().prefix(16))
    }
}

extension RateLimitSubject {
    /// A value for each kind, read without hashing (on every request).
    public struct PerKind<Value: Sendable>: Sendable {
        private let agent: Value
        private let admin: Value
        private let address: Value
        private let discovery: Value
        private let replay: Value

        public init(_ make: (Kind) -> Value) {
            agent = make(.agent)
            admin = make(.admin)
            address = make(.address)
            discovery = make(.discovery)
            replay = make(.replay)
        }

        public subscript(_ kind: Kind) -> Value {
            switch kind {
            case .agent: agent
            case .admin: admin
            case .address: address
            case .discovery: discovery
            case .replay: replay
            }
        }
    }
}

extension RateLimitConfiguration {
    /// The requests each kind of subject may make per window.
    public var budgets: RateLimitSubject.PerKind<Int> {
        RateLimitSubject.PerKind { kind in
            switch kind {
            case .agent: maxRequests
            case .admin: adminMaxRequests
            case .address: addressMaxRequests
            case .discovery: discoveryMaxRequests
            case .replay: 1
            }
        }
    }

    /// Each kind's window: the configured one, and the replay window for one-time values.
    public var windows: RateLimitSubject.PerKind<Int64> {
        RateLimitSubject.PerKind { $0 == .replay ? Defaults.replayWindowMilliseconds : windowMilliseconds }
    }
}
