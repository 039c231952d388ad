/// One Istio string pattern: exact, `prefix*`, `*suffix`, or `*`.
///
/// `*` means "any non-empty value" for most attributes (Istio compiles it to the regex `.+`), but
/// "the header is present, whatever its value" for attributes read from request headers (headers,
/// the host, the method), which Istio compiles to a presence match: a header sent with an empty
/// value matches it.
public struct StringMatcher: Sendable, Hashable {
    /// The form of the pattern.
    public enum Form: Sendable, Hashable {
        case exact
        case prefix
        case suffix
        /// `*`: any non-empty value.
        case presence
        /// `*` on a header-valued attribute: any value, the empty one included.
        case anyValue
    }

    /// What `*` alone means.
    public enum Wildcard: Sendable {
        /// Any non-empty value.
        case nonEmpty
        /// Any value of a present header, even empty.
        case present
    }

    /// The form.
    public let form: Form
    /// The literal part (lower-cased when `ignoreCase`).
    public let literal: String
    /// Whether the comparison ignores ASCII case (hosts).
    public let ignoreCase: Bool

    /// Compiles a pattern as written in a policy.
    public init(_ pattern: String, ignoreCase: Bool = false, wildcard: Wildcard = .nonEmpty) {
        let text = ignoreCase ? pattern.lowercased() : pattern
        self.ignoreCase = ignoreCase
        // Byte-wise, as Envoy reads patterns: a combining mark after `*` does not hide the wildcard.
        let bytes = text.utf8
        if text == "*" {
            form = wildcard == .present ? .anyValue : .presence
            literal = ""
        } else if bytes.first == UInt8(ascii: "*") {
            form = .suffix
            literal = String(decoding: bytes.dropFirst(), as: UTF8.self)
        } else if bytes.last == UInt8(ascii: "*") {
            form = .prefix
            literal = String(decoding: bytes.dropLast(), as: UTF8.self)
        } else {
            form = .exact
            literal = text
        }
    }

    /// A pattern of a given form and literal (the literal taken as it is, `*` included).
    init(form: Form, literal: String, ignoreCase: Bool = false) {
        self.form = form
        self.literal = literal
        self.ignoreCase = ignoreCase
    }

    /// Whether `value` matches, comparing UTF-8 bytes as Envoy does; callers lower-case the value
    /// first when `ignoreCase` is set.
    @inline(__always)
    public func matches(_ value: String) -> Bool {
        switch form {
        case .presence: return !value.isEmpty
        case .anyValue: return true
        case .exact: return value.utf8.count == literal.utf8.count && Self.bytes(of: value, at: .start, equal: literal)
        case .prefix: return Self.bytes(of: value, at: .start, equal: literal)
        case .suffix: return Self.bytes(of: value, at: .end, equal: literal)
        }
    }

    private enum Edge {
        case start
        case end
    }

    /// Whether `value` starts (or ends) with the bytes of `literal`, compared in contiguous UTF-8
    /// storage when both strings have it (native and small strings do).
    @inline(__always)
    private static func bytes(of value: String, at edge: Edge, equal literal: String) -> Bool {
        let count = literal.utf8.count
        let valueCount = value.utf8.count
        guard valueCount >= count else { return false }
        if count == 0 { return true }
        let fast = value.utf8.withContiguousStorageIfAvailable { valueBytes in
            literal.utf8.withContiguousStorageIfAvailable { literalBytes in
                let offset = edge == .start ? 0 : valueCount - count
                for index in 0..<count where valueBytes[offset + index] != literalBytes[index] { return false }
                return true
            }
        }
        if let fast, let result = fast { return result }
        switch edge {
        case .start: return value.utf8.starts(with: literal.utf8)
        case .end: return value.utf8.suffix(count).elementsEqual(literal.utf8)
        }
    }
}
