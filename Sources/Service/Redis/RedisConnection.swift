import CHiredis
import Foundation

/// A reply from Redis, mapped out of hiredis's `redisReply`.
public enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case string([UInt8])
    case array([RedisReply])
    case null
}

/// A failure talking to Redis. The connection it happened on is not used again.
public enum RedisError: Error, Sendable, CustomStringConvertible {
    case connectionFailed(String)
    case io(String)
    case protocolError(String)
    /// The server is a replica (`READONLY`): a master behind Sentinel was demoted, or a
    /// sentinel's answer is stale. The connection is dropped and the master discovered again.
    case readOnly(String)
    /// A cluster node serves the key's slot no more (`MOVED`) or not yet (`ASK`).
    case redirected(RedisRedirect)
    /// A cluster node says the cluster cannot serve every slot (`CLUSTER INFO` is not `ok`, or
    /// the slot map leaves a slot without a master).
    case clusterDown(String)

    public var description: String {
        switch self {
        case .readOnly(let message): "Redis refused a write: \(message)"
        case .redirected(.moved(let slot, let address)): "Redis Cluster moved slot \(slot) to \(address)"
        case .redirected(.ask(let slot, let address)): "Redis Cluster is migrating slot \(slot) to \(address)"
        case .clusterDown(let message): "Redis Cluster is down: \(message)"
        case .connectionFailed(let message): "could not connect to Redis: \(message)"
        case .io(let message): "Redis I/O failed: \(message)"
        case .protocolError(let message): "unexpected Redis reply: \(message)"
        }
    }
}

/// Where and how to reach Redis, parsed from `REDIS_URL`
/// (`redis://[[user]:password@]host[:port][/db]`).
public struct RedisEndpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var database: Int

    public init(host: String = "", port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// A URL without a host (`redis://[[user]:password@]/[db]`): the login and database of a
    /// master whose address the sentinels give.
    public init?(hostlessURL url: String) {
        guard let components = URLComponents(string: url), components.scheme == "redis", components.host?.isEmpty ?? true,
            components.port == nil
        else { return nil }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let database = path.isEmpty ? 0 : Int(path), database >= 0 else { return nil }
        self.init(user: components.user.flatMap { $0.isEmpty ? nil : $0 }, password: components.password, database: database)
    }

    public init?(url: String) {
        guard let components = URLComponents(string: url), components.scheme == "redis", let host = components.host, !host.isEmpty else {
            return nil
        }
        self.host = host
        port = components.port ?? 6379
        user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        password = components.password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let database = path.isEmpty ? 0 : Int(path), database >= 0 else { return nil }
        self.database = database
    }
}

/// One hiredis connection. Blocking and not thread-safe: used by one thread at a time, on a
/// thread of its own, never on an event loop. Every call is bounded by `timeout`.
public final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        redisFree(context)
    }

    /// Connects (within `timeout`), authenticates and selects the database.
    public static func connect(_ endpoint: RedisEndpoint, timeout: Duration) throws(RedisError) -> RedisConnection {
        let interval = timeval(duration: timeout)
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), interval) else {
            throw .connectionFailed("out of memory")
        }
        guard context.pointee.err == 0 else {
            let message = Self.errorString(context)
            redisFree(context)
            throw .connectionFailed(message)
        }
        redisSetTimeout(context, interval)
        let connection = RedisConnection(context: context)
        if let password = endpoint.password {
            let auth = endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            if case .error = try connection.command(auth.map { Array($0.utf8) }) { throw .connectionFailed("authentication failed") }
        }
        if endpoint.database != 0,
            case .error(let message) = try connection.command([Array("SELECT".utf8), Array(String(endpoint.database).utf8)])
        {
            throw .connectionFailed(message)
        }
        return connection
    }

    /// One command, binary-safe.
    public func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        try pipeline([arguments])[0]
    }

    /// Several commands in one round trip; one reply per command, in order.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        for arguments in commands {
            let status = Self.withArgv(arguments) { argv, lengths in
                redisAppendCommandArgv(context, Int32(arguments.count), argv, lengths)
            }
            guard status == REDIS_OK else { throw .io(Self.errorString(context)) }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw .io(Self.errorString(context)) }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            replies.append(Self.map(reply))
            freeReplyObject(raw)
        }
        return replies
    }

    /// The next reply the server sends unasked (a subscription's message), within the socket
    /// timeout: a timeout leaves the connection unusable.
    public func nextPushed() throws(RedisError) -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw .io(Self.errorString(context)) }
        defer { freeReplyObject(raw) }
        return Self.map(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Changes the bound of every later read and write.
    public func setTimeout(_ timeout: Duration) {
        redisSetTimeout(context, timeval(duration: timeout))
    }

    /// `PING`; throws unless Redis answers `PONG`.
    public func ping() throws(RedisError) {
        let reply = try command([Array("PING".utf8)])
        guard case .status("PONG") = reply else { throw .protocolError("PING answered \(reply)") }
    }

    /// False once an I/O or protocol error happened: the connection must be dropped.
    public var isUsable: Bool { context.pointee.err == 0 }

    private static func map(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STATUS: return .status(string(value))
        case REDIS_REPLY_ERROR: return .error(string(value))
        case REDIS_REPLY_INTEGER: return .integer(Int64(value.integer))
        case REDIS_REPLY_STRING:
            guard let pointer = value.str else { return .string([]) }
            return .string(Array(UnsafeRawBufferPointer(start: pointer, count: Int(value.len))))
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(value.elements)).compactMap { index in value.element[index].map(map) })
        default: return .null
        }
    }

    private static func string(_ reply: redisReply) -> String {
        guard let pointer = reply.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(reply.len)), as: UTF8.self)
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        // `errstr` is a fixed 128-byte C array, imported as a tuple.
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func withArgv<Result>(
        _ arguments: [[UInt8]],
        _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Result
    ) -> Result {
        let buffers = arguments.map { argument -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(argument.count, 1))
            argument.withUnsafeBytes { raw in
                if let base = raw.baseAddress {
                    buffer.withMemoryRebound(to: UInt8.self, capacity: argument.count) {
                        $0.update(from: base.assumingMemoryBound(to: UInt8.self), count: argument.count)
                    }
                }
            }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
        let lengths = arguments.map(\.count)
        return argv.withUnsafeMutableBufferPointer { argvPointer in
            lengths.withUnsafeBufferPointer { lengthPointer in
                body(argvPointer.baseAddress!, lengthPointer.baseAddress!)
            }
        }
    }
}

extension timeval {
    init(duration: Duration) {
        let microseconds = duration.microseconds
        self.init(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }
}
