#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A `namespaces` value (or a `source.namespace` condition value) matched as Istio's generator
/// matches it: the regex `.*/ns/<value>/.*` against the peer's SPIFFE ID, each `*` of the value
/// standing for `.*`.
///
/// For an Istio workload ID (`<td>/ns/<ns>/sa/<sa>`) and a value without `/` this is the value's
/// exact, prefix or suffix match against `<ns>`, with one exception the regex brings: a suffix
/// value may also end at a later slash, so `*a` and `*sa` match every such ID (`.../ns/x/sa/...`).
/// For IDs of other shapes it is what the regex says: `/ns/<value>/` anywhere in the ID, so
/// `<td>/ns/ns1/sa/a/extra`, `<td>/ns/ns1/workload` and `<td>/team/x/ns/ns1/y` are all in `ns1`.
///
/// For a value whose only regex operators are its `*`s, the regex is a sequence of literals
/// separated by `.*`, so the earliest occurrence of each literal after the previous one decides
/// whether it matches; no backtracking is needed. A value with other operators, a `.` among them
/// (`team.*` is any namespace of five characters or more starting with `team`), is matched as the
/// regular expression it is (`PatternRegex`).
struct NamespacePattern: Sendable, Hashable {
    /// The literals between the `.*`s: `/ns/` and the value's text up to its first `*`, the text
    /// between its later `*`s, and the text after its last `*` followed by `/` (one literal,
    /// `/ns/<value>/`, for a value without `*`). Unused when `regex` is set.
    let pieces: [[UInt8]]
    /// Whether the value holds regex operators other than `*`: it is then matched by `regex`
    /// alone, and matches nothing when RE2 would refuse it (`rampart analyze` reports it, RP032).
    let isRegex: Bool
    let regex: PatternRegex?

    /// The pattern of a value as written in a policy.
    init(_ value: String) {
        let parts = value.utf8.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false).map(Array.init)
        var pieces = parts
        pieces[0] = Array("/ns/".utf8) + pieces[0]
        pieces[pieces.count - 1] += [UInt8(ascii: "/")]
        self.pieces = pieces
        isRegex = PatternRegex.hasNamespaceOperators(value)
        regex = isRegex ? PatternRegex(namespace: value) : nil
    }

    /// The pattern of a compiled string matcher (its form and literal, as `StringMatcher` read the value).
    init(_ matcher: StringMatcher) {
        switch matcher.form {
        case .exact, .dottedExact, .regexAccount: self.init(matcher.literal)
        case .prefix: self.init(matcher.literal + "*")
        case .suffix, .dottedSuffix, .regexSuffix: self.init("*" + matcher.literal)
        case .presence, .anyValue: self.init("*")
        }
    }

    /// Whether the principal (a SPIFFE ID without `spiffe://`) matches.
    ///
    /// The ID the regex reads starts with `spiffe://`, so a `/ns/` may start at the slash before
    /// the principal: the principal's own start counts as following a slash.
    func matches(principal: UnsafeBufferPointer<UInt8>) -> Bool {
        if isRegex { return regex?.matches("spiffe://" + String(decoding: principal, as: UTF8.self)) ?? false }
        var from: Int
        let first = pieces[0]
        if Self.starts(principal, at: 0, with: first, skipping: 1) {
            from = first.count - 1
        } else if let found = Self.find(first, in: principal, from: 0) {
            from = found
        } else {
            return false
        }
        for piece in pieces.dropFirst() {
            guard let found = Self.find(piece, in: principal, from: from) else { return false }
            from = found
        }
        return true
    }

    /// Whether the principal matches, for a `String`.
    func matches(principal: String) -> Bool {
        if let found = principal.utf8.withContiguousStorageIfAvailable({ matches(principal: $0) }) { return found }
        return Array(principal.utf8).withUnsafeBufferPointer { matches(principal: $0) }
    }

    /// Where the namespace of a principal lies, for indexing: the text between its only `/ns/`
    /// (counting one at its start, as `matches` does) and the next slash.
    enum Segment: Equatable {
        /// No `/ns/` followed by a later slash: no namespace value matches.
        case none
        /// One: exactly the values whose pattern has no `*` and no `/` and equals this text
        /// match among such values.
        case one(Range<Int>)
        /// `/ns/` more than once: several values may match.
        case ambiguous
    }

    /// The principal's namespace segment (see `Segment`): each slash, the one before the
    /// principal included, is checked for `ns/` after it.
    static func segment(of principal: UnsafeBufferPointer<UInt8>) -> Segment {
        let slash = UInt8(ascii: "/")
        let count = principal.count
        var start = -1
        var at = -1
        while at < count {
            if at + 3 < count && principal[at + 1] == UInt8(ascii: "n") && principal[at + 2] == UInt8(ascii: "s")
                && principal[at + 3] == slash
            {
                if start >= 0 { return .ambiguous }
                start = at + 4
            }
            at = nextSlash(principal, from: at + 1)
        }
        guard start >= 0 else { return .none }
        let end = nextSlash(principal, from: start)
        return end < count ? .one(start..<end) : .none
    }

    /// The offset of the first slash at or after `from`, or the count.
    @inline(__always)
    private static func nextSlash(_ bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        guard from < bytes.count, let base = bytes.baseAddress,
            let found = memchr(base + from, Int32(UInt8(ascii: "/")), bytes.count - from)
        else { return bytes.count }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    /// The principal's namespace segment, for a `String`.
    static func segment(of principal: String) -> (Segment, String?) {
        func text(_ bytes: UnsafeBufferPointer<UInt8>) -> (Segment, String?) {
            let segment = segment(of: bytes)
            guard case .one(let range) = segment else { return (segment, nil) }
            return (segment, String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self))
        }
        if let found = principal.utf8.withContiguousStorageIfAvailable(text) { return found }
        return Array(principal.utf8).withUnsafeBufferPointer(text)
    }

    /// Whether an exact namespace value can be indexed by a principal's `Segment`: it has neither
    /// `*` (which the regex reads as `.*`) nor `/` (which a segment never holds), nor another regex
    /// operator.
    static func isIndexable(_ value: String) -> Bool {
        !value.utf8.contains(UInt8(ascii: "*")) && !value.utf8.contains(UInt8(ascii: "/"))
            && !PatternRegex.hasNamespaceOperators(value)
    }

    /// The offset just past the first occurrence of `needle` at or after `from`, or `nil`.
    private static func find(_ needle: [UInt8], in bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        guard !needle.isEmpty else { return from }
        var start = from
        while start + needle.count <= bytes.count {
            if starts(bytes, at: start, with: needle, skipping: 0) { return start + needle.count }
            start += 1
        }
        return nil
    }

    /// Whether `bytes` holds `needle` without its first `skipping` bytes at `offset`.
    private static func starts(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, with needle: [UInt8], skipping: Int)
        -> Bool
    {
        let count = needle.count - skipping
        guard count >= 0, offset + count <= bytes.count else { return false }
        for index in 0..<count where bytes[offset + index] != needle[skipping + index] { return false }
        return true
    }
}
