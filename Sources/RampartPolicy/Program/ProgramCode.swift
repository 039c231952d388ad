/// The rules, clauses, checks, port values and candidate lists of one `WorkloadProgram` in a single
/// array of 32-bit words, so a decision touches one allocation and neighbouring cache lines
/// instead of a dozen separately allocated tables.
///
/// Each rule is laid out with everything it reads: a 10-word header (`FlatRule`: policy; index,
/// section order and TCP flag; the three section ranges; its method and path filters), then its clause
/// entries (2 words: first check offset, check count), then its checks (4 words: `FlatCheck`), with
/// port values inline. A rule is named by the word offset of its header; offsets ascend with
/// evaluation order, so candidate lists of offsets merge like positions. Candidate lists (wild
/// rules, `(id, offset)` identity buckets) follow the rules.
struct ProgramCode: Sendable {
    private(set) var words: [UInt32] = []
    /// The UTF-8 bytes of every string and path literal, addressed by pattern entries.
    private(set) var bytes: [UInt8] = []

    static let ruleWords = 10
    static let clauseWords = 2
    static let checkWords = 4
    static let patternWords = 4

    /// How a pattern entry compares (the low byte of its first word).
    enum PatternForm: UInt32 {
        case exact = 0
        case prefix = 1
        case suffix = 2
        case presence = 3
        /// A `{*}`/`{**}` template; the second word is its index in the program's templates.
        case template = 4
        /// `*` on a header-valued attribute: any value, even empty.
        case anyValue = 5
        /// Exact, each `.` of the literal standing for any one character (see `StringMatcher.Form`).
        case dottedExact = 6
        /// A suffix, each `.` of the literal standing for any one character.
        case dottedSuffix = 7
        /// A regex-bearing principal suffix; the second word is its index in the program's regexes
        /// (`-1` as a word: none, the suffix RE2 would refuse, which matches nothing).
        case regex = 8
    }

    /// Appends pattern entries for `matchers` and returns the offset of the first. Each is four
    /// words: form and literal length; the literal's offset in `bytes` or the template's index;
    /// then the probe, a 64-bit word of the literal's bytes that rejects most values without
    /// comparing them (see `probe(_:_:)`).
    mutating func appendPatterns(
        _ matchers: [PathMatcher], templates: inout [PathTemplate], regexes: inout [PatternRegex]
    ) -> Int {
        let start = words.count
        for matcher in matchers {
            switch matcher {
            case .template(let template):
                words += [PatternForm.template.rawValue, UInt32(templates.count), 0, 0]
                templates.append(template)
            case .string(let string) where string.form == .regexAccount:
                // Matched against the whole principal by the service-account check, never here.
                words += [PatternForm.regex.rawValue, UInt32.max, 0, 0]
            case .string(let string) where string.form == .regexSuffix:
                if let regex = string.regex {
                    words += [PatternForm.regex.rawValue, UInt32(regexes.count), 0, 0]
                    regexes.append(regex)
                } else {
                    words += [PatternForm.regex.rawValue, UInt32.max, 0, 0]
                }
            case .string(let string):
                let form: PatternForm
                switch string.form {
                case .exact: form = .exact
                case .prefix: form = .prefix
                case .suffix: form = .suffix
                case .presence: form = .presence
                case .anyValue: form = .anyValue
                case .dottedExact: form = .dottedExact
                case .dottedSuffix: form = .dottedSuffix
                case .regexSuffix, .regexAccount: form = .regex  // laid out above
                }
                let literal = Array(string.literal.utf8)
                let probe = literal.withUnsafeBufferPointer { Self.probe(form, $0) }
                words += [
                    form.rawValue | UInt32(literal.count) << 8, UInt32(bytes.count), UInt32(truncatingIfNeeded: probe),
                    UInt32(truncatingIfNeeded: probe >> 32),
                ]
                bytes += literal
            }
        }
        return start
    }

