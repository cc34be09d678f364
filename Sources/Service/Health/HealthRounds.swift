/// When a health request runs the dependency checks, as pure rules (`HealthMonitor` is the shell
/// that runs the rounds): a report younger than `sharedFor` is answered as it is; a request that
/// arrives while a round runs joins that round; any other starts one. So a flood of health
/// requests makes at most one round of dependency calls per `sharedFor`, and a slow round is
/// never run twice at once. `now` is passed in; tests drive it with a `ManualClock`.
struct HealthRounds<Report> {
    typealias Instant = ContinuousClock.Instant

    /// What the shell does for a request.
    enum Action {
        /// Answer this report (younger than `sharedFor`).
        case answer(Report)
        /// Wait for the round under way.
        case join(round: Int)
        /// Run a new round (numbered), then report it with `finished`.
        case start(round: Int)
    }

    let sharedFor: Duration
    private(set) var latest: (report: Report, at: Instant)?
    /// The round under way, if any.
    private(set) var running: Int?
    private var rounds = 0

    init(sharedFor: Duration) {
        self.sharedFor = sharedFor
    }

    mutating func request(now: Instant) -> Action {
        if let latest, now - latest.at < sharedFor { return .answer(latest.report) }
        if let running { return .join(round: running) }
        rounds += 1
        running = rounds
        return .start(round: rounds)
    }

    /// A round ended with `report` at `now`: it is shared from then on for `sharedFor`.
    mutating func finished(round: Int, report: Report, now: Instant) {
        guard running == round else { return }
        latest = (report, now)
        running = nil
    }
}
