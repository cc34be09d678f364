import Foundation

/// A fault on one direction of a proxy's connections, as Toxiproxy names and shapes it
/// (`{"name", "type", "stream", "toxicity", "attributes"}`), so a staging environment can run a
/// real Toxiproxy or `signet-sim proxy` and every client of Toxiproxy's HTTP API works with both.
///
/// Types and attributes (times in milliseconds):
/// - `latency` (`latency`, `jitter`): each chunk is held `latency` ± a uniform `jitter`, order kept;
/// - `timeout` (`timeout`): nothing passes; with `timeout` > 0 the connection is closed after it,
///   with 0 it is held until the toxic is removed (a black hole);
/// - `reset_peer` (`timeout`): the connection is reset (TCP RST) after `timeout`, at once with 0;
/// - `bandwidth` (`rate`, KB/s): chunks leave no faster than the rate;
/// - `slow_close` (`delay`): a close is passed on `delay` later;
/// - `limit_data` (`bytes`): the connection is closed once that many bytes have passed.
///
/// `stream` is `upstream` (client to server) or `downstream` (the default); `toxicity` (0–1, default
/// 1) is the chance each connection has it, decided once per connection.
public struct Toxic: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case latency, timeout, bandwidth
        case resetPeer = "reset_peer"
        case slowClose = "slow_close"
        case limitData = "limit_data"

        /// The attributes it takes, and their defaults.
        var attributes: [String: Int] {
            switch self {
            case .latency: ["latency": 0, "jitter": 0]
            case .timeout, .resetPeer: ["timeout": 0]
            case .bandwidth: ["rate": 0]
            case .slowClose: ["delay": 0]
            case .limitData: ["bytes": 0]
            }
        }
    }

    public enum Stream: String, Sendable {
        case upstream, downstream
    }

    public var name: String
    public var kind: Kind
    public var stream: Stream
    public var toxicity: Double
    public var attributes: [String: Int]

    public init(name: String? = nil, kind: Kind, stream: Stream = .downstream, toxicity: Double = 1, attributes: [String: Int] = [:]) {
        self.name = name ?? "\(kind.rawValue)_\(stream.rawValue)"
        self.kind = kind
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = kind.attributes.merging(attributes) { _, given in given }
    }

    public func attribute(_ name: String) -> Int { attributes[name] ?? 0 }

    /// Toxiproxy's JSON for it.
    public var json: [String: Any] {
        ["name": name, "type": kind.rawValue, "stream": stream.rawValue, "toxicity": toxicity, "attributes": attributes]
    }

    /// Reads a toxic as `POST /proxies/{proxy}/toxics` takes it, with Toxiproxy's defaults; the
    /// error names what is wrong (the API answers it 400).
    public init(json object: [String: Any]) throws(ToxiproxyError) {
        guard let typeName = object["type"] as? String, let kind = Kind(rawValue: typeName) else {
            throw ToxiproxyError(400, "invalid toxic type")
        }
        var stream = Stream.downstream
        if let value = object["stream"] {
            guard let text = value as? String, let parsed = Stream(rawValue: text.lowercased()) else {
                throw ToxiproxyError(400, "stream was invalid, can be either upstream or downstream")
            }
            stream = parsed
        }
        var toxicity = 1.0
        if let value = object["toxicity"] {
            guard let number = value as? NSNumber, (0...1).contains(number.doubleValue) else {
                throw ToxiproxyError(400, "bad request body: toxicity must be a number from 0 to 1")
            }
            toxicity = number.doubleValue
        }
        let name = (object["name"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if let name, !Self.isName(name) { throw ToxiproxyError(400, "bad request body: a toxic's name is 1–64 of [A-Za-z0-9_.-]") }
        self.init(name: name, kind: kind, stream: stream, toxicity: toxicity)
        try update(attributes: object["attributes"])
    }

    /// Applies `attributes` (and `toxicity`) from a `POST /proxies/{proxy}/toxics/{toxic}` body.
    public mutating func update(json object: [String: Any]) throws(ToxiproxyError) {
        if let value = object["toxicity"] {
            guard let number = value as? NSNumber, (0...1).contains(number.doubleValue) else {
                throw ToxiproxyError(400, "bad request body: toxicity must be a number from 0 to 1")
            }
            toxicity = number.doubleValue
        }
        try update(attributes: object["attributes"])
    }

    private mutating func update(attributes value: Any?) throws(ToxiproxyError) {
        guard let value else { return }
        guard let given = value as? [String: Any] else { throw ToxiproxyError(400, "bad request body: attributes must be an object") }
        for (key, raw) in given {
            guard kind.attributes[key] != nil else { continue }  // Toxiproxy ignores unknown attributes
            guard let number = raw as? NSNumber, number.doubleValue >= 0, number.doubleValue <= 1e12 else {
                throw ToxiproxyError(400, "bad request body: attribute \(key) must be a non-negative number")
            }
            attributes[key] = number.intValue
        }
    }

    static func isName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { $0.isASCIIAlphanumeric || [UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ".")].contains($0) }
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool { (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) }
}

