/// One Istio string pattern: exact, `prefix*`, `*suffix`, or `*`.
///
/// `*` means "any non-empty value" for most attributes (Istio compiles it to the regex `.+`), but
/// "the header is present, whatever its value" for attributes read from request headers (headers,
/// the host, the method), which Istio compiles to a presence match: a header sent with an empty
/// value matches it.
public struct StringMatcher: Sendable, Hashable {
    // Equality and hashing read the form, the literal and `ignoreCase`: `regex` follows from them.
    /// The form of the pattern.
    public enum Form: Sendable, Hashable {
        case exact
        case prefix
        case suffix
        /// `*`: any non-empty value.
        case presence
        /// `*` on a header-valued attribute: any value, the empty one included.
        case anyValue
        /// An exact value in which each `.` stands for any one character, as Istio's unescaped
        /// regex reads a `serviceAccounts` value (see `StringMatcher.serviceAccount`).
        case dottedExact
        /// A `*suffix` value in which each `.` stands for any one character, as Istio's unescaped
        /// regex reads a wildcard-prefixed principal (see `StringMatcher.principal`).
        case dottedSuffix
        /// A `*suffix` principal whose suffix holds other regex operators: the value must match
        /// `.*<suffix>` as a whole (see `PatternRegex`); the literal is the suffix.
        case regexSuffix
        /// A `serviceAccounts` value holding regex operators other than `.`: the whole SPIFFE ID
        /// (with `spiffe://`) must match Istio's expression of it (see `PatternRegex`); the literal
        /// is the qualified value.
        case regexAccount
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
    /// The expression of a `regexSuffix` pattern; `nil` for the other forms, and for a suffix RE2
    /// would refuse, which then matches nothing (`rampart analyze` reports it, RP032).
    let regex: PatternRegex?

    /// Compiles a pattern as written in a policy.
    public init(_ pattern: String, ignoreCase: Bool = false, wildcard: Wildcard = .nonEmpty) {
        let text = ignoreCase ? pattern.asciiLowercased() : pattern
        self.ignoreCase = ignoreCase
        regex = nil
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

    /// A `principals` (or `source.principal`) pattern as Istio compiles it: `*suffix` becomes the
    /// regex `spiffe://.*suffix`, with the suffix unescaped, so each `.` in it matches any one
    /// character (`*cluster.local/ns/a/sa/b` matches `clusterXlocal/ns/a/sa/b`). Exact and
    /// `prefix*` values are compared literally, as Envoy's exact and prefix matchers compare them.
    /// A suffix with other regex operators (`*/ns/a/*`, `*sa/(a|b)`) is matched as the regex it is
    /// (`PatternRegex`).
    static func principal(_ pattern: String) -> StringMatcher {
        let matcher = StringMatcher(pattern)
        guard matcher.form == .suffix else { return matcher }
        if PatternRegex.hasOperators(matcher.literal) {
            return StringMatcher(form: .regexSuffix, literal: matcher.literal, regex: PatternRegex(suffix: matcher.literal))
        }
        guard matcher.literal.utf8.contains(UInt8(ascii: ".")) else { return matcher }
        return StringMatcher(form: .dottedSuffix, literal: matcher.literal)
    }

    /// A qualified `serviceAccounts` value (`namespace/name`) as Istio compiles it: the regex
    /// `spiffe://.+/ns/<namespace>/(.+/|)sa/<name>(/.+)?`, with both unescaped, so each `.` matches
    /// any one character (`ns1/build.bot` is also `ns1/build-bot`).
    static func serviceAccount(_ value: String) -> StringMatcher {
        if PatternRegex.hasOperators(value) && !value.contains("*") {
            return StringMatcher(form: .regexAccount, literal: value, regex: PatternRegex(account: value))
        }
        let matcher = StringMatcher(value)
        guard matcher.form == .exact, value.utf8.contains(UInt8(ascii: ".")) else { return matcher }
        return StringMatcher(form: .dottedExact, literal: value)
    }

    /// Whether `value`'s bytes at `offset` match the dotted `literal`: each `.` of the literal
    /// stands for any byte but a line feed (the regex's `.`), every other byte for itself.
    static func dotted(_ value: UnsafeBufferPointer<UInt8>, at offset: Int, _ literal: UnsafeBufferPointer<UInt8>) -> Bool {
        guard offset >= 0, offset + literal.count <= value.count else { return false }
        for index in 0..<literal.count {
            let expected = literal[index], actual = value[offset + index]
            if expected == UInt8(ascii: ".") ? actual == UInt8(ascii: "\n") : actual != expected { return false }
        }
        return true
    }

    /// A pattern of a given form and literal (the literal taken as it is, `*` included).
    init(form: Form, literal: String, ignoreCase: Bool = false, regex: PatternRegex? = nil) {
        self.form = form
        self.literal = literal
        self.ignoreCase = ignoreCase
        self.regex = regex
    }

    /// Whether a `regexAccount` pattern matches the peer's principal (without `spiffe://`).
    func matches(accountOf principal: String) -> Bool {
        form == .regexAccount && regex?.matches("spiffe://" + principal) == true
    }

    public static func == (lhs: StringMatcher, rhs: StringMatcher) -> Bool {
        lhs.form == rhs.form && lhs.literal == rhs.literal && lhs.ignoreCase == rhs.ignoreCase
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(form)
        hasher.combine(literal)
        hasher.combine(ignoreCase)
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
        case .dottedExact, .dottedSuffix:
            var value = value, literal = literal
            return value.withUTF8 { valueBytes in
                literal.withUTF8 { literalBytes in
                    if form == .dottedExact && valueBytes.count != literalBytes.count { return false }
                    return Self.dotted(valueBytes, at: valueBytes.count - literalBytes.count, literalBytes)
                }
            }
        case .regexSuffix: return regex?.matches(value) ?? false
        // Matched against the whole SPIFFE ID by its callers (`matches(spiffeID:)`), never a value.
        case .regexAccount: return false
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

extension String {
    /// The text with its ASCII capitals made small and every other byte kept, as Envoy folds case
    /// when it compares hosts (`absl::EqualsIgnoreCase`): `K` becomes `k`, but a Kelvin sign (`\u{212A}`)
    /// or an `İ` stays as written, where Swift's `lowercased()` would fold them too.
    func asciiLowercased() -> String {
        guard utf8.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else { return self }
        return String(decoding: utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
