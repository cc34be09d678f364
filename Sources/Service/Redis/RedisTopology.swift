import Foundation

/// Which Redis the limiter and the health check talk to: one server (`REDIS_URL`), whichever
/// master a set of sentinels names (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`), or a Redis
/// Cluster (`REDIS_CLUSTER_NODES`), each key on the master of its slot.
public enum RedisTopology: Sendable, Equatable {
    case server(RedisEndpoint)
    case sentinel(RedisSentinels)
    case cluster(RedisClusterNodes)

    /// The single server's endpoint; nil behind sentinels.
    public var server: RedisEndpoint? {
        if case .server(let endpoint) = self { endpoint } else { nil }
    }
}

/// A `host:port` pair: a sentinel, or the master one named.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` or `[v6]:port`; the port is required.
    public init?(_ text: some StringProtocol) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let number = Int(port), (1...65_535).contains(number) else { return nil }
        self.host = String(host)
        self.port = number
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A Redis Cluster: the nodes to ask for the slot map first, and the login every node takes (from a
/// `REDIS_URL` without a host; a cluster has database 0 only).
public struct RedisClusterNodes: Sendable, Equatable {
    public var seeds: [RedisAddress]
    public var login: RedisEndpoint

    public init(seeds: [RedisAddress], login: RedisEndpoint = .init()) {
        self.seeds = seeds
        self.login = login
    }

    /// Where to reach a node.
    func endpoint(of address: RedisAddress) -> RedisEndpoint { login.at(address) }
}

/// Redis behind Sentinel: the sentinels to ask, the master's name, and how to log in to the
/// sentinels and to the master (the master's user, password and database come from a `REDIS_URL`
/// without a host).
public struct RedisSentinels: Sendable, Equatable {
    public var sentinels: [RedisAddress]
    public var masterName: String
    /// `REDIS_SENTINEL_PASSWORD`: the sentinels' own `requirepass`, if any.
    public var sentinelPassword: String?
    /// The master's login and database; its host and port are what the sentinels say.
    public var master: RedisEndpoint

    public init(sentinels: [RedisAddress], masterName: String, sentinelPassword: String? = nil, master: RedisEndpoint = .init()) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.sentinelPassword = sentinelPassword
        self.master = master
    }

    /// Where to reach the master the sentinels named.
    func endpoint(of address: RedisAddress) -> RedisEndpoint { master.at(address) }

    /// Where to reach a sentinel.
    func endpoint(ofSentinel address: RedisAddress) -> RedisEndpoint {
        RedisEndpoint(host: address.host, port: address.port, password: sentinelPassword)
    }
}

extension RedisEndpoint {
    /// This login and database at `address` (a node the cluster or the sentinels named).
    func at(_ address: RedisAddress) -> RedisEndpoint {
        var endpoint = self
        endpoint.host = address.host
        endpoint.port = address.port
        return endpoint
    }
}
