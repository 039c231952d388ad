/// A SPIFFE ID: `spiffe://<trust-domain><path>`.
///
/// Parsing follows the SPIFFE ID specification as go-spiffe implements it: lowercase
/// scheme, a non-empty trust domain of `[a-z0-9._-]`, and an optional path of non-empty
/// segments of `[a-zA-Z0-9._-]` that are neither `.` nor `..`, with no trailing slash,
/// query, fragment, port, user info or percent-encoding. A parsed value is always valid.
public struct SPIFFEID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The trust domain the ID belongs to.
    public let trustDomain: TrustDomain
    /// The path, empty or starting with `/`.
    public let path: String

    private static let scheme = "spiffe://"

    /// The longest SPIFFE ID, in bytes, Rampart makes: the specification asks every implementation
    /// to accept IDs up to 2048 bytes and to generate none longer. Longer IDs are still parsed.
    public static let maxLength = 2048

    /// Parses a SPIFFE ID from its string form.
    public init(parsing string: String) throws(IdentityError) {
        guard !string.isEmpty else {
            throw IdentityError(.empty, "SPIFFE ID cannot be empty: expected spiffe://<trust-domain>/<path>")
        }
        guard string.hasPrefix(Self.scheme) else {
            throw IdentityError(
                .badScheme,
                "SPIFFE ID \"\(string)\": scheme is missing or invalid; it must start with lowercase spiffe://"
            )
        }
        let rest = string.dropFirst(Self.scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let domain = rest[..<slash]
        guard !domain.isEmpty else {
            throw IdentityError(.missingTrustDomain, "SPIFFE ID \"\(string)\": trust domain is missing after spiffe://")
        }
        do {
            try TrustDomain.validateName(domain)
        } catch {
            throw IdentityError(
                .badTrustDomainCharacter,
                "SPIFFE ID \"\(string)\": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
            )
        }
        let path = String(rest[slash...])
        try Self.validatePath(path, in: string)
        self.trustDomain = TrustDomain(validatedName: String(domain))
        self.path = path
    }

    /// Builds an ID from a trust domain and path segments, validating each segment; an ID longer
    /// than `maxLength` bytes is refused.
    public init(trustDomain: TrustDomain, segments: [String]) throws(IdentityError) {
        let path = try Self.join(segments)
        let length = Self.scheme.utf8.count + trustDomain.name.utf8.count + path.utf8.count
        guard length <= Self.maxLength else {
            throw IdentityError(
                .tooLong,
                "SPIFFE ID would be \(length) bytes long; SPIFFE IDs are at most \(Self.maxLength) bytes: use shorter segments")
        }
        self.trustDomain = trustDomain
        self.path = path
    }

    /// The Istio workload identity `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`.
    public static func workload(
        trustDomain: TrustDomain,
        namespace: String,
        serviceAccount: String
    ) throws(IdentityError) -> SPIFFEID {
        try SPIFFEID(trustDomain: trustDomain, segments: ["ns", namespace, "sa", serviceAccount])
    }

    /// Joins segments into a path (`/a/b`), or the empty path for no segments; each segment must be
    /// a valid one (`validateSegment`), so `""`, `.`, `..` and `a/b` are refused.
    public static func join(_ segments: [String]) throws(IdentityError) -> String {
        for segment in segments {
            try validateSegment(segment)
        }
        return segments.isEmpty ? "" : "/" + segments.joined(separator: "/")
    }

    /// Checks one path segment against the SPIFFE rules.
    public static func validateSegment(_ segment: String) throws(IdentityError) {
        if segment.isEmpty {
            throw IdentityError(.emptySegment, "path cannot contain empty segments")
        }
        if segment == "." || segment == ".." {
            throw IdentityError(.dotSegment, "path cannot contain dot segments (\"\(segment)\")")
        }
        for byte in segment.utf8 where !isPathByteAllowed(byte) {
            throw IdentityError(
                .badPathCharacter,
                "path segment \"\(segment)\": path segment characters are limited to letters, numbers, dots, dashes, and underscores"
            )
        }
    }

    private static func validatePath(_ path: String, in whole: String) throws(IdentityError) {
        guard !path.isEmpty else { return }
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (index, raw) in segments.enumerated() {
            let segment = String(decoding: raw, as: UTF8.self)
            if segment.isEmpty {
                if index == segments.count - 1 {
                    throw IdentityError(.trailingSlash, "SPIFFE ID \"\(whole)\": path cannot have a trailing slash")
                }
                throw IdentityError(.emptySegment, "SPIFFE ID \"\(whole)\": path cannot contain empty segments")
            }
            do {
                try validateSegment(segment)
            } catch {
                throw IdentityError(error.code, "SPIFFE ID \"\(whole)\": \(error.reason)")
            }
        }
    }

    private static func isPathByteAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    /// The ID in its string form.
    public var string: String { "spiffe://\(trustDomain.name)\(path)" }

    public var description: String { string }

    /// The ID without its scheme, as Istio writes principals: `cluster.local/ns/a/sa/b`.
    public var principal: String { "\(trustDomain.name)\(path)" }

    /// The namespace and service account when the path has Istio's `/ns/<ns>/sa/<sa>` shape.
    public var istioWorkload: (namespace: String, serviceAccount: String)? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard parts.count == 4, parts[0] == "ns", parts[2] == "sa" else { return nil }
        return (parts[1], parts[3])
    }

    /// Whether the ID can name an X.509-SVID leaf: it needs a non-empty path.
    public var isWorkloadIdentity: Bool { !path.isEmpty }

    public static func < (lhs: SPIFFEID, rhs: SPIFFEID) -> Bool { lhs.string < rhs.string }
}
