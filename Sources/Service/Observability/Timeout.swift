/// How a call bounded by `withTimeout` ended.
enum TimeoutOutcome<Value: Sendable>: Sendable {
    case success(Value)
    case failure(any Error)
    case timedOut
}

/// Runs `operation`, giving up after `timeout`. The operation is cancelled when time runs out;
/// a blocking call inside it finishes on its own thread and its result is dropped.
func withTimeout<Value: Sendable>(
    _ timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> Value
) async -> TimeoutOutcome<Value> {
    await withTaskGroup(of: TimeoutOutcome<Value>.self) { group in
        group.addTask {
            do { return .success(try await operation()) } catch { return .failure(error) }
        }
        group.addTask {
            do { try await Task.sleep(for: timeout) } catch { return .failure(error) }
            return .timedOut
        }
        let first = await group.next() ?? .timedOut
        group.cancelAll()
        return first
    }
}
