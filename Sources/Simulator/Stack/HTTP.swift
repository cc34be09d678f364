import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// A small HTTP client for checks: one call, the status, headers and body as text.
public enum HTTP {
    /// One client for the process (never shut down, like `HTTPClient.shared`), allowing enough
    /// parallel connections per host to hold a whole pool busy.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: String

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        /// The body as a JSON object (empty when it is not one).
        public var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    public static func request(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            if !request.headers.contains(name: "Content-Type") { request.headers.add(name: "Content-Type", value: "application/json") }
        }
        let seconds = timeout.components.seconds
        let response = try await client.execute(request, timeout: .seconds(max(1, seconds)))
        let buffer = try await response.body.collect(upTo: 4 * 1024 * 1024)
        return Response(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            body: String(buffer: buffer)
        )
    }

    /// A request with `Authorization: Bearer <token>`.
    public static func admin(
        _ method: HTTPMethod,
        _ url: String,
        token: String,
        body: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Response {
        try await request(method, url, headers: [("Authorization", "Bearer \(token)")], body: body, timeout: timeout)
    }
}

extension HTTP {
    /// One HTTP/1.1 request (`Connection: close`) from a chosen loopback source address, so a
    /// scenario can be two clients on one machine (an attacker on 127.0.0.2, its victim on
    /// 127.0.0.1) and per-address budgets are real.
    public static func request(
        from source: String,
        port: Int,
        _ method: String,
        _ path: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        timeout: Duration = .seconds(10)
    ) async throws -> Response {
        try await blocking {
            try LoopbackConnection(port: port, from: source).exchange(method, path, headers: headers, body: body, timeout: timeout)
        }
    }
}

extension HTTP.Response {
    /// The response in `bytes` (status line, headers, and whatever body followed); nil when
    /// they hold no whole header.
    public static func parse(_ bytes: [UInt8]) -> HTTP.Response? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"),
            let status = text[..<split.lowerBound].split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        let headers = text[..<split.lowerBound].components(separatedBy: "\r\n").dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTP.Response(status: status, headers: Array(headers), body: String(text[split.upperBound...]))
    }
}

/// A blocking HTTP/1.1 connection over a plain socket from a chosen loopback source address to
/// 127.0.0.1: for per-address budgets, and for what a server does with a connection held idle,
/// a body sent slowly, or connections past its maximum. Call it off the cooperative pool
/// (`blocking`). `@unchecked Sendable`: its descriptor is set once, in `init`; a scenario may hold
/// connections across threads, but must not send or read on one from two threads at once
/// (`closedByPeer` only asks the kernel).
public final class LoopbackConnection: @unchecked Sendable {
    /// -1 once closed: a class whose initializer throws after setting every property is
    /// deinitialized too, and a second `close` of a number the kernel has handed out again closes
    /// someone else's descriptor (a fresh-clone run crashed in NIO on exactly that: EBADF from
    /// `getpeername` on the server's new listening socket).
    private var socket: Int32

    /// Connects from `source` to 127.0.0.1:`port`; `receiveBuffer`, when given, is the socket's
    /// `SO_RCVBUF` (a client that reads nothing fills a small one sooner).
    public init(port: Int, from source: String = "127.0.0.1", receiveBuffer: Int32? = nil) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw SimulatorError.setupFailed("socket() failed") }
        if var size = receiveBuffer {
            setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        remote.sin_port = UInt16(port).bigEndian
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, size) } }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, size) }
        }
        guard bound == 0, connected == 0 else {
            let failure = errno
            close(socket)
            socket = -1
            errno = failure
            throw SimulatorError.setupFailed("cannot connect from \(source) to port \(port) (errno \(errno))")
        }
    }

    deinit { if socket >= 0 { close(socket) } }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw SimulatorError.setupFailed("send failed (errno \(errno))") }
    }

    /// Sends what the socket takes without blocking; the number of bytes it took.
    public func sendWithoutBlocking(_ bytes: [UInt8]) -> Int {
        let sent = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        return max(0, sent)
    }

    /// Whether the server has closed its side (a FIN or a reset arrived), read from the kernel's
    /// TCP state without reading a byte: a client that never reads can still tell.
    public var closedByPeer: Bool {
        var info = [UInt8](repeating: 0, count: 256)
        var length = socklen_t(info.count)
        guard getsockopt(socket, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return true }
        // tcpi_state, the first byte: 1 is ESTABLISHED; CLOSE_WAIT (8) after a FIN, CLOSE (7) after a reset.
        return info[0] != 1
    }

    /// Everything received until the server closes the connection or `timeout` passes, and
    /// whether it closed.
    public func readUntilClosed(timeout: Duration) -> (bytes: [UInt8], closed: Bool) {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { return (received, true) }
            received += buffer[0..<count]
        }
        return (received, false)
    }

    /// Sends a request with `Connection: close` and reads the whole response.
    public func exchange(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil, timeout: Duration = .seconds(10)
    ) throws -> HTTP.Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        try send(head + "\r\n" + (body ?? ""))
        let (bytes, _) = readUntilClosed(timeout: timeout)
        guard let response = HTTP.Response.parse(bytes) else {
            throw SimulatorError.setupFailed("no HTTP response (got \(String(decoding: bytes.prefix(120), as: UTF8.self)))")
        }
        return response
    }

    /// Sends a request and reads one response, leaving the connection open.
    public func exchangeKeepingAlive(_ method: String, _ path: String, timeout: Duration = .seconds(10)) throws -> HTTP.Response {
        try send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while ContinuousClock.now < deadline {
            if let response = HTTP.Response.parse(received), let length = response.header("Content-Length").flatMap(Int.init),
                response.body.utf8.count >= length
            {
                return response
            }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        throw SimulatorError.setupFailed("no whole response within \(timeout)")
    }
}
