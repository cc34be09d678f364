/// Why the environment cannot start Signet: always names the variable, never prints a secret.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The environment variable at fault, for example `DB_POOL_MAX`.
    public let variable: String
    /// What is wrong, with the offending value where it is not secret.
    public let reason: String

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }

    /// One line for standard error: `DB_POOL_MAX must be a whole number (got "abc")`.
    public var description: String { "\(variable) \(reason)" }
}
