import Foundation

/// What Envoy's HTTP connection manager does to a request's headers before any filter reads them
/// (`ConnectionManagerUtility::mutateRequestHeaders`), as at an Istio sidecar's inbound listener,
/// which does not use the remote address and trusts no forwarding hops. Policies see the headers
/// only as this leaves them, so a client cannot match or dodge a rule with a header the proxy
/// never passes on:
/// - `keep-alive`, `proxy-connection` and `transfer-encoding` are removed; `connection` and
///   `upgrade` too unless the request asks for an upgrade (`connection` lists `upgrade` and an
///   `upgrade` header is present); `te` is kept only as `te: trailers`;
/// - `x-envoy-internal` is removed, and the request-control `x-envoy-*` headers (retries, timeouts,
///   tracing, the original URL) are removed from an external request: one whose
///   `x-forwarded-for` does not hold a single internal address (RFC 1918, loopback, or `fd00::/8`);
/// - `referer` is removed when it is sent more than once or is neither an absolute URL without
///   user information and fragment nor a relative reference (`isValidReferer`).
public enum ConnectionManagerHeaders {
    /// Envoy's request-control headers, which only an internal request may set.
    public static let internalOnly: Set<String> = [
        "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names", "x-envoy-retry-on", "x-envoy-retry-grpc-on",
        "x-envoy-max-retries", "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-expected-rq-timeout-ms",
        "x-envoy-force-trace", "x-envoy-ip-tags", "x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout",
    ]

    /// What happens to one header (its name lower-case).
    public enum Treatment: Equatable {
        case keep
        case remove
        /// Kept with this value instead (`te: trailers`).
        case replace(String)
    }

    /// The request's circumstances the treatment depends on, found once per request.
    public struct Circumstances: Equatable, Sendable {
        /// Whether the request asks for a protocol upgrade, which keeps `connection` and `upgrade`.
        public let upgrade: Bool
        /// Whether Envoy counts the request as internal, which keeps the request-control headers.
        public let internalRequest: Bool

        public init(upgrade: Bool, internalRequest: Bool) {
            self.upgrade = upgrade
            self.internalRequest = internalRequest
        }

        /// Works the circumstances out from the `connection`, `upgrade` and `x-forwarded-for`
        /// values (each a header's fields joined with `,`, or nil when absent).
        public init(connection: String?, upgrade: String?, forwardedFor: String?) {
            let asksUpgrade = connection.map { HeaderTokens.list($0, contains: "upgrade") } ?? false
            self.upgrade = asksUpgrade && upgrade != nil
            self.internalRequest = forwardedFor.map(ConnectionManagerHeaders.isInternal) ?? false
        }
    }

    /// Whether `lowercasedName` names a header Envoy may change: most requests carry none, and
    /// are left alone.
    public static func mayTreat(_ lowercasedName: String) -> Bool {
        treatedName(lowercasedName) != nil
    }

    /// Every name Envoy may change, in lower case.
    private static let treatedNames: [String] =
        ["connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding", "te", "x-envoy-internal", "referer"] + internalOnly.sorted()

    /// The lower-case name of a header Envoy may change, given its name in any case; nil for the
    /// names it leaves alone. Compares bytes, without a lower-cased copy: it reads every header
    /// of every request the proxy receives.
    public static func treatedName(_ name: String) -> String? {
        let length = name.utf8.count
        guard length == 2 || length >= 7 else { return nil }
        return treatedNames.first { $0.utf8.count == length && HeaderTokens.equalsIgnoringCase(name, $0) }
    }

    /// The treatment of a header named `lowercasedName` with `value` (its `fields` joined with `,`).
    public static func treatment(
        of lowercasedName: String, value: String, fields: Int = 1, in circumstances: Circumstances
    ) -> Treatment {
        switch lowercasedName {
        case "referer":
            // One referer, and a valid one, or none at all.
            return fields == 1 && isValidReferer(value) ? .keep : .remove
        case "keep-alive", "proxy-connection", "transfer-encoding", "x-envoy-internal":
            return .remove
        case "connection", "upgrade":
            return circumstances.upgrade ? .keep : .remove
        case "te":
            if circumstances.upgrade { return .keep }
            return HeaderTokens.list(value, contains: "trailers", ignoringParameters: true) ? .replace("trailers") : .remove
        default:
            return internalOnly.contains(lowercasedName) && !circumstances.internalRequest ? .remove : .keep
        }
    }

