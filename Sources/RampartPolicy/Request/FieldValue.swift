/// HTTP field values as a field parser must read them: without the spaces and tabs around them
/// (RFC 9110 §5.5). Envoy's HTTP/1 codec trims them before any filter runs, so a policy matching
/// `x-block: yes` also matches `x-block: yes ` and `Host: example.com ` is the host
/// `example.com`. Rampart trims HTTP/2 values the same way (RFC 9113 §8.2.1 makes them malformed;
/// Envoy passes them on as sent), so that a padded value is never a way past a policy.
public enum FieldValue {
    /// Whether `value` starts or ends with a space or a horizontal tab.
    @inline(__always)
    public static func isPadded(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard let first = utf8.first, let last = utf8.last else { return false }
        return isWhitespace(first) || isWhitespace(last)
    }

    /// `value` without its leading and trailing spaces and horizontal tabs.
    public static func trimmed(_ value: String) -> String {
        guard isPadded(value) else { return value }
        let utf8 = value.utf8
        guard let start = utf8.firstIndex(where: { !isWhitespace($0) }),
            let last = utf8.lastIndex(where: { !isWhitespace($0) })
        else { return "" }
        return String(value[start...last])
    }

    @inline(__always)
    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }
}
