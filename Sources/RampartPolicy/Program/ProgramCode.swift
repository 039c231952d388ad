/// The rules, clauses, checks, port values and candidate lists of one `WorkloadProgram` in a single
/// array of 32-bit words, so a decision touches one allocation and neighbouring cache lines
/// instead of a dozen separately allocated tables.
///
/// Each rule is laid out with everything it reads: an 8-word header (`FlatRule`), then its clause
/// entries (2 words: first check offset, check count), then its checks (4 words: `FlatCheck`), with
/// port values inline. A rule is named by the word offset of its header; offsets ascend with
/// evaluation order, so candidate lists of offsets merge like positions. Candidate lists (wild
/// rules, `(id, offset)` identity buckets) follow the rules.
struct ProgramCode: Sendable {
    private(set) var words: [UInt32] = []

    static let ruleWords = 8
    static let clauseWords = 2
    static let checkWords = 4

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
    @inline(__always)
    func rule(_ offset: Int) -> FlatRule {
        let flags = words[offset + 1]
        return FlatRule(
            policy: Int32(bitPattern: words[offset]), index: Int32(bitPattern: flags & 0x7fff_ffff),
            froms: PoolRange(start: Int32(bitPattern: words[offset + 2]), count: Int32(bitPattern: words[offset + 3])),
            tos: PoolRange(start: Int32(bitPattern: words[offset + 4]), count: Int32(bitPattern: words[offset + 5])),
            whens: PoolRange(start: Int32(bitPattern: words[offset + 6]), count: Int32(bitPattern: words[offset + 7])),
            skipOnTCP: flags & 0x8000_0000 != 0)
    }

    /// Encodes a rule header.
    static func encode(_ rule: FlatRule) -> [UInt32] {
        [
            UInt32(bitPattern: rule.policy), UInt32(bitPattern: rule.index) | (rule.skipOnTCP ? 0x8000_0000 : 0),
            UInt32(bitPattern: rule.froms.start), UInt32(bitPattern: rule.froms.count),
            UInt32(bitPattern: rule.tos.start), UInt32(bitPattern: rule.tos.count),
            UInt32(bitPattern: rule.whens.start), UInt32(bitPattern: rule.whens.count),
        ]
    }

    /// The port value at index `index` of a list of ports starting at `offset` (two words each).
    @inline(__always)
    func port(_ offset: Int, _ index: Int) -> Int {
        let at = offset + 2 * index
        return Int(Int64(bitPattern: UInt64(words[at]) | UInt64(words[at + 1]) << 32))
    }

    /// Encodes a port value as two words (low, high), so any `Int` round-trips.
    static func encode(port: Int) -> [UInt32] {
        let bits = UInt64(bitPattern: Int64(port))
        return [UInt32(truncatingIfNeeded: bits), UInt32(truncatingIfNeeded: bits >> 32)]
    }

    /// Whether `ip` lies in the IP block at index `index` of a list starting at `offset` (five words
    /// each: flags and prefix length, then the address's high and low halves).
    @inline(__always)
    func block(_ offset: Int, _ index: Int, contains ip: IPAddress) -> Bool {
        let at = offset + 5 * index
        let head = words[at]
        return IPBlock.contains(
            ip, isV4: head & 1 != 0, high: UInt64(words[at + 1]) | UInt64(words[at + 2]) << 32,
            low: UInt64(words[at + 3]) | UInt64(words[at + 4]) << 32, prefixLength: Int(head >> 1))
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
    @inline(__always)
    func clause(_ offset: Int) -> PoolRange {
        PoolRange(start: Int32(bitPattern: words[offset]), count: Int32(bitPattern: words[offset + 1]))
    }

    /// The check at `offset`.
    @inline(__always)
    func check(_ offset: Int) -> FlatCheck {
        let head = words[offset]
        return FlatCheck(
            kind: FlatCheck.Kind(rawValue: UInt8(truncatingIfNeeded: head)) ?? .never, negated: head & 0x100 != 0,
            httpOnly: head & 0x200 != 0, start: Int32(bitPattern: words[offset + 1]),
            count: Int32(bitPattern: words[offset + 2]), slot: Int32(bitPattern: words[offset + 3]))
    }

    /// Encodes a check.
    static func encode(_ check: FlatCheck) -> [UInt32] {
        [
            UInt32(check.kind.rawValue) | (check.negated ? 0x100 : 0) | (check.httpOnly ? 0x200 : 0),
            UInt32(bitPattern: check.start), UInt32(bitPattern: check.count), UInt32(bitPattern: check.slot),
        ]
    }
}
