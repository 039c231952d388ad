/// Kubernetes' DNS-1123 names, as resource names, namespaces and workload names are checked.
public enum DNSName {
    /// A DNS-1123 label: ASCII lower-case letters, digits and `-`, starting and ending with a
    /// letter or digit, at most `limit` characters (63 for a namespace or a label; `nil` for none).
    public static func isLabel(_ text: String, limit: Int? = 63) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, limit.map({ bytes.count <= $0 }) ?? true else { return false }
        return isLetterOrDigit(first) && isLetterOrDigit(last)
            && bytes.allSatisfy { isLetterOrDigit($0) || $0 == UInt8(ascii: "-") }
    }

    /// A DNS-1123 subdomain: such labels joined by `.`, at most 253 characters in all, with no
    /// limit on a single label.
    public static func isSubdomain(_ text: String) -> Bool {
        text.utf8.count <= 253
            && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0), limit: nil) }
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
