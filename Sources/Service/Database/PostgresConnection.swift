import CLibPQ
import Foundation
import Synchronization

/// One libpq connection. Not thread-safe: the pool leases it to one caller at a time, and every
/// call on it blocks, so it runs on the pool's thread pool, never on an event loop.
///
/// Queries are parameterised (`PQsendQueryParams`, text format), or prepared once per session
/// (`PreparedStatement`, `PQsendPrepare` / `PQsendQueryPrepared`); values come back as text.
///
/// Every statement has a client-side deadline (`timeout`), enforced here with `poll` on the
/// socket in non-blocking mode: a frozen server (processes stopped, the kernel still
/// acknowledging, so neither `statement_timeout` nor keepalives fire) costs a caller at most that
/// long. Past it the statement fails with `DatabaseError.timedOut`, a cancel request is sent
/// best-effort, and the connection is abandoned: `isUsable` is false from then on.
public final class PostgresConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    /// Statements that succeeded since `resetStatementCount()`: zero means a failure happened
    /// before anything ran, so the work can be retried on another connection.
    public private(set) var statementsSucceeded = 0
    /// The client-side bound of each statement, from when it is sent until its last result. The
    /// pool sets it at each lease (`DB_STATEMENT_TIMEOUT_MS` plus a margin, or a caller's own).
    public var timeout: Duration = .seconds(60)
    /// Set when a statement missed its deadline: the connection's state is unknown.
    private var abandoned = false
    /// Names of the `PreparedStatement`s this session has prepared.
    private var prepared: Set<String> = []

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        close()
    }

    /// Ends the session now (`PQfinish`). Later calls fail with `connectionLost`.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Starts counting `statementsSucceeded` from zero (the pool does this at each lease).
    public func resetStatementCount() {
        statementsSucceeded = 0
    }

    /// Connects with a connection string or URI (multi-host URIs work).
    ///
    /// `settings` are libpq keywords applied unless the connection string sets them itself.
    /// `session` are server settings (`statement_timeout`) set once connected, with `set_config`
    /// rather than the startup packet's `options`, which PgBouncer refuses.
    public static func connect(
        _ connectionString: String, settings: [(String, String)], session: [(String, String)] = []
    ) throws(DatabaseError) -> PostgresConnection {
        // With expand_dbname, the "dbname" entry is parsed as a full connection string; keywords
        // before it are defaults that the string may override.
        let keywords = settings.map(\.0) + ["dbname"]
        let values = settings.map(\.1) + [connectionString]
        let handle: OpaquePointer? = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let handle else { throw .connectionFailed("out of memory") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = errorMessage(handle)
            PQfinish(handle)
            throw .connectionFailed(message)
        }
        // libpq prints server notices to stderr by default; they are not errors, and anything
        // we need to know arrives as a result. Drop them instead of writing around the logger.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        // Non-blocking: sending never waits on a full socket buffer, and every wait goes
        // through `wait(for:until:)`, which honours the deadline.
        guard PQsetnonblocking(handle, 1) == 0 else {
            let message = errorMessage(handle)
            PQfinish(handle)
            throw .connectionFailed(message)
        }
        let connection = PostgresConnection(handle: handle)
        if !session.isEmpty {
            connection.timeout = sessionSetupTimeout
            for (name, value) in session { try connection.query("SELECT set_config($1, $2, false)", [name, value]) }
            connection.timeout = .seconds(60)
        }
        return connection
    }

    /// The bound of the `set_config` calls that set a new session up.
    static let sessionSetupTimeout: Duration = .seconds(10)

    /// Runs one parameterised statement (`$1`, `$2`, ... bound to `parameters`, `nil` = NULL).
    /// `SELECT 1`: the server answers on this session (the health check's probe).
    public func ping() throws(DatabaseError) {
        try query("SELECT 1")
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(DatabaseError) -> QueryResult {
        try Self.refuseNUL(parameters)
        let handle = try usableHandle()
        let sent = withOptionalCStrings(parameters) { values in
            PQsendQueryParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        guard sent == 1 else { throw lostOrFailed(Self.errorMessage(handle)) }
        return try consume(try awaitResult(handle))
    }

    /// Runs a prepared statement by name, preparing it on this session first when it is not yet
    /// (one extra round trip per statement and connection).
    ///
    /// A session that lost its statements (`DEALLOCATE ALL`, `DISCARD ALL`: SQLSTATE 26000), or
    /// whose statement's plan no longer fits the schema (a column changed under it: 0A000),
    /// forgets what it prepared and prepares again, once; the statement had not run. Inside a
    /// transaction the server has aborted the transaction by then, so the error is thrown, and
    /// the next use prepares again.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [String?] = []) throws(DatabaseError) -> QueryResult {
        try Self.refuseNUL(parameters)
        let handle = try usableHandle()
        if !prepared.contains(statement.name) { try prepare(statement, handle) }
        do {
            return try executePrepared(statement, parameters, handle)
        } catch {
            guard case .server(let state, _, _) = error, state == "26000" || state == "0A000" else { throw error }
            // The server's set is unknown now: anything may be prepared again.
            prepared.removeAll()
            guard !isInTransaction else { throw error }
            if state == "0A000" { try query("DEALLOCATE \(statement.name)") }
            try prepare(statement, handle)
            return try executePrepared(statement, parameters, handle)
        }
    }

    /// Whether this session has prepared `statement` (tests).
    public func hasPrepared(_ statement: PreparedStatement) -> Bool {
        prepared.contains(statement.name)
    }

    private func prepare(_ statement: PreparedStatement, _ handle: OpaquePointer) throws(DatabaseError) {
        guard PQsendPrepare(handle, statement.name, statement.sql, 0, nil) == 1 else { throw lostOrFailed(Self.errorMessage(handle)) }
        // Preparing changes nothing a retry elsewhere could repeat: it is not counted as a statement.
        do {
            try consume(try awaitResult(handle), counted: false)
        } catch {
            // Already prepared (42P05: this session prepared it before the set was forgotten):
            // replaced, outside a transaction, so the text is this build's.
            guard case .server("42P05", _, _) = error, !isInTransaction else { throw error }
            try query("DEALLOCATE \(statement.name)")
            return try prepare(statement, handle)
        }
        prepared.insert(statement.name)
    }

    private func executePrepared(_ statement: PreparedStatement, _ parameters: [String?], _ handle: OpaquePointer) throws(DatabaseError)
        -> QueryResult
    {
        let sent = withOptionalCStrings(parameters) { values in
            PQsendQueryPrepared(handle, statement.name, Int32(parameters.count), values, nil, nil, 0)
        }
        guard sent == 1 else { throw lostOrFailed(Self.errorMessage(handle)) }
        return try consume(try awaitResult(handle))
    }

    /// libpq text parameters end at the first NUL: `a\0junk` would be sent as `a`, so a value
    /// would be stored or matched as something other than what the client sent. Refused.
    private static func refuseNUL(_ parameters: [String?]) throws(DatabaseError) {
        if parameters.contains(where: { $0?.utf8.contains(0) == true }) {
            throw .invalidParameter("a value contains a NUL character")
        }
    }

    /// Runs a trusted script of several statements (migrations only: it takes no parameters).
    public func execute(script: String) throws(DatabaseError) {
        let handle = try usableHandle()
        guard PQsendQuery(handle, script) == 1 else { throw lostOrFailed(Self.errorMessage(handle)) }
        try consume(try awaitResult(handle))
    }

    private func usableHandle() throws(DatabaseError) -> OpaquePointer {
        guard let handle, !abandoned else { throw .connectionLost("the connection is closed") }
        return handle
    }

    /// Flushes what was sent and reads every result of it, within `timeout`. Returns the first
    /// failed result if any, else the last one (as `PQexec` does); nil when libpq had none.
    private func awaitResult(_ handle: OpaquePointer) throws(DatabaseError) -> OpaquePointer? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let flushed = PQflush(handle)
            if flushed == 0 { break }
            guard flushed > 0 else { throw lostOrFailed(Self.errorMessage(handle)) }
            let readable = try wait(for: Int16(POLLOUT | POLLIN), until: deadline, handle)
            if readable, PQconsumeInput(handle) == 0 { throw lostOrFailed(Self.errorMessage(handle)) }
        }
        var chosen: OpaquePointer?
        while true {
            while PQisBusy(handle) == 1 {
                _ = try wait(for: Int16(POLLIN), until: deadline, handle)
                guard PQconsumeInput(handle) == 1 else {
                    if let chosen { PQclear(chosen) }
                    throw lostOrFailed(Self.errorMessage(handle))
                }
            }
            guard let result = PQgetResult(handle) else { return chosen }
            if let previous = chosen, Self.isFailure(previous) {
                PQclear(result)
            } else {
                if let chosen { PQclear(chosen) }
                chosen = result
            }
        }
    }

    private static func isFailure(_ result: OpaquePointer) -> Bool {
        let status = PQresultStatus(result)
        return status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY
    }

    /// Waits until the socket is ready for `events` or `deadline` passes; true when it is
    /// readable. At the deadline the connection is abandoned and `timedOut` thrown.
    private func wait(for events: Int16, until deadline: ContinuousClock.Instant, _ handle: OpaquePointer) throws(DatabaseError) -> Bool {
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw .connectionLost("the connection has no socket") }
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                abandon(handle)
                throw .timedOut(timeout)
            }
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, remaining.milliseconds)))
            if ready < 0 {
                if errno == EINTR { continue }
                throw .connectionLost("poll failed (errno \(errno))")
            }
            if ready == 0 { continue }
            if descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                // Let libpq read what is there (an error message) and report it.
                return true
            }
            return descriptor.revents & Int16(POLLIN) != 0
        }
    }

    /// Gives the connection up after a missed deadline: a cancel request goes to the server
    /// best-effort (on a thread of its own, since `PQcancel` blocks on a frozen server), and the
    /// connection is never used again.
    private func abandon(_ handle: OpaquePointer) {
        abandoned = true
        guard let cancel = PQgetCancel(handle) else { return }
        CancelRequests.send(cancel)
    }

    /// The server is a standby in recovery (`in_hot_standby`, which PostgreSQL 14 and later
    /// report and update when a standby is promoted): it cannot write, whatever the session asks.
    public var isHotStandby: Bool {
        guard let handle, let value = PQparameterStatus(handle, "in_hot_standby") else { return false }
        return String(cString: value) == "on"
    }

    /// False when the connection is known to be broken. Cheap and non-blocking: it reads what
    /// the server already sent (a termination notice after a restart, or end of stream).
    public var isUsable: Bool {
        guard let handle, !abandoned, PQstatus(handle) == CONNECTION_OK else { return false }
        let socket = PQsocket(handle)
        guard socket >= 0 else { return false }
        // Something arriving while idle is a notice, a termination message, or the end of the
        // stream; read until nothing more is waiting, so an end of stream right behind a
        // termination message is seen too.
        for _ in 0..<4 {
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 0)
            if ready < 0 || descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { return false }
            if ready == 0 { break }
            if PQconsumeInput(handle) == 0 { return false }
            while let notify = PQnotifies(handle) { PQfreemem(notify) }
        }
        return PQstatus(handle) == CONNECTION_OK && PQtransactionStatus(handle) == PQTRANS_IDLE
    }

    /// One `NOTIFY` this session received (it ran `LISTEN channel`).
    public struct Notification: Sendable, Equatable {
        public let channel: String
        public let payload: String
    }

    /// The notifications received so far, waiting up to `timeout` for the first when there are
    /// none yet. For a listening connection only: it reads whatever the server sends while idle.
    /// Throws `connectionLost` when the session ended (terminated, the server gone).
    public func notifications(waitingUpTo timeout: Duration) throws(DatabaseError) -> [Notification] {
        let handle = try usableHandle()
        var received = Self.drainNotifications(handle)
        guard received.isEmpty else { return received }
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw .connectionLost("the connection has no socket") }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(clamping: max(0, timeout.milliseconds)))
        if ready < 0, errno != EINTR { throw .connectionLost("poll failed (errno \(errno))") }
        if ready > 0 {
            guard PQconsumeInput(handle) == 1 else { throw .connectionLost(Self.errorMessage(handle)) }
            received = Self.drainNotifications(handle)
        }
        guard PQstatus(handle) == CONNECTION_OK else { throw .connectionLost(Self.errorMessage(handle)) }
        return received
    }

    private static func drainNotifications(_ handle: OpaquePointer) -> [Notification] {
        var received: [Notification] = []
        while let notify = PQnotifies(handle) {
            received.append(
                Notification(channel: String(cString: notify.pointee.relname), payload: String(cString: notify.pointee.extra)))
            PQfreemem(notify)
        }
        return received
    }

    /// True while the session can still take a statement: open, not abandoned after a missed
    /// deadline, and not broken. Unlike `isUsable` it may be inside a transaction (to roll it back).
    public var canSendStatements: Bool {
        guard let handle, !abandoned else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// True when a transaction was left open (an error inside `BEGIN`...).
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    @discardableResult
    private func consume(_ result: OpaquePointer?, counted: Bool = true) throws(DatabaseError) -> QueryResult {
        guard let handle else { throw .connectionLost("the connection is closed") }
        guard let result else {
            throw lostOrFailed(Self.errorMessage(handle))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            if counted { statementsSucceeded += 1 }
            return QueryResult(columns: [], rows: [], affectedRows: Self.affectedRows(result))
        case PGRES_TUPLES_OK:
            if counted { statementsSucceeded += 1 }
            return Self.read(result)
        default:
            if let state = field(result, "C") {
                throw .server(
                    sqlState: state,
                    message: field(result, "M") ?? "unknown error",
                    constraint: field(result, "n")
                )
            }
            throw lostOrFailed(Self.errorMessage(handle))
        }
    }

    private func lostOrFailed(_ message: String) -> DatabaseError {
        guard let handle else { return .connectionLost(message) }
        return PQstatus(handle) == CONNECTION_OK ? .unexpectedResult(message) : .connectionLost(message)
    }

    /// One diagnostic field; `code` is libpq's `PG_DIAG_*` letter (C macros Swift cannot import):
    /// "C" SQLSTATE, "M" primary message, "n" constraint name.
    private func field(_ result: OpaquePointer, _ code: Unicode.Scalar) -> String? {
        guard let pointer = PQresultErrorField(result, Int32(code.value)) else { return nil }
        return String(cString: pointer)
    }

    private static func read(_ result: OpaquePointer) -> QueryResult {
        let columnCount = PQnfields(result)
        let rowCount = PQntuples(result)
        let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            rows.append(
                (0..<columnCount).map { column in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                }
            )
        }
        return QueryResult(columns: columns, rows: rows, affectedRows: affectedRows(result))
    }

    private static func affectedRows(_ result: OpaquePointer) -> Int {
        Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    private static func errorMessage(_ handle: OpaquePointer) -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Rows of one statement, as text.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [[String?]]
    /// Rows inserted, updated or deleted (`PQcmdTuples`).
    public let affectedRows: Int

    /// The rows as name → value lookups.
    public var records: [Record] {
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        return rows.map { Record(index: index, values: $0) }
    }
}

