#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Normalizes request paths the way Istio's default (`BASE`) normalization does before authorization.
///
/// BASE is Envoy's `normalize_path`, the canonicalization of the URL library Envoy carries: the
/// query and fragment are dropped, backslashes become slashes, escapes of unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`) are decoded, other valid escapes are kept exactly as sent
/// (hex case included), characters a canonical path may not hold raw (spaces, controls, `"`, `<`,
/// `>`, `^`, `` ` ``, `{`, `|`, `}`, DEL and every non-ASCII byte) are escaped with upper-case hex,
/// and `.`/`..` segments, written plainly or as `%2E`, are resolved. Slashes are not merged and
/// `%2F`/`%5C` stay encoded; those belong to the stronger MERGE_SLASHES and
/// DECODE_AND_MERGE_SLASHES options. First, as current Envoy does, the parameters of a `.` or `..`
/// segment are dropped (`/..;/admin` is `/../admin`, so `/admin`), which some servers would
/// otherwise read past a policy.
public enum PathNormalizer {
    /// The normalized path; returns the input itself when nothing needs changing.
    public static func normalize(_ raw: String) -> String {
        normalizedIfChanged(raw) ?? raw
    }

    /// Whether the path is one the normalization refuses, so that the request is answered 400
    /// before any policy sees it: its path (before any query or fragment) holds an escaped NUL
    /// (`%00`, as in `/a/.%00../b` or `/a/%%0000/b`) or a raw one, which the URL library's
    /// canonicalization flags as invalid.
    @inline(__always)
    public static func rejects(_ raw: String) -> Bool {
        if let found = raw.utf8.withContiguousStorageIfAvailable(rejects) { return found }
        return Array(raw.utf8).withUnsafeBufferPointer(rejects)
    }

