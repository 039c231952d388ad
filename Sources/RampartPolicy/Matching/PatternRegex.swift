import Synchronization

/// A regular expression Istio makes of a policy value with regex operators in it, matched by Envoy
/// with RE2 against the whole value, code point by code point as RE2 reads UTF-8:
/// - a `*`-prefixed principal becomes `spiffe://.*<suffix>`, the suffix unescaped (matcher/string.go's
///   StringMatcherWithPrefix); principals are compared without `spiffe://`, so the expression kept
///   is `.*<suffix>` (`init(suffix:)`);
/// - a `namespaces` value becomes `.*/ns/<value>/.*`, each `*` of it `.*` and the rest unescaped
///   (`init(namespace:)`), matched against the whole SPIFFE ID;
/// - a `serviceAccounts` value `<ns>/<sa>` becomes `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, both
///   unescaped (`init(account:)`), matched against the whole SPIFFE ID.
///
/// `*/ns/ns1/*` is thus `spiffe://td/ns/ns1` followed by any number of slashes, not every
/// principal of namespace `ns1`, and the namespace `team.*` is any namespace of at least five
/// characters starting with `team` (`rampart analyze` warns of both, RP082). A value RE2 cannot
/// compile, or one using what RE2 lacks (lookaround, backreferences, possessive and atomic
/// forms), has no expression: Envoy refuses such a policy, and so does `rampart analyze` (RP032).
final class PatternRegex: Sendable, Hashable {
    /// The expression, as Istio writes it.
    let expression: String
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

    /// Whether a `namespaces` value holds a regex operator other than `*` (which stands for `.*`),
    /// a `.` included.
    static func hasNamespaceOperators(_ value: String) -> Bool {
        value.utf8.contains { $0 == UInt8(ascii: ".") || ($0 != UInt8(ascii: "*") && operators.contains($0)) }
    }

    /// The expression of a `*`-prefixed principal's suffix, or `nil` when RE2 would refuse it
    /// (`problem(_:)` says why).
    convenience init?(suffix: String) {
        self.init(expression: Self.expression(suffix: suffix))
    }

    /// The expression of a `namespaces` value, or `nil` when RE2 would refuse it.
    convenience init?(namespace: String) {
        self.init(expression: Self.expression(namespace: namespace))
    }

    /// The expression of a qualified `serviceAccounts` value (`namespace/name`), or `nil` when RE2
    /// would refuse it.
    convenience init?(account: String) {
        self.init(expression: Self.expression(account: account))
    }

    private init?(expression: String) {
        guard Self.problem(expression) == nil, let compiled = try? Regex(expression) else { return nil }
        self.expression = expression
        regex = Mutex(compiled.matchingSemantics(.unicodeScalar))
    }

    /// The expression Istio makes of a `*`-prefixed principal's suffix (without `spiffe://`).
    static func expression(suffix: String) -> String { ".*" + suffix }

    /// The expression Istio makes of a `namespaces` value, read against the whole SPIFFE ID.
    static func expression(namespace: String) -> String {
        ".*/ns/" + namespace.replacingOccurrences(of: "*", with: ".*") + "/.*"
    }

    /// The expression Istio makes of a qualified `serviceAccounts` value (generator.go's
    /// serviceAccountRegex), read against the whole SPIFFE ID.
    static func expression(account: String) -> String {
        let (namespace, name) = account.firstIndex(of: "/").map { (account[..<$0], account[account.index(after: $0)...]) }
            ?? (Substring(""), Substring(account))
        return "spiffe://.+/ns/\(namespace)/(.+/|)sa/\(name)(/.+)?"
    }

    /// Why Envoy would refuse `expression`, or `nil` when it compiles.
    static func problem(_ expression: String) -> String? {
        if let construct = unsupported(expression) { return "RE2, Envoy's regex engine, does not support \(construct)" }
        do {
            _ = try Regex(expression)
            return nil
        } catch {
            return "it is not a valid regular expression (\(error))"
        }
    }

    /// The first construct Swift's regexes accept and RE2 does not.
    private static func unsupported(_ expression: String) -> String? {
        let forms: [(text: String, name: String)] = [
            ("(?=", "lookahead (?=...)"), ("(?!", "negative lookahead (?!...)"), ("(?<=", "lookbehind (?<=...)"),
            ("(?<!", "negative lookbehind (?<!...)"), ("(?>", "atomic groups (?>...)"), ("*+", "possessive *+"),
            ("++", "possessive ++"), ("?+", "possessive ?+"), ("}+", "possessive {n}+"), ("\\k<", "named backreferences \\k<...>"),
        ]
        for form in forms where expression.contains(form.text) { return form.name }
        let bytes = Array(expression.utf8)
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

    /// Whether the whole value matches.
    func matches(_ value: String) -> Bool {
        regex.withLock { (try? $0.wholeMatch(in: value)) != nil }
    }

    /// Whether the whole value, given as UTF-8 bytes, matches.
    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        matches(String(decoding: bytes, as: UTF8.self))
    }

    static func == (lhs: PatternRegex, rhs: PatternRegex) -> Bool { lhs.expression == rhs.expression }

    func hash(into hasher: inout Hasher) { hasher.combine(expression) }
}