/// One row, read by column name.
public struct Record: Sendable {
    let index: [String: Int]
    let values: [String?]

    /// The column's text, or nil for NULL. A column the query did not select is a programming
    /// error and reads as nil.
    public subscript(_ column: String) -> String? {
        guard let position = index[column] else { return nil }
        return values[position]
    }

    /// The column's text, or an error naming the column when it is NULL or missing.
    public func required(_ column: String) throws(DatabaseError) -> String {
        guard let value = self[column] else { throw .unexpectedResult("column \(column) is missing or NULL") }
        return value
    }

    /// A `boolean` column: PostgreSQL's text `t` or `f`; anything else (NULL included) throws,
    /// naming the column.
    public func bool(_ column: String) throws(DatabaseError) -> Bool {
        switch try required(column) {
        case "t": return true
        case "f": return false
        case let other: throw .unexpectedResult("column \(column) is not a boolean (\(other.prefix(8)))")
        }
    }

    /// A nullable `boolean` column: nil for NULL; anything but `t` or `f` throws, naming the column.
    public func optionalBool(_ column: String) throws(DatabaseError) -> Bool? {
        self[column] == nil ? nil : try bool(column)
    }

    /// A nullable integer column: nil for NULL; anything else that is not an integer throws.
    public func optionalInt(_ column: String) throws(DatabaseError) -> Int? {
        self[column] == nil ? nil : try int(column)
    }

