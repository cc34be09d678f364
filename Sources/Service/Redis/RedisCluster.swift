/// Redis Cluster's rules, without I/O: which of the 16384 slots a key is in (CRC16 of its hash
/// tag), which master serves a slot (`CLUSTER SLOTS`), and the redirections a node answers
/// (`MOVED`, `ASK`).
public enum RedisCluster {
    public static let slotCount = 16_384

    /// The slot of `key`: CRC16 (XMODEM) of the part between the first `{` and the next `}` when
    /// that part is not empty, else of the whole key, modulo 16384.
    public static func slot(of key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return Int(crc16(bytes[(open + 1)..<close])) % slotCount
        }
        return Int(crc16(bytes)) % slotCount
    }

    /// CRC16-CCITT as XMODEM computes it (polynomial 0x1021, initial value 0), as Redis does.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// Which master serves each slot, from a `CLUSTER SLOTS` answer.
struct SlotMap: Sendable, Equatable {
    /// Ranges of slots and their master, sorted by first slot.
    private(set) var ranges: [(range: ClosedRange<Int>, master: RedisAddress)]

    /// `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replicas...], ...]`. Nil for any
    /// other shape.
    init?(clusterSlots reply: RedisReply) {
        guard case .array(let entries) = reply else { return nil }
        var ranges: [(range: ClosedRange<Int>, master: RedisAddress)] = []
        for entry in entries {
            guard case .array(let fields) = entry, fields.count >= 3, case .integer(let start) = fields[0],
                case .integer(let end) = fields[1], start <= end, start >= 0, end < RedisCluster.slotCount,
                case .array(let master) = fields[2], master.count >= 2, case .string(let host) = master[0],
                case .integer(let port) = master[1]
            else { return nil }
            ranges.append((Int(start)...Int(end), RedisAddress(host: String(decoding: host, as: UTF8.self), port: Int(port))))
        }
        self.ranges = ranges.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    static func == (lhs: SlotMap, rhs: SlotMap) -> Bool {
        lhs.ranges.count == rhs.ranges.count && zip(lhs.ranges, rhs.ranges).allSatisfy { $0.range == $1.range && $0.master == $1.master }
    }

    /// The master serving `slot`; nil when no range covers it (the cluster is incomplete).
    func master(of slot: Int) -> RedisAddress? {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let range = ranges[middle].range
            if slot < range.lowerBound {
                high = middle - 1
            } else if slot > range.upperBound {
                low = middle + 1
            } else {
                return ranges[middle].master
            }
        }
        return nil
    }

    /// Every master that serves a slot, in the order of their first slot.
    var masters: [RedisAddress] {
        var seen: [RedisAddress] = []
        for (_, master) in ranges where !seen.contains(master) { seen.append(master) }
        return seen
    }

    /// Whether every slot is served.
    var coversEverySlot: Bool {
        var next = 0
        for (range, _) in ranges {
            guard range.lowerBound <= next else { return false }
            next = max(next, range.upperBound + 1)
        }
        return next == RedisCluster.slotCount
    }
}

/// A node's answer that a slot is served elsewhere: for good (`MOVED`: the map is out of date) or
/// for this one command while the slot migrates (`ASK`: send `ASKING` first, there).
public enum RedisRedirect: Sendable, Equatable {
    case moved(slot: Int, to: RedisAddress)
    case ask(slot: Int, to: RedisAddress)

    /// `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`; nil for any other error.
    init?(error message: String) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]) else { return nil }
        // Redis writes an IPv6 node unbracketed (`::1:6381`): the port follows the last colon.
        var address = RedisAddress(parts[2])
        if address == nil, let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) {
            address = RedisAddress(host: String(parts[2][..<colon]), port: port)
        }
        guard let address, !address.host.isEmpty else { return nil }
        switch parts[0] {
        case "MOVED": self = .moved(slot: slot, to: address)
        case "ASK": self = .ask(slot: slot, to: address)
        default: return nil
        }
    }
}
