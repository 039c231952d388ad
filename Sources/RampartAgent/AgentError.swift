import RampartIdentity

/// Why the agent could not do something, with what to do about it.
public struct AgentError: CodedError {
    /// The kinds of failure.
    public enum Code: String, Sendable, Hashable {
        /// A command-line setting or file is wrong.
        case badConfiguration
        /// The bootstrap credential is missing or was already spent.
        case credential
        /// The CA refused or could not be reached.
        case caFailure
        /// The CA refused the caller's credential itself (a revoked certificate, one it did not
        /// issue, a spent token): presenting it again will not help.
        case credentialRefused
        /// The CA answered with something unusable.
        case badResponse
        /// Writing the output files failed.
        case output
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, and what to do.
    public let reason: String

    /// Creates an error.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
