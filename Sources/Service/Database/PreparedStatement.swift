/// A statement prepared once per connection under a fixed name (`PQprepare`), then executed by
/// name (`PQexecPrepared`): the server parses and plans it once per session instead of once per
/// call. `PostgresConnection.query(_:_:)` prepares it on first use on each connection, so a new
/// connection after a reconnect prepares it again. Each is declared by the store that owns its
/// tables, beside the code that decodes its rows: `AgentStore.byID`, `CredentialStore.clientLookup`,
/// `RevocationStore.tokenState` and `RevocationStore.revoke`.
public struct PreparedStatement: Sendable, Hashable {
    /// The server-side name, unique among the stores' statements (`signet_` and what it reads).
    public let name: String
    public let sql: String
}

extension PreparedStatement {
    /// Every prepared statement the stores declare (their names must differ: a session prepares
    /// each under its name once).
    public static let all: [PreparedStatement] = [
        CredentialStore.clientLookup, RevocationStore.tokenState, RevocationStore.derivedTokenState, RevocationStore.revokeToken,
        AgentStore.byID,
    ]
}
