import Foundation

/// A TCP port on 127.0.0.1 that nothing listens on right now.
public func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(descriptor) }
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Connects to 127.0.0.1:`port`, optionally sends `request`, and returns what arrives within
/// `timeout` (nil when nothing listens or nothing answers). Blocking: call it off the pool.
func tcpExchange(port: Int, request: Data? = nil, timeout: Duration = .milliseconds(500)) -> Data? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    let microseconds = timeout.microseconds
    var interval = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    guard let request else { return Data() }
    let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
    guard sent == request.count else { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let received = recv(descriptor, &buffer, buffer.count, 0)
    return received > 0 ? Data(buffer[0..<received]) : nil
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return address
}

/// Waits until `condition` holds, checking every 20 ms; throws `SimulatorError.timedOut`
/// after `timeout`. A `SimulatorError` thrown by the condition (a process exited) ends the wait
/// at once; any other error counts as "not yet".
public func waitUntil(
    _ description: String,
    timeout: Duration = .seconds(10),
    condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        do {
            if try await condition() { return }
        } catch let error as SimulatorError {
            throw error
        } catch {}
        try await Task.sleep(for: .milliseconds(20))
    }
    throw SimulatorError.timedOut(description)
}

/// Runs blocking work (sockets, libpq) on a thread of its own, off the cooperative pool.
public func blocking<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// Why the Simulator could not do what it was asked.
public enum SimulatorError: Error, CustomStringConvertible {
    case timedOut(String)
    case missingTool(String)
    case processExited(String, status: Int32, output: [String])
    case setupFailed(String)

    public var description: String {
        switch self {
        case .timedOut(let what): "timed out waiting until \(what)"
        case .missingTool(let what): "missing tool: \(what)"
        case .processExited(let name, let status, let output):
            "\(name) exited with status \(status); last output:\n" + output.suffix(15).joined(separator: "\n")
        case .setupFailed(let what): what
        }
    }
}
