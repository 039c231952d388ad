/// Normalizes request paths the way Istio's default (`BASE`) normalization does before authorization.
///
/// BASE is RFC 3986 normalization as Envoy's `normalize_path` applies it: the query and fragment are
/// dropped, backslashes become slashes, percent-encoded unreserved characters are decoded (so `%2E`
/// is a dot), remaining escapes get upper-case hex, and `.`/`..` segments are resolved. Slashes are
/// not merged and `%2F`/`%5C` stay encoded; those belong to the stronger MERGE_SLASHES and
/// DECODE_AND_MERGE_SLASHES options.
public enum PathNormalizer {
    /// The normalized path; returns the input itself when nothing needs changing.
    public static func normalize(_ raw: String) -> String {
        normalizedIfChanged(raw) ?? raw
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

    /// Looks for anything normalization changes: a missing leading `/`, `\`, `%`, a `.` starting a
    /// segment; and for the query or fragment.
    ///
    /// Eight bytes at a time: a word holding none of `?`, `#`, `\`, `%` and `.` is clean as a whole;
    /// only words holding one of them are looked at byte by byte.
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
                case UInt8(ascii: "\\"), UInt8(ascii: "%"): return .needsWork
                case UInt8(ascii: ".") where previous == UInt8(ascii: "/"): return .needsWork
                default: previous = byte
                }
                index += 1
            }
        }
        return .clean
    }

    /// Whether a word of eight path bytes holds `?`, `#`, `\`, `%` or `.`.
    @inline(__always)
    private static func mayMatter(_ word: UInt64) -> Bool {
        holds(word, UInt8(ascii: "?")) || holds(word, UInt8(ascii: "#")) || holds(word, UInt8(ascii: "\\"))
            || holds(word, UInt8(ascii: "%")) || holds(word, UInt8(ascii: "."))
    }

    /// Whether some byte of `word` equals `byte` (the exact "has a zero byte" test on `word ^ byte…`).
    @inline(__always)
    private static func holds(_ word: UInt64, _ byte: UInt8) -> Bool {
        let lows: UInt64 = 0x0101_0101_0101_0101
        let difference = word ^ (lows &* UInt64(byte))
        return (difference &- lows) & ~difference & (lows << 7) != 0
    }

    /// The full normalization, byte by byte (what `normalize` falls back to).
    static func slowNormalize(_ raw: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.utf8.count + 1)
        var input = Array(raw.utf8)
        if let cut = input.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            input.removeSubrange(cut...)
        }
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "\\") {
                bytes.append(UInt8(ascii: "/"))
            } else if byte == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hex(input[index + 1]), let low = hex(input[index + 2])
            {
                let decoded = high << 4 | low
                if isUnreserved(decoded) {
                    bytes.append(decoded)
                } else {
                    bytes += [UInt8(ascii: "%"), upperHex(high), upperHex(low)]
                }
                index += 3
                continue
            } else {
                bytes.append(byte)
            }
            index += 1
        }
        if bytes.first != UInt8(ascii: "/") { bytes.insert(UInt8(ascii: "/"), at: 0) }
        return String(decoding: removeDotSegments(bytes), as: UTF8.self)
    }

    /// RFC 3986 section 5.2.4 on an absolute path.
    static func removeDotSegments(_ path: [UInt8]) -> [UInt8] {
        let segments = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        var output: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        for (offset, segment) in segments.enumerated() {
            let isLast = offset == segments.count - 1
            if segment.elementsEqual([UInt8(ascii: ".")]) {
                trailingSlash = isLast
            } else if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if !output.isEmpty { output.removeLast() }
                trailingSlash = isLast
            } else {
                output.append(segment)
                trailingSlash = false
            }
        }
        var result: [UInt8] = []
        for segment in output {
            result.append(UInt8(ascii: "/"))
            result += segment
        }
        if trailingSlash || result.isEmpty { result.append(UInt8(ascii: "/")) }
        return result
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