    @inline(__always)
    private static func rejects(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // Most paths hold neither `%` nor NUL: eight bytes at a time settle them.
        let raw = UnsafeRawBufferPointer(bytes)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let percents: UInt64 = 0x2525_2525_2525_2525
        /// Whether a word holds a NUL or a `%` byte.
        func flags(_ word: UInt64) -> Bool {
            let escaped = word ^ percents
            return ((word &- ones) & ~word | (escaped &- ones) & ~escaped) & highs != 0
        }
        let count = raw.count
        if count < 8 {
            var index = 0
            while index < count {
                if raw[index] == 0 || raw[index] == UInt8(ascii: "%") { return rejectsSlowly(bytes) }
                index += 1
            }
            return false
        }
        var offset = 0
        while offset + 8 <= count {
            if flags(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) { return rejectsSlowly(bytes) }
            offset += 8
        }
        // The last bytes, in one load of the last eight (overlapping words already read).
        if offset < count && flags(raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)) {
            return rejectsSlowly(bytes)
        }
        return false
    }

    /// The byte-by-byte check, for a path holding `%` or NUL somewhere.
    @inline(never)
    private static func rejectsSlowly(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // A NUL inside a dot segment's parameters is dropped with them before canonicalization.
        if let stripped = strippingDotSegmentParameters(bytes) {
            return stripped.withUnsafeBufferPointer { checksSlowly($0) }
        }
        return checksSlowly(bytes)
    }

    private static func checksSlowly(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "?"), UInt8(ascii: "#"): return false
            case 0: return true
            case UInt8(ascii: "%")
            where index + 2 < bytes.count && bytes[index + 1] == UInt8(ascii: "0") && bytes[index + 2] == UInt8(ascii: "0"):
                return true
            default: index += 1
            }
        }
        return false
    }

    /// What normalizing a path does to it, found without copying it in the common cases.
    enum Outcome {
        /// Nothing changes.
        case unchanged
        /// Only the query or fragment from this byte offset is dropped.
        case truncated(Int)
        /// The normalized path differs otherwise.
        case changed(String)
    }

    /// What normalization does to `raw`: one scan, and a copy only when more than a cut is needed.
    @inline(__always)
    static func outcome(_ raw: String) -> Outcome {
        let fast = raw.utf8.withContiguousStorageIfAvailable { bytes -> Outcome? in
            switch scan(bytes) {
            case .clean: return .unchanged
            case .cleanBefore(let cut): return .truncated(cut)
            case .needsWork: return nil
            }
        }
        if let fast = fast ?? nil { return fast }
        let normalized = slowNormalize(raw)
        return normalized == raw ? .unchanged : .changed(normalized)
    }

    /// The normalized path, or `nil` when normalization leaves `raw` as it is (the common case,
    /// which then costs one scan and no copy).
    @inline(__always)
    static func normalizedIfChanged(_ raw: String) -> String? {
        switch outcome(raw) {
        case .unchanged: return nil
        case .truncated(let cut): return String(decoding: raw.utf8.prefix(cut), as: UTF8.self)
        case .changed(let normalized): return normalized
        }
    }

    /// What a single pass over the path found.
    private enum Scan {
        /// It starts with `/` and normalization changes nothing.
        case clean
        /// Everything before the query or fragment at this offset is clean; only the cut is needed.
        case cleanBefore(Int)
        /// It needs the full normalization.
        case needsWork
    }

    /// Looks for anything normalization changes: a missing leading `/`, a backslash, `%`, a `.`
    /// starting a segment, a byte that must be escaped; and for the query or fragment.
    ///
    /// Eight bytes at a time: a word holding none of the bytes normalization looks at (see
    /// `mayMatter`) is clean as a whole; only words holding one are looked at byte by byte.
    @inline(__always)
    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Scan {
        guard let first = bytes.first, first == UInt8(ascii: "/") else { return .needsWork }
        let raw = UnsafeRawBufferPointer(bytes)
        var previous: UInt8 = 0
        var index = 0
        while index < bytes.count {
            if index + 8 <= bytes.count, !mayMatter(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                previous = bytes[index + 7]
                index += 8
                continue
            }
            let end = min(index + 8, bytes.count)
            while index < end {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "?"), UInt8(ascii: "#"): return .cleanBefore(index)
                case 0x5c, UInt8(ascii: "%"): return .needsWork
                case UInt8(ascii: ".") where previous == UInt8(ascii: "/"): return .needsWork
                default:
                    if mustEscape(byte) { return .needsWork }
                    previous = byte
                }
                index += 1
            }
        }
        return .clean
    }

    /// Whether a word of eight path bytes may hold a byte normalization looks at: a control,
    /// space, `"`, `#`, `%`, `.`, `<`, `>`, `?`, a backslash, `^`, `` ` ``, `{`, `|`, `}`, DEL or a
    /// non-ASCII byte. A few neighbours (`!`, `$`, `=`, `]`, `~`) answer yes as well; the byte
    /// loop then finds them harmless.
    @inline(__always)
    private static func mayMatter(_ word: UInt64) -> Bool {
        let lows: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        /// Whether some byte of `value` is below `limit` (exact as a whole; `limit` at most 0x80).
        @inline(__always) func below(_ value: UInt64, _ limit: UInt64) -> Bool {
            (value &- lows &* limit) & ~value & highs != 0
        }
        // Non-ASCII, or 0x7B and up (`{`, `|`, `}`, `~`, DEL): adding 5 carries into the high bit.
        if (word | (word &+ lows &* 0x05)) & highs != 0 { return true }
        return below(word, 0x21)  // controls and space
            || below(word ^ (lows &* 0x20), 0x06)  // `"`, `#`, `%` (and `!`, `$`)
            || below(word ^ (lows &* 0x3c), 0x04)  // `<`, `>`, `?` (and `=`)
            || below(word ^ (lows &* 0x5c), 0x03)  // backslash, `^` (and `]`)
            || below(word ^ (lows &* 0x60), 0x01)  // `` ` ``
            || below(word ^ (lows &* 0x2e), 0x01)  // `.`
    }

    /// The full normalization, byte by byte, in one pass as the canonicalizer makes it: a dot
    /// segment is resolved when it is met, against the output written so far.
    static func slowNormalize(_ raw: String) -> String {
        var input = Array(raw.utf8)
        if let stripped = input.withUnsafeBufferPointer(strippingDotSegmentParameters) { input = stripped }
        if let cut = input.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            input.removeSubrange(cut...)
        }
        var output: [UInt8] = []
        output.reserveCapacity(input.count + 8)
        if let first = input.first, isSlash(first) {
        } else {
            output.append(UInt8(ascii: "/"))
        }
        // Where the last `%` that began no valid escape was written, for the nested-escape rule.
        var strayPercent = Int.min
        var index = 0
        while index < input.count {
            let byte = input[index]
            if let dot = dotLength(input, index) {
                guard output.last == UInt8(ascii: "/") else {
                    output.append(UInt8(ascii: "."))  // a dot inside a name
                    index += dot
                    continue
                }
                let after = index + dot
                if after == input.count {
                    index = after  // `/.` at the end: the current directory
                } else if isSlash(input[after]) {
                    index = after + 1  // `/./`
                } else if let second = dotLength(input, after),
                    after + second == input.count || isSlash(input[after + second])
                {
                    // `/..` or `/../`: back up to the previous slash, never above the first. A
                    // stray `%` cut away no longer counts for the nested-escape rule.
                    backUp(&output)
                    if strayPercent >= output.count { strayPercent = Int.min }
                    index = after + second + (after + second == input.count ? 0 : 1)
                } else {
                    output.append(UInt8(ascii: "."))  // a name that starts with a dot
                    index = after
                }
                continue
            }
            if isSlash(byte) {
                output.append(UInt8(ascii: "/"))
            } else if byte == UInt8(ascii: "%") {
                if index + 2 < input.count, let high = hex(input[index + 1]), let low = hex(input[index + 2]) {
                    let decoded = high << 4 | low
                    if isUnreserved(decoded) {
                        output.append(decoded)
                        if strayPercent >= output.count - 3 {
                            guardNestedEscape(
                                &output, stray: strayPercent, next: index + 3 < input.count ? input[index + 3] : nil)
                        }
                    } else {
                        output += input[index...(index + 2)]  // kept exactly, hex case included
                    }
                    index += 3
                    continue
                }
                strayPercent = output.count
                output.append(byte)
            } else if mustEscape(byte) {
                output += [UInt8(ascii: "%"), upperHex(byte >> 4), upperHex(byte & 0x0f)]
            } else {
                output.append(byte)
            }
            index += 1
        }
        if output.isEmpty { output.append(UInt8(ascii: "/")) }
        return String(decoding: output, as: UTF8.self)
    }

    /// The path with each segment that starts with `.;` or `..;` cut to `.` or `..` (its
    /// parameters dropped), as Envoy does before canonicalizing; `nil` when the path (before any
    /// query or fragment) holds no `.;`. Segments are split at `/` only.
    /// Only a path that holds `.;` is copied.
    static func strippingDotSegmentParameters(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let end = input.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? input.count
        let dot = UInt8(ascii: "."), semicolon = UInt8(ascii: ";")
        guard end > 1, (1..<end).contains(where: { input[$0] == semicolon && input[$0 - 1] == dot }) else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        for segment in input[..<end].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if !output.isEmpty || segment.startIndex > 0 { output.append(UInt8(ascii: "/")) }
            if segment.starts(with: [dot, dot, semicolon]) {
                output += [dot, dot]
            } else if segment.starts(with: [dot, semicolon]) {
                output.append(dot)
            } else {
                output += segment
            }
        }
        output += input[end...]
        return output
    }

    /// The length of a dot at `index`: 1 for `.`, 3 for `%2E` or `%2e`, `nil` for anything else.
    private static func dotLength(_ input: [UInt8], _ index: Int) -> Int? {
        if input[index] == UInt8(ascii: ".") { return 1 }
        if input[index] == UInt8(ascii: "%"), index + 2 < input.count, input[index + 1] == UInt8(ascii: "2"),
            input[index + 2] | 0x20 == UInt8(ascii: "e")
        {
            return 3
        }
        return nil
    }

    /// A slash or a backslash (which is written as a slash).
    private static func isSlash(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "/") || byte == 0x5c
    }

    /// Drops the last segment of output, which ends with a slash; the first slash stays.
    private static func backUp(_ output: inout [UInt8]) {
        guard output.count > 1 else { return }
        var end = output.count - 2
        while end > 0 && output[end] != UInt8(ascii: "/") { end -= 1 }
        output.removeSubrange((end + 1)...)
    }

    /// After a decoded byte lands within two bytes of a `%` that began no escape, the output could
    /// read as an escape the request did not hold (`%%30` then `0` reads `%00`). As the
    /// canonicalizer does, such a `%` is then written as `%25`.
    private static func guardNestedEscape(_ output: inout [UInt8], stray: Int, next: UInt8?) {
        var probe = output
        if stray == output.count - 2 {
            guard let next, next < 0x80 else { return }
            probe.append(next)
        }
        guard probe.count >= stray + 3, hex(probe[stray + 1]) != nil, hex(probe[stray + 2]) != nil else { return }
        output.insert(contentsOf: [UInt8(ascii: "2"), UInt8(ascii: "5")], at: stray + 1)
    }

    /// Bytes a canonical path never holds raw: controls, space, `"`, `<`, `>`, `^`, `` ` ``, `{`,
    /// `|`, `}`, DEL and non-ASCII bytes.
    @inline(__always)
    static func mustEscape(_ byte: UInt8) -> Bool {
        switch byte {
        case 0..<0x21, 0x7f...0xff: return true
        case UInt8(ascii: "\""), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "^"), UInt8(ascii: "`"),
            UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"):
            return true
        default: return false
        }
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func upperHex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
