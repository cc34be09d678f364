import Foundation

/// SplitMix64: a small generator whose whole output follows from its seed, so a fault schedule
/// (and the workload's choices) drawn from a seed is drawn the same way on every machine and
/// every run. (The standard library's generator cannot be seeded.)
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator of its own for stream `index` (a worker of the workload): seeded from this
    /// one's next output, so no stream replays another's numbers.
    public func split(_ index: Int) -> SeededGenerator {
        var copy = self
        return SeededGenerator(seed: copy.next() ^ ((UInt64(index) &+ 1) &* 0xD6E8_FEB8_6659_FD93))
    }

    /// A number in `range`, drawn the same way by every toolchain (the standard library's
    /// `Int.random(in:using:)` may change its algorithm between Swift versions, and with it every
    /// seed's schedule). The modulo's bias is below 2⁻⁴⁰ for these small ranges.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

/// One kind of fault `explore` injects: on which dependency, and whether it needs the local stack
/// (restarting a process is not something a Toxiproxy API can do).
public enum FaultKind: String, CaseIterable, Codable, Sendable {
    case redisRefused = "redis-refused"
    case redisBlackholed = "redis-blackholed"
    case redisSlow = "redis-slow"
    case postgresBlackholed = "postgres-blackholed"
    case postgresSlow = "postgres-slow"
    case postgresRestart = "postgres-restart"
    case vaultSlow = "vault-slow"
    case vaultDown = "vault-down"
    case opaSlow = "opa-slow"
    case opaDown = "opa-down"
    case instanceRestart = "instance-restart"

    /// `redis`, `postgres`, `vault`, `opa`, or `instance`.
    public var dependency: String { String(rawValue.prefix { $0 != "-" }) }

    /// A process is restarted: only on the local stack.
    public var localOnly: Bool { self == .postgresRestart || self == .instanceRestart }

    /// Whether `/health/detailed` must report the dependency not healthy while the fault lasts:
    /// not for a latency below the health check's bound, nor a restart over in a moment.
    public var claimsHealth: Bool {
        switch self {
        case .redisRefused, .redisBlackholed, .postgresBlackholed, .vaultDown, .vaultSlow, .opaDown: true
        case .redisSlow, .postgresSlow, .opaSlow, .postgresRestart, .instanceRestart: false
        }
    }

    /// The toxics that make it (names without the run's prefix); empty for the restarts.
    public var toxics: [Toxic] {
        switch self {
        case .redisRefused, .opaDown: ChaosFaults.refused
        case .redisBlackholed, .postgresBlackholed, .vaultDown: ChaosFaults.blackhole
        // Past REDIS_TIMEOUT_MS (150 ms): the limiter's calls time out.
        case .redisSlow: [Toxic(name: "slow", kind: .latency, attributes: ["latency": 400])]
        case .postgresSlow: [Toxic(name: "slow", kind: .latency, attributes: ["latency": 150, "jitter": 50])]
        // Past the health check's 1 s degraded threshold, inside VAULT_TIMEOUT_MS.
        case .vaultSlow: [Toxic(name: "slow", kind: .latency, attributes: ["latency": 1500])]
        // Past OPA_TIMEOUT_MS (500 ms): token requests fail closed while it lasts.
        case .opaSlow: [Toxic(name: "slow", kind: .latency, attributes: ["latency": 700])]
        case .postgresRestart, .instanceRestart: []
        }
    }
}

/// One fault of a schedule: its kind, when it starts and ends (offsets from the run's start), and
/// for an instance restart which instance.
public struct ScheduledFault: Codable, Equatable, Sendable {
    public var kind: FaultKind
    /// Milliseconds from the run's start.
    public var at: Int
    /// Milliseconds from the run's start: when the fault is taken away (a restart: when it is done).
    public var until: Int
    public var instance: Int?

    public var rendered: String {
        let seconds = { (ms: Int) in String(format: "%6.1f s", Double(ms) / 1000) }
        return "\(seconds(at)) – \(seconds(until))  \(kind.rawValue)\(instance.map { " (instance \($0))" } ?? "")"
    }
}

/// A fault schedule drawn from a seed: the same seed, duration, kinds and instance count always give
/// the same faults at the same offsets. One fault at a time, each 4–8 s long, a quiet 4–8 s before
/// each (the first after 3 s of warm-up), none in the last 6 s (the run ends with every dependency
/// back, so recovery and the final reads are seen).
public struct FaultSchedule: Equatable, Sendable {
    public let seed: UInt64
    public let faults: [ScheduledFault]

    public init(seed: UInt64, faults: [ScheduledFault]) {
        self.seed = seed
        self.faults = faults
    }

    public static func draw(seed: UInt64, duration: Duration, kinds: [FaultKind], instances: Int) -> FaultSchedule {
        var random = SeededGenerator(seed: seed)
        let end = Int(duration.components.seconds) * 1000 - 6000
        var faults: [ScheduledFault] = []
        var cursor = 3000
        guard !kinds.isEmpty else { return FaultSchedule(seed: seed, faults: []) }
        while true {
            let at = cursor + random.int(in: 4000...8000)
            let kind = kinds[random.int(in: 0...(kinds.count - 1))]
            let length = random.int(in: 4000...8000)
            let instance = kind == .instanceRestart ? random.int(in: 0...(max(1, instances) - 1)) : nil
            guard at + length <= end else { break }
            faults.append(ScheduledFault(kind: kind, at: at, until: at + length, instance: instance))
            cursor = at + length
        }
        return FaultSchedule(seed: seed, faults: faults)
    }
}
