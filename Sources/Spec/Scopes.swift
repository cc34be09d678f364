/// Scopes with a meaning at Signet itself.
public enum Scopes {
    /// An agent may rotate its own credential (with its client credentials, never a token).
    public static let credentialsRotate = "credentials:rotate"

    /// Scopes that act on Signet itself: never part of a default grant (a token request without
    /// `scope`), only granted when asked for by name.
    public static let actingOnSignet: Set<String> = [credentialsRotate]

    /// Whether `scope` acts on Signet itself.
    @Sendable public static func actsOnSignet(_ scope: String) -> Bool { actingOnSignet.contains(scope) }
}
