/// A `serviceAccounts` value (`namespace/name`) matched as Istio's generator matches it against a
/// peer's SPIFFE ID: the regex `spiffe://.+/ns/<namespace>/(.+/|)sa/<name>(/.+)?`.
///
/// For an Istio workload ID (`<td>/ns/<ns>/sa/<sa>`) this is plain equality of namespace and
/// name; the regex also admits IDs with segments between the namespace and `sa`
/// (`<td>/ns/<ns>/x/y/sa/<sa>`) and after the name (`<td>/ns/<ns>/sa/<sa>/extra`), which the
/// evaluator checks here when the principal has another shape.
struct ServiceAccountPattern: Sendable, Hashable {
    let namespace: [UInt8]
    let name: [UInt8]

    /// The pattern of a qualified value, or `nil` when it is not `namespace/name`.
    init?(_ value: String) {
        let parts = value.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        namespace = Array(parts[0])
        name = Array(parts[1])
    }

    /// Whether the principal (a SPIFFE ID without `spiffe://`) matches.
    func matches(principal: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        let marker = Array("/ns/".utf8) + namespace + [slash]
        let account = Array("sa/".utf8) + name
        // `.+` before `/ns/`: the trust domain part is not empty.
        var start = 1
        while start + marker.count <= principal.count {
            if Self.starts(principal, at: start, with: marker) {
                let rest = start + marker.count
                // `(.+/|)`: `sa/` right after the namespace, or after some text ending in a slash.
                var position = rest
                while position + account.count <= principal.count {
                    let boundary = position == rest || (position >= rest + 2 && principal[position - 1] == slash)
                    if boundary && Self.starts(principal, at: position, with: account) {
                        let end = position + account.count
                        // `(/.+)?`: the end, or a slash and something after it.
                        if end == principal.count || (principal[end] == slash && end + 1 < principal.count) {
                            return true
                        }
                    }
                    position += 1
                }
            }
            start += 1
        }
        return false
    }

    /// Whether the principal matches, for a `String`.
    func matches(principal: String) -> Bool {
        var principal = principal
        return principal.withUTF8 { matches(principal: $0) }
    }

    /// Whether `prefix` is at `offset`, each `.` of it standing for any one character, as in
    /// Istio's regex, which leaves the value unescaped.
    private static func starts(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, with prefix: [UInt8]) -> Bool {
        prefix.withUnsafeBufferPointer { StringMatcher.dotted(bytes, at: offset, $0) }
    }
}
