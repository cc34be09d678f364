import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The networks whose `X-Forwarded-For` Signet believes (`TRUSTED_PROXIES`): the load balancers
/// in front of it. Without them the client address is the socket's peer, whatever a header says.
public struct TrustedProxies: Sendable, Equatable {
    struct Network: Sendable, Equatable {
        /// 4 or 16 bytes.
        let address: [UInt8]
        let prefixLength: Int

        func contains(_ other: [UInt8]) -> Bool {
            guard other.count == address.count else { return false }
            var remaining = prefixLength
            for (left, right) in zip(address, other) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if left & mask != right & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]

    /// Parses a comma-separated list of addresses and CIDRs (`10.0.0.0/8`, `::1`, `fd00::/8`);
    /// nil when an entry is not one. An empty list trusts nobody.
    public init?(_ list: String) {
        var networks: [Network] = []
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Self.bytes(of: String(parts[0])) else { return nil }
            var prefixLength = address.count * 8
            if parts.count == 2 {
                guard let length = Int(parts[1]), (0...address.count * 8).contains(length) else { return nil }
                prefixLength = length
            }
            networks.append(Network(address: address, prefixLength: prefixLength))
        }
        self.networks = networks
    }

    public var isEmpty: Bool { networks.isEmpty }

    /// Whether `address` is in one of the networks.
    public func contains(_ address: String) -> Bool {
        guard !networks.isEmpty, let bytes = Self.bytes(of: address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The client's address for a request from `peer` carrying `forwardedFor` (every
    /// `X-Forwarded-For` value, in order). From a trusted peer, the list is read from the right:
    /// the first address that is not a trusted proxy is the client's (anything a client wrote
    /// itself is further left and never reached); from anyone else, the peer.
    public func clientAddress(peer: String?, forwardedFor: @autoclosure () -> [String]) -> String? {
        guard let peer, contains(peer) else { return peer.map(Self.canonical) }
        let hops = forwardedFor().flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        var client = Self.canonical(peer)
        for hop in hops.reversed() {
            guard let bytes = Self.bytes(of: hop) else { break }
            client = Self.text(of: bytes)
            if !networks.contains(where: { $0.contains(bytes) }) { break }
        }
        return client
    }

    /// What a client's budget is keyed on: an IPv4 address as it is, an IPv6 address as its /64
    /// (one site is given a whole /64, so counting /128s would give it 2^64 budgets), and an IPv4
    /// address a NAT64 translator embedded in `64:ff9b::/96` (RFC 6052) as that IPv4 address (else
    /// every IPv4 client behind the translator would share one /64 budget).
    static func limiterKey(_ address: String) -> String {
        guard address.utf8.contains(UInt8(ascii: ":")), let bytes = bytes(of: address), bytes.count == 16 else { return address }
        if bytes.starts(with: nat64Prefix) { return text(of: Array(bytes[12...])) }
        return text(of: Array(bytes[0..<8]) + Array(repeating: 0, count: 8)) + "/64"
    }

    /// NAT64's well-known prefix, `64:ff9b::/96`.
    static let nat64Prefix: [UInt8] = [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0]

    /// The address in one spelling (an IPv4-mapped IPv6 address as IPv4), so one client is one subject.
    static func canonical(_ address: String) -> String {
        // An IPv4 address from the socket is already in its one spelling: no parsing on the hot path.
        guard address.utf8.contains(UInt8(ascii: ":")) else { return address }
        return bytes(of: address).map(text(of:)) ?? address
    }

    /// 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6; nil for anything else.
    static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }

    static func text(of bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