/// An API error as Toxiproxy answers it: `{"error": message, "status": code}`.
public struct ToxiproxyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let message: String

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}

/// One direction of one connection through the toxics: what happens to each chunk read, by the
/// toxics of that direction the connection has (pure: the instant and the random draws passed in).
public struct ToxicFlow: Sendable, Equatable {
    public typealias Instant = ContinuousClock.Instant

    public enum Action: Sendable, Equatable {
        /// Write `bytes` of the chunk at `at` (the chunk's first `bytes`), then close the connection when `thenClose`.
        case forward(bytes: Int, at: Instant, thenClose: Bool)
        /// Swallow it (a `timeout` toxic).
        case drop
        /// Reset the connection now (`reset_peer` with no delay).
        case reset
    }

    /// No chunk leaves before the one before it: order is kept through latency and bandwidth.
    public private(set) var releasedUntil: Instant
    /// Bytes passed so far (for `limit_data`).
    public private(set) var bytesPassed = 0

    public init(start: Instant) { releasedUntil = start }

    /// The fate of a chunk of `size` bytes read at `now` under `toxics` (those of this direction this
    /// connection has); `random` draws uniformly from 0..<1 (for jitter).
    public mutating func chunk(_ size: Int, toxics: [Toxic], now: Instant, random: () -> Double) -> Action {
        if toxics.contains(where: { $0.kind == .resetPeer && $0.attribute("timeout") == 0 }) { return .reset }
        if toxics.contains(where: { $0.kind == .timeout }) { return .drop }
        var delay = Duration.zero
        for toxic in toxics {
            switch toxic.kind {
            case .latency:
                let jitter = toxic.attribute("jitter")
                let offset = jitter == 0 ? 0 : Int((random() * 2 - 1) * Double(jitter))
                delay += .milliseconds(max(0, toxic.attribute("latency") + offset))
            case .bandwidth:
                let rate = toxic.attribute("rate")
                // KB/s as Toxiproxy counts it (1 KB = 1000 bytes); 0 is no limit, as there.
                if rate > 0 { delay += .microseconds(Int64(size) * 1_000_000 / Int64(rate * 1000)) }
            default:
                break
            }
        }
        var bytes = size
        var close = false
        if let limit = toxics.filter({ $0.kind == .limitData }).map({ $0.attribute("bytes") }).min() {
            let left = max(0, limit - bytesPassed)
            if bytes >= left {
                bytes = left
                close = true
            }
        }
        let at = max(now + delay, releasedUntil)
        releasedUntil = at
        bytesPassed += bytes
        return .forward(bytes: bytes, at: at, thenClose: close)
    }

    /// How long a close read on this side waits before it is passed on (`slow_close`).
    public static func closeDelay(_ toxics: [Toxic]) -> Duration {
        .milliseconds(toxics.filter { $0.kind == .slowClose }.map { $0.attribute("delay") }.max() ?? 0)
    }

    /// What a toxic does to a connection by itself, from the moment the connection has it: close it
    /// after a `timeout` > 0, reset it after a `reset_peer`'s timeout.
    public static func timer(_ toxic: Toxic) -> (after: Duration, reset: Bool)? {
        switch toxic.kind {
        case .timeout where toxic.attribute("timeout") > 0: (.milliseconds(toxic.attribute("timeout")), false)
        case .resetPeer: (.milliseconds(toxic.attribute("timeout")), true)
        default: nil
        }
    }
}
