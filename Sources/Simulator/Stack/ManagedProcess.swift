import Foundation
import NIOConcurrencyHelpers

/// A child process the Simulator started: its output lines are collected, and it is stopped
/// on `stop()`, on the Simulator's exit, and (through a watchdog) even if the Simulator is
/// killed without a chance to clean up.
public final class ManagedProcess: Sendable {
    public let name: String
    private let process: Process
    private let lines = NIOLockedValueBox<[String]>([])
    /// Its output's reading end, and whether the reader is handling a chunk it took from it.
    private let outputDescriptor: Int32
    private let reading = NIOLockedValueBox(false)
    private let stopSignal: Int32
    private let removeOnExit: URL?

    /// Starts `executable` with `arguments` and exactly `environment`.
    ///
    /// - Parameters:
    ///   - stopSignal: the signal that asks it to stop (PostgreSQL's fast shutdown is SIGINT).
    ///   - removeOnExit: a folder (a data directory) removed once the process has stopped, on
    ///     every path: `stop()`, the Simulator's exit, or the watchdog after a crash.
    public init(
        name: String,
        executable: String,
        arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        stopSignal: Int32 = SIGTERM,
        removeOnExit: URL? = nil
    ) throws {
        self.name = name
        self.stopSignal = stopSignal
        self.removeOnExit = removeOnExit
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let collected = lines
        let reading = reading
        let partial = NIOLockedValueBox<String>("")
        outputDescriptor = output.fileHandleForReading.fileDescriptor
        output.fileHandleForReading.readabilityHandler = { handle in
            reading.withLockedValue { $0 = true }
            defer { reading.withLockedValue { $0 = false } }
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            let complete: [String] = partial.withLockedValue { buffer in
                buffer += String(decoding: data, as: UTF8.self)
                var parts = buffer.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                buffer = parts.removeLast()
                return parts
            }
            if !complete.isEmpty { collected.withLockedValue { $0 += complete } }
        }
        try spawnWithCleanSignalMask(process)
        Watchdog.watch(pid: process.processIdentifier, signal: stopSignal, cleanup: removeOnExit.map { "rm -rf '\($0.path)'" })
        ProcessRegistry.shared.add(self)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    /// It exited and every line it wrote is in `output`: its exit can be seen before the reader
    /// has taken the last of its output from the pipe, so wait for this, not `isRunning`, before
    /// reading what a finished process said. (Not end of file: a process it started may hold the
    /// pipe open.) The reader marks itself busy before it takes a chunk, so nothing left in the
    /// pipe and the reader idle means nothing is on its way.
    public var hasFinished: Bool {
        guard !process.isRunning else { return false }
        var pending: Int32 = 0
        guard withUnsafeMutablePointer(to: &pending, { ioctl(outputDescriptor, UInt(FIONREAD), $0) }) == 0 else { return true }
        return pending == 0 && !reading.withLockedValue { $0 }
    }

    /// Every line it wrote to standard output or error so far.
    public var output: [String] { lines.withLockedValue { $0 } }

    /// Lines containing `text`.
    public func lines(containing text: String) -> [String] {
        output.filter { $0.contains(text) }
    }

    /// Asks it to stop, waits up to `grace`, then kills it.
    public func stop(grace: Duration = .seconds(10)) async {
        ProcessRegistry.shared.remove(self)
        guard process.isRunning else { return }
        kill(process.processIdentifier, stopSignal)
        let deadline = ContinuousClock.now + grace
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        removeLeftovers()
    }

    /// Sends a signal without waiting (for example SIGTERM to test graceful shutdown).
    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Stops it without suspending: for exit paths, where no task may run any more.
    func stopNow() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, stopSignal)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        removeLeftovers()
    }

    private func removeLeftovers() {
        if let removeOnExit { try? FileManager.default.removeItem(at: removeOnExit) }
    }
}

/// Every process still running, so an exit path can stop them all.
final class ProcessRegistry: Sendable {
    static let shared = ProcessRegistry()
    private let processes = NIOLockedValueBox<[ObjectIdentifier: ManagedProcess]>([:])

    func add(_ process: ManagedProcess) {
        processes.withLockedValue { $0[ObjectIdentifier(process)] = process }
    }

    func remove(_ process: ManagedProcess) {
        _ = processes.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(process)) }
    }

    /// Stops every registered process, newest first (instances before the servers they use).
    func stopAll() {
        let all = processes.withLockedValue { state in
            let all = Array(state.values)
            state.removeAll()
            return all
        }
        for process in all.sorted(by: { $0.pid > $1.pid }) { process.stopNow() }
    }
}

/// A detached shell per child that outlives the Simulator: when the Simulator's process is
/// gone, it stops the child and runs its cleanup. Covers crashes and SIGKILL, which no handler
/// inside the Simulator can.
///
/// Both processes are known by their pid and their start time (`/proc/<pid>/stat`), not the pid
/// alone: a pid is reused once its process is gone, and a watchdog that signalled the pid of a
/// child that had already exited would stop whatever now holds it (a PostgreSQL somebody else
/// started, say).
enum Watchdog {
    static func watch(pid: Int32, signal: Int32, cleanup: String?) {
        let parent = getpid()
        guard let childStarted = startTime(of: pid), let parentStarted = startTime(of: parent) else { return }
        let script = """
            started() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
            parent() { [ "$(started \(parent))" = "\(parentStarted)" ]; }
            child() { [ "$(started \(pid))" = "\(childStarted)" ]; }
            while parent && child; do sleep 1; done
            if child; then
              kill -\(signal) \(pid) 2>/dev/null; sleep 5; child && kill -9 \(pid) 2>/dev/null
            fi
            \(cleanup.map { "if ! parent; then \($0); fi" } ?? "true")
            """
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        watchdog.arguments = ["/bin/sh", "-c", script]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? spawnWithCleanSignalMask(watchdog)
    }

    /// When the process started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`, the
    /// 20th after the command's closing parenthesis); nil when it is gone.
    static func startTime(of pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }
}

/// Starts `process` from a fresh thread with no signal blocked. A child inherits the signal
/// mask of the thread that spawns it, and the threads of Dispatch and the concurrency pool block
/// most signals: spawned from there, a server that does not reset its mask (Redis) would never
/// see the SIGTERM that asks it to stop.
func spawnWithCleanSignalMask(_ process: Process) throws {
    let outcome = NIOLockedValueBox<Result<Void, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        let result = Result { try process.run() }
        outcome.withLockedValue { $0 = result }
        done.signal()
    }
    thread.start()
    done.wait()
    try outcome.withLockedValue { $0 }?.get()
}

/// Stops every child process when the Simulator exits normally or on SIGINT/SIGTERM.
public enum ExitCleanup {
    private static let installed = NIOLockedValueBox(false)

    /// Installs the `atexit` hook and signal handlers, once.
    public static func install() {
        let first = installed.withLockedValue { installed in
            defer { installed = true }
            return !installed
        }
        guard first else { return }
        atexit { ProcessRegistry.shared.stopAll() }
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { received in
                ProcessRegistry.shared.stopAll()
                _exit(128 + received)
            }
        }
    }
}
