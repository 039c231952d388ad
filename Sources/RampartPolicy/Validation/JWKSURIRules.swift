/// What Istio's webhook refuses in a `jwksUri`: a URL that does not parse (Go's `net/url` rules
/// for the parts it checks), a scheme other than http or https (compared case-insensitively, as
/// the parser lower-cases it), or a port that is not a number.
enum JWKSURIRules {
    /// What is wrong with `uri`, or `nil`.
    static func problem(_ uri: String) -> String? {
        let bytes = Array(uri.utf8)
        if let bad = bytes.first(where: { $0 < 0x20 || $0 == 0x7f }) {
            return "holds the control character 0x\(String(bad, radix: 16)), so it is not a URL"
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0,
            isScheme(bytes[..<colon])
        else { return "has no scheme; it must be an http or https URL" }
        let scheme = String(decoding: bytes[..<colon], as: UTF8.self).lowercased()
        guard scheme == "http" || scheme == "https" else {
            return "uses the scheme \(scheme); only http and https are supported"
        }
        var rest = bytes[(colon + 1)...]
        guard rest.starts(with: "//".utf8) else { return "has no //host after the scheme" }
        rest = rest.dropFirst(2)
        let authorityEnd = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) { authority = authority[(at + 1)...] }
        if let problem = hostProblem(authority) { return problem }
        if let problem = escapeProblem(rest[authorityEnd...]) { return problem }
        return nil
    }

    /// Go's scheme rule: a letter, then letters, digits, `+`, `-` or `.`.
    private static func isScheme(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, first.isASCIILetter else { return false }
        return bytes.dropFirst().allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    private static func hostProblem(_ authority: ArraySlice<UInt8>) -> String? {
        var host = authority
        var port: ArraySlice<UInt8> = []
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else {
                return "has an IPv6 host without its closing ]"
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { return "has text after its IPv6 host" }
                port = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
            host = authority[..<colon]
            port = authority[(colon + 1)...]
        }
        if !port.allSatisfy(\.isASCIIDigit) {
            return "has the port \"\(String(decoding: port, as: UTF8.self))\", which is not a number"
        }
        let allowed = Set("-._~!$&'()*+,;=:%".utf8)
        if let bad = host.first(where: { !($0.isASCIILetter || $0.isASCIIDigit || allowed.contains($0) || $0 >= 0x80) }) {
            return "has the character \"\(Character(Unicode.Scalar(bad)))\" in its host name"
        }
        return escapeProblem(host)
    }

    /// Every `%` must start a two-digit hexadecimal escape.
    private static func escapeProblem(_ bytes: ArraySlice<UInt8>) -> String? {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%") {
                let digits = bytes[(index + 1)..<min(index + 3, bytes.endIndex)]
                guard digits.count == 2, digits.allSatisfy(\.isASCIIHexDigit) else {
                    return "has a % that does not start a two-digit hexadecimal escape"
                }
                index += 3
            } else {
                index += 1
            }
        }
        return nil
    }
}
