import RampartIdentity

/// Why a credential was refused.
public struct AuthnError: CodedError {
    /// The kinds of authentication failure.
    public enum Code: String, Sendable, Hashable {
        /// The credential is malformed or its signature does not verify.
        case invalidCredential
        /// The credential is well-formed but not acceptable here (issuer, audience, subject, expiry).
        case notPermitted
        /// A key source could not be read.
        case keySourceUnavailable
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, and what to do about it.
    public let reason: String

    /// Creates an error with a code and a reason.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
