/// The change listener's timing rules, as pure state (`ChangeListener` is the shell: it connects,
/// runs the queries, reads the notifications, sleeps and logs, and tells these rules what happened,
/// with `now`):
/// - a heartbeat goes out every `heartbeat`, one at a time;
/// - one not back within `heartbeatTimeout` ends the session;
/// - a heartbeat that comes back with every trigger enabled confirms the listener up to when it
///   was sent (the cache may count on it until then); with a trigger disabled it confirms nothing,
///   and that is warned about once per session until a heartbeat confirms again;
/// - an outage is one warning when it begins (the first failure after a session that lived at
///   least `heartbeatTimeout`, or the very first) and one info line when a heartbeat confirms after
///   it; the failures in between are debug lines;
/// - reconnecting waits 100 ms × 2^failures (failures in a row, counting this one), at most 5 s.
struct ListenerMonitor {
    typealias Instant = ContinuousClock.Instant

    let heartbeat: Duration
    let heartbeatTimeout: Duration

    /// Failed or short-lived sessions in a row.
    private(set) var failures = 0
    /// Between an outage's warning and the heartbeat that ends it.
    private(set) var inOutage = false
    private var listeningSince: Instant?
    private var outstanding: (nonce: UInt64, sent: Instant, triggersEnabled: Bool?)?
    private var lastSent: Instant?
    private var nonce: UInt64 = 0
    private var warnedAboutTriggers = false

    init(heartbeat: Duration, heartbeatTimeout: Duration) {
        self.heartbeat = heartbeat
        self.heartbeatTimeout = heartbeatTimeout
    }

    /// What the session must do now.
    enum Tick: Equatable {
        /// Send heartbeat `nonce` (and report the triggers' state with `heartbeatSent`).
        case sendHeartbeat(nonce: UInt64)
        /// The outstanding heartbeat is overdue: end the session.
        case giveUp
        case wait
    }

    /// What a notification on the heartbeat channel meant.
    enum Heartbeat: Equatable {
        /// Not the outstanding heartbeat (an old one, or none outstanding).
        case stray
        /// Every change committed before `at` has been seen. `afterOutage`: the failed attempts
        /// of the outage this ends, to log once.
        case confirmed(at: Instant, afterOutage: Int?)
        /// Back, but a trigger is disabled: nothing confirmed. `warn` once per session.
        case triggersDisabled(warn: Bool)
    }

    /// How a session's end is logged.
    enum Outage: Equatable {
        case begins
        case continues(failedAttempts: Int)
    }

    /// Listening (LISTEN done): a new session.
    mutating func sessionStarted(now: Instant) {
        listeningSince = now
        outstanding = nil
        lastSent = nil
        warnedAboutTriggers = false
    }

    mutating func tick(now: Instant) -> Tick {
        if let outstanding {
            return now - outstanding.sent > heartbeatTimeout ? .giveUp : .wait
        }
        guard lastSent.map({ now - $0 >= heartbeat }) ?? true else { return .wait }
        nonce &+= 1
        outstanding = (nonce, now, nil)
        lastSent = now
        return .sendHeartbeat(nonce: nonce)
    }

    /// The heartbeat went out; `triggersEnabled`: every change trigger was enabled then.
    mutating func heartbeatSent(nonce: UInt64, triggersEnabled: Bool) {
        guard outstanding?.nonce == nonce else { return }
        outstanding?.triggersEnabled = triggersEnabled
    }

    mutating func heartbeatArrived(payload: String) -> Heartbeat {
        guard let beat = outstanding, payload == String(beat.nonce), let enabled = beat.triggersEnabled else { return .stray }
        outstanding = nil
        guard enabled else {
            defer { warnedAboutTriggers = true }
            return .triggersDisabled(warn: !warnedAboutTriggers)
        }
        warnedAboutTriggers = false
        defer { inOutage = false }
        return .confirmed(at: beat.sent, afterOutage: inOutage ? failures : nil)
    }

    /// The session failed (or never started) at `now`: how to log it, and when to reconnect.
    mutating func sessionEnded(now: Instant) -> (outage: Outage, reconnectAfter: Duration) {
        let lived = listeningSince.map { now - $0 } ?? .zero
        listeningSince = nil
        outstanding = nil
        if lived >= heartbeatTimeout { failures = 0 }
        let outage: Outage
        if failures == 0 {
            outage = .begins
            inOutage = true
        } else {
            outage = .continues(failedAttempts: failures)
        }
        failures += 1
        return (outage, min(.seconds(5), .milliseconds(100) * (1 << min(failures, 6))))
    }
}
