/// One Istio string pattern: exact, `prefix*`, `*suffix`, or `*` (any non-empty value).
public struct StringMatcher: Sendable, Hashable {
    /// The form of the pattern.
    public enum Form: Sendable, Hashable {
        case exact
        case prefix
        case suffix
        case presence
    }

    /// The form.
    public let form: Form
    /// The literal part (lower-cased when `ignoreCase`).
    public let literal: String
    /// Whether the comparison ignores ASCII case (hosts).
    public let ignoreCase: Bool

    /// Compiles a pattern as written in a policy.
    public init(_ pattern: String, ignoreCase: Bool = false) {
        let text = ignoreCase ? pattern.lowercased() : pattern
        self.ignoreCase = ignoreCase
        if text == "*" {
            form = .presence
            literal = ""
        } else if text.hasPrefix("*") {
            form = .suffix
            literal = String(text.dropFirst())
        } else if text.hasSuffix("*") {
            form = .prefix
            literal = String(text.dropLast())
        } else {
            form = .exact
            literal = text
        }
    }

    /// Whether `value` matches; callers lower-case the value first when `ignoreCase` is set.
    @inline(__always)
    public func matches(_ value: String) -> Bool {
        switch form {
        case .presence: return !value.isEmpty
        case .exact: return value == literal
        case .prefix: return value.utf8.starts(with: literal.utf8)
        case .suffix:
            let bytes = value.utf8
            let count = literal.utf8.count
            guard bytes.count >= count else { return false }
            return bytes[bytes.index(bytes.endIndex, offsetBy: -count)...].elementsEqual(literal.utf8)
        }
    }
}
