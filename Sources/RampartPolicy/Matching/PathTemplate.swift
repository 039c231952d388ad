/// A path template with `{*}` (exactly one non-empty segment) and `{**}` (anything, slashes
/// included), matched as Envoy's URI templates match: an operator covers only path characters
/// (see `isSegmentByte`), so `{*}` does not match `a*b` or `a[b]`.
///
/// `/store/{**}/cart` matches `/store//cart` and `/store/a/b/cart`; `/allow/admin/{**}` needs the
/// slash after `admin`. The template is split into tokens once, at compile time.
public struct PathTemplate: Sendable, Hashable {
    enum Token: Sendable, Hashable {
        case literal([UInt8])
        case oneSegment
        case anything
    }

    let tokens: [Token]

    /// Whether the text contains a template operator.
    public static func isTemplate(_ path: String) -> Bool {
        path.contains("{*}") || path.contains("{**}")
    }

    /// Compiles a template; call `isTemplate` and validate first.
    public init(_ template: String) {
        var tokens: [Token] = []
        var literal: [UInt8] = []
        var rest = Substring(template)
        while !rest.isEmpty {
            if rest.hasPrefix("{**}") {
                if !literal.isEmpty { tokens.append(.literal(literal)) }
                literal = []
                tokens.append(.anything)
                rest = rest.dropFirst(4)
            } else if rest.hasPrefix("{*}") {
                if !literal.isEmpty { tokens.append(.literal(literal)) }
                literal = []
                tokens.append(.oneSegment)
                rest = rest.dropFirst(3)
            } else {
                literal += rest.first.map { Array(String($0).utf8) } ?? []
                rest = rest.dropFirst()
            }
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        self.tokens = tokens
    }

    /// Whether the normalized path matches the template.
    public func matches(_ path: String) -> Bool {
        let utf8 = path.utf8
        return utf8.withContiguousStorageIfAvailable { match(tokens[...], $0[...]) }
            ?? match(tokens[...], Array(utf8)[...])
    }

    /// Whether the normalized path, as UTF-8 bytes, matches the template.
    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        match(tokens[...], bytes[...])
    }

    private func match(_ tokens: ArraySlice<Token>, _ input: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        guard let token = tokens.first else { return input.isEmpty }
        let rest = tokens.dropFirst()
        switch token {
        case .literal(let bytes):
            guard input.starts(with: bytes) else { return false }
            return match(rest, input.dropFirst(bytes.count))
        case .oneSegment:
            var length = 0
            for byte in input {
                guard Self.isSegmentByte(byte) else { break }
                length += 1
                if match(rest, input.dropFirst(length)) { return true }
            }
            return false
        case .anything:
            var length = 0
            while length <= input.count {
                if match(rest, input.dropFirst(length)) { return true }
                guard length < input.count, input[input.startIndex + length] == UInt8(ascii: "/")
                    || Self.isSegmentByte(input[input.startIndex + length])
                else { return false }
                length += 1
            }
            return false
        }
    }

    /// The bytes Envoy's URI templates let an operator match inside a segment: RFC 3986 `pchar`
    /// other than `*` (letters, digits, `-._~%!$&'()+,;:@=`). `{*}` takes one or more of them,
    /// `{**}` any number of them and slashes.
    static func isSegmentByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: ":"),
            UInt8(ascii: "@"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    private func match(_ tokens: ArraySlice<Token>, _ input: ArraySlice<UInt8>) -> Bool {
        input.withUnsafeBufferPointer { match(tokens, $0[...]) }
    }
}
