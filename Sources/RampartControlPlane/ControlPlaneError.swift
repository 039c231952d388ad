/// Why an operator command or the CA daemon could not do what was asked.
///
/// Equality compares the code only; the reason says what was wrong and what to do.
public struct ControlPlaneError: Error, Sendable, Hashable, CustomStringConvertible {
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

    public var description: String { reason }

    public static func == (lhs: ControlPlaneError, rhs: ControlPlaneError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
