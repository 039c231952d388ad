/// A program's code words and literal bytes borrowed as unsafe buffers for one evaluation, so the
/// hot loop reads them without retaining arrays or re-checking bounds in release builds.
///
/// Only valid inside `WorkloadProgram.withView`; every offset it reads was written by
/// `WorkloadProgramBuilder` for the same code.
struct CodeView {
    let words: UnsafeBufferPointer<UInt32>
    let bytes: UnsafeBufferPointer<UInt8>

    /// The rule header at `offset` (see `ProgramCode` for the layout).
    @inline(__always)
    static func rule(_ words: UnsafeBufferPointer<UInt32>, _ offset: Int) -> FlatRule {
        let flags = words[offset + 1]
        return FlatRule(
            policy: Int32(bitPattern: words[offset]), index: Int32(bitPattern: flags & 0x00ff_ffff),
            froms: PoolRange(start: Int32(bitPattern: words[offset + 2]), count: Int32(bitPattern: words[offset + 3])),
            tos: PoolRange(start: Int32(bitPattern: words[offset + 4]), count: Int32(bitPattern: words[offset + 5])),
            whens: PoolRange(start: Int32(bitPattern: words[offset + 6]), count: Int32(bitPattern: words[offset + 7])),
            skipOnTCP: flags & 0x8000_0000 != 0, order: UInt8(truncatingIfNeeded: flags >> 24) & 0x3f,
            methods: words[offset + 8], paths: PathFilter(bits: words[offset + 9]))
    }

    /// The checks of the clause entry at `offset`, as (offset of the first check, count).
    @inline(__always)
    static func clause(_ words: UnsafeBufferPointer<UInt32>, _ offset: Int) -> PoolRange {
        PoolRange(start: Int32(bitPattern: words[offset]), count: Int32(bitPattern: words[offset + 1]))
    }

    /// The check at `offset`.
    @inline(__always)
    static func check(_ words: UnsafeBufferPointer<UInt32>, _ offset: Int) -> FlatCheck {
        let head = words[offset]
        return FlatCheck(
            kind: FlatCheck.Kind(rawValue: UInt8(truncatingIfNeeded: head)) ?? .never, negated: head & 0x100 != 0,
            httpOnly: head & 0x200 != 0, start: Int32(bitPattern: words[offset + 1]),
            count: Int32(bitPattern: words[offset + 2]), slot: Int32(bitPattern: words[offset + 3]))
    }

    /// The port at index `index` of a list of ports starting at `offset` (two words each, low first).
    @inline(__always)
    static func port(_ words: UnsafeBufferPointer<UInt32>, _ offset: Int, _ index: Int) -> Int {
        let at = offset + 2 * index
        return Int(Int64(bitPattern: UInt64(words[at]) | UInt64(words[at + 1]) << 32))
    }

    @inline(__always) func rule(_ offset: Int) -> FlatRule { Self.rule(words, offset) }
    @inline(__always) func clause(_ offset: Int) -> PoolRange { Self.clause(words, offset) }
    @inline(__always) func check(_ offset: Int) -> FlatCheck { Self.check(words, offset) }
    @inline(__always) func port(_ offset: Int, _ index: Int) -> Int { Self.port(words, offset, index) }

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

    /// Up to eight bytes from `from` as one little-endian word (zero above them). From a buffer of
    /// eight bytes or more this is one load of the eight bytes around them, shifted and masked.
    @inline(__always)
    static func word(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, count: Int) -> UInt64 {
        guard count > 0 else { return 0 }
        if bytes.count >= 8 {
            let raw = UnsafeRawBufferPointer(bytes)
            let start = min(from, bytes.count - 8)
            let loaded = raw.loadUnaligned(fromByteOffset: start, as: UInt64.self) >> UInt64(8 * (from - start))
            return count == 8 ? loaded : loaded & (UInt64(1) << UInt64(8 * count) &- 1)
        }
        var word: UInt64 = 0
        for index in 0..<count { word |= UInt64(bytes[from + index]) << UInt64(8 * index) }
        return word
    }

    /// Whether `count` bytes of `value` from `offset` equal the literal bytes at `literal`.
    @inline(__always)
    /// Whether `value`'s `count` bytes at `offset` match the literal at `literal`, each `.` of it
    /// standing for any byte but a line feed (see `StringMatcher.dotted`).
    func dotted(_ value: UnsafeBufferPointer<UInt8>, _ offset: Int, _ literal: Int, _ count: Int) -> Bool {
        StringMatcher.dotted(value, at: offset, UnsafeBufferPointer(rebasing: bytes[literal..<literal + count]))
    }

    func equal(_ value: UnsafeBufferPointer<UInt8>, _ offset: Int, _ literal: Int, _ count: Int) -> Bool {
        var index = 0
        while index < count {
            if value[offset + index] != bytes[literal + index] { return false }
            index += 1
        }
        return true
    }
}
