import Crypto
import Foundation

/// A Lua script run by `EVALSHA`, with the recovery Redis needs after a restart or
/// `SCRIPT FLUSH`: calls answered `NOSCRIPT` are sent once more behind a `SCRIPT LOAD`, in the
/// same pipeline.
struct RedisScript: Sendable {
    let source: String
    let sha: String
    private let commandStart: [[UInt8]]

    init(_ source: String) {
        self.source = source
        sha = Encoding.hex(Insecure.SHA1.hash(data: Data(source.utf8)))
        commandStart = [Array("EVALSHA".utf8), Array(sha.utf8)]
    }

    /// `EVALSHA <sha> <number of keys> <keys...> <arguments...>`, as binary-safe arguments.
    func call(keys: [[UInt8]], arguments: [[UInt8]]) -> [[UInt8]] {
        commandStart + [Array(String(keys.count).utf8)] + keys + arguments
    }

    /// Sends `calls` (made by `call`) as one pipeline; calls answered `NOSCRIPT` are retried once
    /// after loading the script. One reply per call, in order.
    /// A `READONLY` answer (a replica: a demoted master) throws, so the connection is dropped and
    /// the master found again.
    ///
    /// `asking`: every call preceded by `ASKING`, for a cluster node that imports the key's slot.
    func run(_ calls: [[[UInt8]]], on connection: RedisConnection, asking: Bool = false) throws(RedisError) -> [RedisReply] {
        let askingCommand = [Array("ASKING".utf8)]
        // One reply per call; behind ASKING, every other reply is ASKING's own `OK`.
        let send = { (calls: [[[UInt8]]]) throws(RedisError) -> [RedisReply] in
            guard asking else { return try connection.pipeline(calls) }
            let replies = try connection.pipeline(calls.flatMap { [askingCommand, $0] })
            return stride(from: 1, to: replies.count, by: 2).map { replies[$0] }
        }
        var replies = try send(calls)
        let missing = replies.indices.filter { if case .error(let message) = replies[$0] { message.hasPrefix("NOSCRIPT") } else { false } }
        guard !missing.isEmpty else { return try Self.refusingReadOnly(replies) }
        if case .error(let message) = try connection.command([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(source.utf8)]) {
            throw .protocolError("SCRIPT LOAD failed: \(message)")
        }
        for (index, reply) in zip(missing, try send(missing.map { calls[$0] })) { replies[index] = reply }
        return try Self.refusingReadOnly(replies)
    }

    private static func refusingReadOnly(_ replies: [RedisReply]) throws(RedisError) -> [RedisReply] {
        for case .error(let message) in replies where message.hasPrefix("READONLY") { throw .readOnly(message) }
        return replies
    }
}
