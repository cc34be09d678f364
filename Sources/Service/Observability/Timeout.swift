import Synchronization

/// How a call bounded by `withDeadline` ended.
public enum TimeoutOutcome<Value: Sendable>: Sendable {
    case success(Value)
    case failure(any Error)
    case timedOut
}

/// Runs `operation` and resumes the caller when it finishes or when `timeout` has passed on
/// `clock`, whichever comes first.
///
/// Unlike a task group, which waits for every child, this never waits for the operation once the
/// deadline has passed: a blocking C call (libpq, hiredis) stuck on a frozen server keeps its
/// thread, its late result is dropped, and the caller goes on at its deadline. The operation is
/// cancelled then, so cooperative work stops early. Cancelling the caller resumes it at once with
/// `CancellationError`, even when the cancellation happened before the wait began.
public func withDeadline<Value: Sendable, C: Clock<Duration>>(
    _ timeout: Duration,
    clock: C = ContinuousClock(),
    _ operation: @escaping @Sendable () async throws -> Value
) async -> TimeoutOutcome<Value> {
    let race = DeadlineRace<Value>()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<TimeoutOutcome<Value>, Never>) in
            guard race.install(continuation) else { return }
            let work = Task {
                let outcome: TimeoutOutcome<Value>
                do { outcome = .success(try await operation()) } catch { outcome = .failure(error) }
                race.finish(outcome)
            }
            let timer = Task {
                try? await clock.sleep(for: timeout)
                if !Task.isCancelled { race.finish(.timedOut) }
            }
            race.attach(work: work, timer: timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The shared state of one `withDeadline` call: the first `finish` resumes the caller, cancels
/// both tasks, and every later one is dropped.
private final class DeadlineRace<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<TimeoutOutcome<Value>, Never>?
        /// Set when an outcome arrived before the continuation was installed (the caller was
        /// cancelled before it started waiting).
        var early: TimeoutOutcome<Value>?
        var finished = false
        var tasks: [Task<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Stores the caller's continuation; false when the race was already decided (it is then
    /// resumed here with that outcome).
    func install(_ continuation: CheckedContinuation<TimeoutOutcome<Value>, Never>) -> Bool {
        let early: TimeoutOutcome<Value>? = state.withLock { state in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        guard let early else { return true }
        continuation.resume(returning: early)
        return false
    }

    func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let finished = state.withLock { state in
            state.tasks = [work, timer]
            return state.finished
        }
        if finished {
            work.cancel()
            timer.cancel()
        }
    }

    func finish(_ outcome: TimeoutOutcome<Value>) {
        let (continuation, tasks): (CheckedContinuation<TimeoutOutcome<Value>, Never>?, [Task<Void, Never>]) = state.withLock { state in
            guard !state.finished else { return (nil, []) }
            state.finished = true
            guard let continuation = state.continuation else {
                state.early = outcome
                return (nil, [])
            }
            state.continuation = nil
            return (continuation, state.tasks)
        }
        tasks.forEach { $0.cancel() }
        continuation?.resume(returning: outcome)
    }
}
