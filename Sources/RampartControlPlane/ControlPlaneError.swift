import RampartIdentity

/// Why an operator command or the CA daemon could not do what was asked.
public struct ControlPlaneError: CodedError {
    /// The kinds of failure.
    public enum Code: String, Sendable, Hashable {
        case stateExists
        case stateMissing
        case badArgument
        case notFound
        case startFailed
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
