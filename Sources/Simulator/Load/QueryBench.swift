import Foundation
import Service

/// The cost of each hot statement on one connection, sent as a one-off parameterised query
/// (`PQsendQueryParams`: parsed and planned on every call) and as Signet sends it, prepared once
/// per session (`PreparedStatement`, `PQsendQueryPrepared`). Sequential round trips on loopback, so the
/// figures are per-query latency including the round trip; rounds alternate the two ways so
/// both see the same machine.
public enum QueryBench {
    public struct Result: Sendable {
        public let statement: String
        public let unnamedMedian: Duration
        public let unnamedP99: Duration
        public let preparedMedian: Duration
        public let preparedP99: Duration
    }

    /// Runs against a migrated database holding at least one agent with a live credential.
    public static func run(databaseURL: String, iterations: Int, rounds: Int = 5) throws -> [Result] {
        let connection = try PostgresConnection.connect(databaseURL, settings: [])
        defer { connection.close() }
        let sample = try connection.query(
            """
            SELECT a.id::text AS agent_id, a.client_id, c.id::text AS credential_id
            FROM agents a JOIN agent_credentials c ON c.agent_id = a.id AND c.revoked_at IS NULL
            ORDER BY a.seq DESC LIMIT 1
            """
        ).records.first
        guard let sample, let agentID = sample["agent_id"], let clientID = sample["client_id"],
            let credentialID = sample["credential_id"]
        else { throw SimulatorError.setupFailed("the database has no agent with a live credential") }
        let now = String(Date().timeIntervalSince1970)
        let cases: [(PreparedStatement, [String?])] = [
            (CredentialStore.clientLookup, [clientID, now]),
            (RevocationStore.tokenState, [UUID().uuidString, agentID, clientID, credentialID, now]),
            (AgentStore.byID, [agentID]),
        ]
        return try cases.map { statement, parameters in
            var unnamed: [Duration] = []
            var prepared: [Duration] = []
            for _ in 0..<100 {
                try connection.query(statement.sql, parameters)
                try connection.query(statement, parameters)
            }
            for _ in 0..<rounds {
                for _ in 0..<(iterations / rounds) {
                    let started = ContinuousClock.now
                    try connection.query(statement.sql, parameters)
                    unnamed.append(ContinuousClock.now - started)
                }
                for _ in 0..<(iterations / rounds) {
                    let started = ContinuousClock.now
                    try connection.query(statement, parameters)
                    prepared.append(ContinuousClock.now - started)
                }
            }
            unnamed.sort()
            prepared.sort()
            return Result(
                statement: statement.name,
                unnamedMedian: unnamed[unnamed.count / 2],
                unnamedP99: unnamed[unnamed.count * 99 / 100],
                preparedMedian: prepared[prepared.count / 2],
                preparedP99: prepared[prepared.count * 99 / 100]
            )
        }
    }
}
