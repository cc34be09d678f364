/// The statements of the change listener's session: the channel migration 4's triggers notify
/// (`ChangeListener.channel`) and the heartbeat that proves it current.
enum ChangeFeed {
    /// Names the session (`application_name` plus `ChangeListener.applicationNameSuffix`, so an
    /// operator and the Simulator can find it in `pg_stat_activity`) and listens on the change
    /// channel and this listener's own heartbeat channel.
    static func listen(heartbeatChannel: String, on connection: PostgresConnection) throws {
        try connection.query(
            "SELECT set_config('application_name', left(current_setting('application_name'), 50) || $1, false)",
            [ChangeListener.applicationNameSuffix])
        try connection.query("LISTEN \(ChangeListener.channel)")
        try connection.query("LISTEN \(heartbeatChannel)")
    }

    /// Sends heartbeat `nonce` to `channel` (it arrives after every change committed before it)
    /// and reads whether every change trigger is enabled.
    static func heartbeat(_ nonce: UInt64, to channel: String, on connection: PostgresConnection) throws -> Bool {
        let enabled = try connection.query(
            """
            SELECT pg_notify($1, $2),
                   (SELECT count(DISTINCT tgname) FROM pg_trigger WHERE tgname = ANY($3::text[]) AND tgenabled = 'A') AS enabled
            """,
            [channel, String(nonce), "{\(ChangeListener.triggers.joined(separator: ","))}"]
        ).records.first?.int("enabled")
        return enabled == ChangeListener.triggers.count
    }
}
