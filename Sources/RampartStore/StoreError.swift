import RampartIdentity

/// Why a store operation failed.
public struct StoreError: CodedError {
    /// The kinds of store failure.
    public enum Code: String, Sendable, Hashable {
        case notFound
        case alreadyExists
        case conflict
        case corrupt
        case unavailable
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
