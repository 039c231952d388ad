/// Reading header values as Envoy's `StringUtil` reads them, byte by byte: a comma-separated list
/// of tokens compared without regard to case, and whitespace trimmed from both ends. These run on
/// every request the proxy forwards, so they allocate nothing and never go through Foundation.
public enum HeaderTokens {
    /// Envoy's whitespace for trimming (`StringUtil::WhitespaceChars`): space, tab, line feed,
    /// vertical tab, form feed and carriage return.
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    /// `value` without the whitespace at either end.
    public static func trimmed(_ value: Substring) -> Substring {
        let bytes = value.utf8
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isWhitespace(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isWhitespace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return value[start..<end]
    }

    /// `value` without the whitespace at either end.
    public static func trimmed(_ value: String) -> Substring { trimmed(value[...]) }

    /// Whether the comma-separated `list` holds `token` (given in lower case), each element
    /// trimmed and compared without regard to ASCII case. With `ignoringParameters`, what follows
    /// a `;` in an element is left out of the comparison (`te: trailers;q=0.5` holds `trailers`).
    public static func list(_ list: String, contains token: StaticString, ignoringParameters: Bool = false) -> Bool {
        let bytes = list.utf8
        var elementStart = bytes.startIndex
        while true {
            let elementEnd = bytes[elementStart...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex
            var element = list[elementStart..<elementEnd]
            if ignoringParameters, let semicolon = element.utf8.firstIndex(of: UInt8(ascii: ";")) {
                element = element[..<semicolon]
            }
            if equalsIgnoringCase(trimmed(element), token) { return true }
            guard elementEnd < bytes.endIndex else { return false }
            elementStart = bytes.index(after: elementEnd)
        }
    }

    /// Whether two names are equal but for ASCII case.
    public static func equalsIgnoringCase(_ one: String, _ other: String) -> Bool {
        one.utf8.count == other.utf8.count && zip(one.utf8, other.utf8).allSatisfy { folded($0) == folded($1) }
    }

    @inline(__always)
    static func folded(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether `text` is `lowercased` but for ASCII case.
    public static func equalsIgnoringCase(_ text: Substring, _ lowercased: StaticString) -> Bool {
        let bytes = text.utf8
        guard bytes.count == lowercased.utf8CodeUnitCount else { return false }
        return lowercased.withUTF8Buffer { expected in
            var index = bytes.startIndex
            for byte in expected {
                guard folded(bytes[index]) == byte else { return false }
                index = bytes.index(after: index)
            }
            return true
        }
    }
}