    /// The bytes of a pattern's literal its probe holds: the last eight at most for exact and
    /// suffix patterns (exact values such as principals share long beginnings), the first eight at
    /// most for prefix ones, none for `*`.
    static func probeRange(_ form: PatternForm, length: Int) -> Range<Int> {
        let width = min(8, length)
        switch form {
        case .prefix: return 0..<width
        case .exact, .suffix: return (length - width)..<length
        case .presence, .anyValue, .template, .dottedExact, .dottedSuffix, .regex: return 0..<0
        }
    }

    /// The probe of a literal (see `probeRange`), its bytes little-endian.
    static func probe(_ form: PatternForm, _ literal: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let range = probeRange(form, length: literal.count)
        return CodeView.word(literal, from: range.lowerBound, count: range.count)
    }

    /// The offset the next word will be written at.
    var end: Int { words.count }

    /// Reserves `count` zero words and returns their offset.
    mutating func reserve(_ count: Int) -> Int {
        let start = words.count
        words.append(contentsOf: repeatElement(0, count: count))
        return start
    }

    /// Appends words and returns the offset of the first.
    @discardableResult
    mutating func append(_ values: [UInt32]) -> Int {
        let start = words.count
        words += values
        return start
    }

    /// Overwrites the words at `offset`.
    mutating func write(_ values: [UInt32], at offset: Int) {
        for (index, value) in values.enumerated() { words[offset + index] = value }
    }

    /// The word at `offset`.
    @inline(__always)
    func word(_ offset: Int) -> UInt32 { words[offset] }

    /// The rule header at `offset`.
    func rule(_ offset: Int) -> FlatRule { words.withUnsafeBufferPointer { CodeView.rule($0, offset) } }

    /// Encodes a rule header.
    static func encode(_ rule: FlatRule) -> [UInt32] {
        [
            UInt32(bitPattern: rule.policy), UInt32(bitPattern: rule.index) & 0x00ff_ffff | UInt32(rule.order & 0x3f) << 24
                | (rule.skipOnTCP ? 0x8000_0000 : 0),
            UInt32(bitPattern: rule.froms.start), UInt32(bitPattern: rule.froms.count),
            UInt32(bitPattern: rule.tos.start), UInt32(bitPattern: rule.tos.count),
            UInt32(bitPattern: rule.whens.start), UInt32(bitPattern: rule.whens.count), rule.methods, rule.paths.bits,
        ]
    }

    /// The port value at index `index` of a list of ports starting at `offset` (two words each).
    func port(_ offset: Int, _ index: Int) -> Int { words.withUnsafeBufferPointer { CodeView.port($0, offset, index) } }

    /// Encodes a port value as two words (low, high), so any `Int` round-trips.
    static func encode(port: Int) -> [UInt32] {
        let bits = UInt64(bitPattern: Int64(port))
        return [UInt32(truncatingIfNeeded: bits), UInt32(truncatingIfNeeded: bits >> 32)]
    }

    /// Encodes an IP block as five words.
    static func encode(block: IPBlock) -> [UInt32] {
        let address = block.address
        return [
            UInt32(truncatingIfNeeded: block.prefixLength) << 1 | (address.isV4 ? 1 : 0),
            UInt32(truncatingIfNeeded: address.high), UInt32(truncatingIfNeeded: address.high >> 32),
            UInt32(truncatingIfNeeded: address.low), UInt32(truncatingIfNeeded: address.low >> 32),
        ]
    }

    /// The checks of the clause entry at `offset`, as (offset of the first check, count).
    func clause(_ offset: Int) -> PoolRange { words.withUnsafeBufferPointer { CodeView.clause($0, offset) } }

    /// The check at `offset`.
    func check(_ offset: Int) -> FlatCheck { words.withUnsafeBufferPointer { CodeView.check($0, offset) } }

    /// Encodes a check.
    static func encode(_ check: FlatCheck) -> [UInt32] {
        [
            UInt32(check.kind.rawValue) | (check.negated ? 0x100 : 0) | (check.httpOnly ? 0x200 : 0),
            UInt32(bitPattern: check.start), UInt32(bitPattern: check.count), UInt32(bitPattern: check.slot),
        ]
    }
}