    /// Whether Envoy keeps a `referer` value (`Utility::isValidRefererValue`): an absolute URL as
    /// its URL parser (http_parser) reads one, `scheme://host[:port][/path][?query]`, without user
    /// information or a fragment; else a relative reference whose first segment has no `:` and
    /// whose characters are those of a URI's path and query, percent escapes included. So
    /// `https://example.com/a?b=c`, `/a?b=c` and `page.html` are kept; `not a url`, `/a#b`,
    /// `https://user@example.com/`, `https://example.com/a b` and `about:blank` are not (Envoy's
    /// own test vectors are among the tests).
    public static func isValidReferer(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        if let absolute = absoluteURL(bytes) { return !absolute.fragment && !absolute.userinfo }
        var seenSlash = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: ":"): if !seenSlash { return false }
            case UInt8(ascii: "/"): seenSlash = true
            default: if !relativeCharacters.contains(byte) { return false }
            }
        }
        return true
    }

    /// The characters of a URI's path and query (RFC 3986): unreserved, sub-delims, `:`, `@`, `/`,
    /// `?`, and `%` for escapes.
    private static let relativeCharacters: Set<UInt8> = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%".utf8)

    /// The characters http_parser takes in a URL's user information.
    private static let userinfoCharacters: Set<UInt8> = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()%;:&=+$,".utf8)

    /// An absolute URL as http_parser parses one (`scheme://authority` then path, query and
    /// fragment of URL characters), with whether it has user information and a fragment; `nil`
    /// when the value is not one.
    private static func absoluteURL(_ bytes: [UInt8]) -> (userinfo: Bool, fragment: Bool)? {
        // Printable ASCII other than the delimiters, and any byte of a UTF-8 sequence.
        func isURLCharacter(_ byte: UInt8) -> Bool { (byte > 0x20 && byte < 0x7F) || byte >= 0x80 }
        var index = 0
        while index < bytes.count && bytes[index].isASCIILetter { index += 1 }
        guard index > 0, index + 2 < bytes.count, bytes[index] == UInt8(ascii: ":"), bytes[index + 1] == UInt8(ascii: "/"),
            bytes[index + 2] == UInt8(ascii: "/")
        else { return nil }
        let authorityStart = index + 3
        var end = authorityStart
        while end < bytes.count && ![UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")].contains(bytes[end]) { end += 1 }
        var authority = bytes[authorityStart..<end]
        var userinfo = false
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) {
            guard authority[..<at].allSatisfy(userinfoCharacters.contains) else { return nil }
            // http_parser marks user information only when there is some (`http://@host` has none).
            userinfo = at > authority.startIndex
            authority = authority[(at + 1)...]
        }
        var host = authority
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")), close > authority.startIndex + 1 else { return nil }
            let inside = authority[(authority.startIndex + 1)..<close]
            guard inside.allSatisfy({ $0.isASCIIHexDigit || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else {
                return nil
            }
            host = authority[...close]
            let rest = authority[(close + 1)...]
            if !rest.isEmpty {
                guard rest.first == UInt8(ascii: ":"), validPort(rest.dropFirst()) else { return nil }
            }
        } else {
            if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
                guard validPort(authority[(colon + 1)...]) else { return nil }
                host = authority[..<colon]
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
                return nil
            }
        }
        // Path and query, then the fragment, which http_parser marks only when it is not empty.
        var fragment = false
        var inFragment = false
        for byte in bytes[end...] {
            if byte == UInt8(ascii: "#") && !inFragment { inFragment = true; continue }
            guard isURLCharacter(byte) else { return nil }
            if inFragment { fragment = true }
        }
        return (userinfo, fragment)
    }

    /// A port of one to five digits, at most 65535.
    private static func validPort(_ digits: ArraySlice<UInt8>) -> Bool {
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return false }
        return Int(String(decoding: digits, as: UTF8.self)).map { $0 <= 65535 } ?? false
    }

    /// Whether an `x-forwarded-for` value makes the request internal to Envoy: a single address,
    /// and an internal one.
    static func isInternal(forwardedFor: String) -> Bool {
        guard !forwardedFor.utf8.contains(UInt8(ascii: ",")), let address = IPAddress(String(HeaderTokens.trimmed(forwardedFor))) else {
            return false
        }
        if address.isV4 {
            let value = UInt32(truncatingIfNeeded: address.low)
            return value >> 24 == 10 || value >> 20 == 0xAC1 || value >> 16 == 0xC0A8 || value >> 24 == 127
        }
        return (address.high == 0 && address.low == 1) || address.high >> 56 == 0xFD
    }
}
