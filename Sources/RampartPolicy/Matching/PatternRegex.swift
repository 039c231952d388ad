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
        guard case .success(let swift) = Self.translated(expression), let compiled = try? Regex(swift) else { return nil }
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
        switch translated(expression) {
        case .failure(let refusal): return refusal.reason
        case .success(let swift):
            do {
                _ = try Regex(swift)
                return nil
            } catch {
                return "it is not a valid regular expression (\(error))"
            }
        }
    }

    /// Whether the `{` at `index` starts a repetition: digits, an optional comma and digits, `}`.
    private static func startsRepetition(_ characters: [Character], at index: Int) -> Bool {
        var end = index + 1
        let digits = { (character: Character) in character.isASCII && character.isNumber }
        while end < characters.count && digits(characters[end]) { end += 1 }
        guard end > index + 1 else { return false }
        if end < characters.count && characters[end] == "," {
            end += 1
            while end < characters.count && digits(characters[end]) { end += 1 }
        }
        return end < characters.count && characters[end] == "}"
    }

    /// Why RE2 refuses an expression.
    struct Refusal: Error {
        let reason: String
        static func unsupported(_ construct: String) -> Refusal {
            Refusal(reason: "RE2, Envoy's regex engine, does not support \(construct)")
        }
    }

    /// An RE2 expression written in the syntax of Swift's regexes, where the two read the same
    /// text differently, or what RE2 refuses in it:
    /// - a `{` that does not start a repetition (`{n}`, `{n,}`, `{n,m}`) is a literal in RE2, so
    ///   `a{,1}` is `a{,1}` literally; a repetition count above 1000 is refused;
    /// - `\pL` is the one-letter form of `\p{L}`; `\C` is any byte; a `]` first in a class is a
    ///   literal;
    /// - lookaround, atomic groups, possessive quantifiers, backreferences, `\Z`, `\x` without
    ///   two hex digits, and flags other than `i`, `m`, `s` and `U` are refused.
    static func translated(_ expression: String) -> Result<String, Refusal> {
        let characters = Array(expression)
        var out = ""
        var index = 0
        var inClass = false
        var classStart = 0
        func isDigit(_ character: Character) -> Bool { character.isASCII && character.isNumber }
        func isHex(_ character: Character) -> Bool { character.isASCII && character.isHexDigit }
        while index < characters.count {
            let character = characters[index]
            if character == "\\" {
                guard index + 1 < characters.count else { return .failure(Refusal(reason: "it ends with a lone backslash")) }
                let next = characters[index + 1]
                switch next {
                case "1"..."9": return .failure(.unsupported("backreferences (\\\(next))"))
                case "Z": return .failure(.unsupported("\\Z"))
                case "k": return .failure(.unsupported("named backreferences (\\k)"))
                case "C":
                    out += inClass ? "\\C" : "(?s:.)"
                    index += 2
                    continue
                case "p", "P":
                    guard index + 2 < characters.count else { return .failure(Refusal(reason: "\\\(next) must name a class")) }
                    if characters[index + 2] != "{" {
                        out += "\\\(next){\(characters[index + 2])}"
                        index += 3
                        continue
                    }
                    // `\p{Name}` as it is; RE2's `\p{^Name}` is `\P{Name}`.
                    guard let close = characters[(index + 2)...].firstIndex(of: "}") else {
                        return .failure(Refusal(reason: "\\\(next){ is not closed"))
                    }
                    var name = String(characters[(index + 3)..<close])
                    var letter = next
                    if name.hasPrefix("^") {
                        name.removeFirst()
                        letter = next == "p" ? "P" : "p"
                    }
                    out += "\\\(letter){\(name)}"
                    index = close + 1
                    continue
                case "x":
                    if index + 2 < characters.count, characters[index + 2] == "{" {
                        guard let close = characters[(index + 2)...].firstIndex(of: "}") else {
                            return .failure(Refusal(reason: "\\x{ is not closed"))
                        }
                        out += String(characters[index...close])
                        index = close + 1
                        continue
                    }
                    guard index + 3 < characters.count, isHex(characters[index + 2]), isHex(characters[index + 3]) else {
                        return .failure(Refusal(reason: "\\x must be followed by two hex digits or {hex}"))
                    }
                default: break
                }
                out.append(character)
                out.append(next)
                index += 2
                continue
            }
            if inClass {
                if character == "]" && index > classStart {
                    inClass = false
                } else if character == "]" {
                    out += "\\]"
                    index += 1
                    continue
                }
                out.append(character)
                index += 1
                continue
            }
            switch character {
            case "[":
                inClass = true
                out.append(character)
                index += 1
                if index < characters.count && characters[index] == "^" {
                    out.append("^")
                    index += 1
                }
                classStart = index
                continue
            case "{":
                // A repetition only when digits, an optional comma and digits, then `}` follow.
                var end = index + 1
                while end < characters.count && isDigit(characters[end]) { end += 1 }
                let low = end > index + 1 ? Int(String(characters[(index + 1)..<end])) : nil
                var high = low
                var valid = low != nil
                if valid && end < characters.count && characters[end] == "," {
                    end += 1
                    let start = end
                    while end < characters.count && isDigit(characters[end]) { end += 1 }
                    high = end > start ? Int(String(characters[start..<end])) : nil
                }
                valid = valid && end < characters.count && characters[end] == "}"
                if !valid {
                    out += "\\{"
                    index += 1
                    continue
                }
                if (low ?? 0) > 1000 || (high ?? 0) > 1000 {
                    return .failure(Refusal(reason: "a repetition count above 1000 is more than RE2 allows"))
                }
                if let low, let high, high < low { return .failure(Refusal(reason: "a repetition {\(low),\(high)} counts down")) }
                out += String(characters[index...end])
                index = end + 1
                if index < characters.count && characters[index] == "+" { return .failure(.unsupported("possessive quantifiers")) }
                continue
            case "}":
                out += "\\}"
                index += 1
                continue
            case "*", "+", "?":
                if index + 1 < characters.count && characters[index + 1] == "+" { return .failure(.unsupported("possessive quantifiers")) }
                // A repetition of a repetition (`**`, `+*`, `*{2}`) is refused by RE2; `*?` is lazy.
                var after = index + 1
                if after < characters.count && characters[after] == "?" { after += 1 }
                if after < characters.count && (characters[after] == "*" || characters[after] == "+"
                    || (characters[after] == "{" && Self.startsRepetition(characters, at: after)))
                {
                    return .failure(Refusal(reason: "RE2 refuses a repetition of a repetition (\(character)\(characters[after]))"))
                }
            case "(":
                if index + 1 < characters.count && characters[index + 1] == "?" {
                    let rest = String(characters[(index + 2)...])
                    if rest.hasPrefix("=") || rest.hasPrefix("!") || rest.hasPrefix("<=") || rest.hasPrefix("<!") {
                        return .failure(.unsupported("lookaround"))
                    }
                    if rest.hasPrefix(">") { return .failure(.unsupported("atomic groups")) }
                    if rest.hasPrefix("P=") { return .failure(.unsupported("named backreferences")) }
                    if !rest.hasPrefix("P<") && !rest.hasPrefix("<") && !rest.hasPrefix(":") {
                        let flags = rest.prefix { $0 != ")" && $0 != ":" }
                        if flags.isEmpty || !flags.allSatisfy({ "imsU-".contains($0) }) {
                            return .failure(Refusal(reason: "RE2 knows only the flags i, m, s and U, and (?\(flags) holds others"))
                        }
                    }
                }
            default: break
            }
            out.append(character)
            index += 1
        }
        return .success(out)
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
