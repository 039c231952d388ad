import Synchronization

/// The regular expression Istio makes of a `*`-prefixed principal whose suffix holds regex
/// operators: `spiffe://.*<suffix>`, the suffix unescaped (matcher/string.go's
/// StringMatcherWithPrefix), matched by Envoy with RE2 against the whole SPIFFE ID. Principals are
/// compared without `spiffe://`, so the expression kept is `.*<suffix>`, matched against the whole
/// value, code point by code point as RE2 reads UTF-8.
///
/// `*/ns/ns1/*` is thus `spiffe://td/ns/ns1` followed by any number of slashes, not every
/// principal of namespace `ns1` (`rampart analyze` warns of it, RP082). A suffix RE2 cannot
/// compile, or one using what RE2 lacks (lookaround, backreferences, possessive and atomic
/// forms), has no expression: Envoy refuses such a policy, and so does `rampart analyze` (RP032).
final class PatternRegex: Sendable, Hashable {
    /// The suffix as written, after the leading `*`.
    let suffix: String
    /// Swift's `Regex` is not `Sendable`; one lock per expression keeps its matches apart, and
    /// principals with regex operators are rare enough for the lock never to be contended.
    private let regex: Mutex<Regex<AnyRegexOutput>>

    /// The characters that make a suffix a regular expression rather than a literal (a `.` alone
    /// is read by `StringMatcher.Form.dottedSuffix`, without a regex).
    static let operators: Set<UInt8> = Set("*+?()[]{}|^$\\".utf8)

    /// Whether the suffix holds a regex operator other than `.`.
    static func hasOperators(_ suffix: String) -> Bool {
        suffix.utf8.contains { operators.contains($0) }
    }

    /// The expression of a `*`-prefixed principal's suffix, or `nil` when RE2 would refuse it
    /// (`problem(suffix:)` says why).
    init?(suffix: String) {
        guard Self.problem(suffix: suffix) == nil, let compiled = Self.compile(suffix) else { return nil }
        self.suffix = suffix
        regex = Mutex(compiled)
    }

    /// Why Envoy would refuse the expression made of `suffix`, or `nil` when it compiles.
    static func problem(suffix: String) -> String? {
        if let construct = unsupported(suffix) { return "RE2, Envoy's regex engine, does not support \(construct)" }
        do {
            _ = try Regex(".*" + suffix)
            return nil
        } catch {
            return "it is not a valid regular expression (\(error))"
        }
    }

    private static func compile(_ suffix: String) -> Regex<AnyRegexOutput>? {
        (try? Regex(".*" + suffix))?.matchingSemantics(.unicodeScalar)
    }

    /// The first construct Swift's regexes accept and RE2 does not.
    private static func unsupported(_ suffix: String) -> String? {
        let forms: [(text: String, name: String)] = [
            ("(?=", "lookahead (?=...)"), ("(?!", "negative lookahead (?!...)"), ("(?<=", "lookbehind (?<=...)"),
            ("(?<!", "negative lookbehind (?<!...)"), ("(?>", "atomic groups (?>...)"), ("*+", "possessive *+"),
            ("++", "possessive ++"), ("?+", "possessive ?+"), ("}+", "possessive {n}+"), ("\\k<", "named backreferences \\k<...>"),
        ]
        for form in forms where suffix.contains(form.text) { return form.name }
        let bytes = Array(suffix.utf8)
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == UInt8(ascii: "\\") {
                let next = bytes[index + 1]
                if next >= UInt8(ascii: "1") && next <= UInt8(ascii: "9") { return "backreferences \\1 to \\9" }
                index += 2
            } else {
                index += 1
            }
        }
        return nil
    }

    /// Whether the whole principal (without `spiffe://`) matches.
    func matches(_ principal: String) -> Bool {
        regex.withLock { (try? $0.wholeMatch(in: principal)) != nil }
    }

    /// Whether the whole principal, given as UTF-8 bytes, matches.
    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        matches(String(decoding: bytes, as: UTF8.self))
    }

    static func == (lhs: PatternRegex, rhs: PatternRegex) -> Bool { lhs.suffix == rhs.suffix }

    func hash(into hasher: inout Hasher) { hasher.combine(suffix) }
}