    /// An integer column; NULL or anything else throws, naming the column.
    public func int(_ column: String) throws(DatabaseError) -> Int {
        let text = try required(column)
        guard let value = Int(text) else { throw .unexpectedResult("column \(column) is not an integer (\(text.prefix(8)))") }
        return value
    }
}

/// Cancel requests for abandoned statements. `PQcancel` opens a new connection and waits for
/// the server to close it, so on a frozen server it blocks until the server runs again: each one
/// gets a detached thread, and at most `limit` are in flight (past that the cancel is skipped;
/// `statement_timeout` ends the statement on the server anyway once it runs).
enum CancelRequests {
    static let limit = 8
    private static let inFlight = Mutex(0)

    static func send(_ cancel: OpaquePointer) {
        let admitted = inFlight.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
        guard admitted else {
            PQfreeCancel(cancel)
            return
        }
        let box = UncheckedBox(cancel)
        Thread.detachNewThread {
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(box.value, &buffer, Int32(buffer.count))
            PQfreeCancel(box.value)
            inFlight.withLock { $0 -= 1 }
        }
    }
}

private struct UncheckedBox: @unchecked Sendable {
    let value: OpaquePointer
    init(_ value: OpaquePointer) { self.value = value }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    withOptionalCStrings(strings.map { Optional($0) }) { pointers in
        body(pointers + [nil])
    }
}

private func withOptionalCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { string in string.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}
