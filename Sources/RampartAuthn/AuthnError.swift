/// Why a credential was refused.
///
/// Equality compares the code only; the reason says which check failed and what to do.
public struct AuthnError: Error, Sendable, Hashable, CustomStringConvertible {
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

    public var description: String { reason }

    public static func == (lhs: AuthnError, rhs: AuthnError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
