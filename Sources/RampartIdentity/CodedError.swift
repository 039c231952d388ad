/// The shape of every Rampart module's error: a code to branch and assert on, and a reason for people.
///
/// Equality and hashing use the code only, so tests compare kinds of failure while the reason is
/// free to name the offending value and what to do about it.
public protocol CodedError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    associatedtype Code: Hashable & Sendable
    /// The kind of failure.
    var code: Code { get }
    /// What was wrong, where, and what to do about it.
    var reason: String { get }
}

extension CodedError {
    public var description: String { reason }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
