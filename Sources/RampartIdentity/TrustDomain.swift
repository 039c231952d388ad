/// A SPIFFE trust domain: the authority part of a SPIFFE ID, such as `cluster.local`.
///
/// The name is limited to lowercase ASCII letters, digits, `.`, `-` and `_`, as the
/// SPIFFE ID specification (section 2.1) requires. The value is immutable and always valid.
public struct TrustDomain: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The trust domain name, without scheme.
    public let name: String

    /// Parses a trust domain name, or the trust domain of a full `spiffe://` ID.
    public init(_ string: String) throws(IdentityError) {
        if string.contains(":/") {
            self = try SPIFFEID(parsing: string).trustDomain
            return
        }
        guard !string.isEmpty else {
            throw IdentityError(.missingTrustDomain, "trust domain is missing: give a name such as cluster.local")
        }
        try Self.validateName(string)
        self.name = string
    }

    init(validatedName: String) {
        self.name = validatedName
    }

    /// The longest trust domain name, in bytes, a CA is made for: the SPIFFE ID specification
    /// (section 2.3) bounds it by the 255 bytes RFC 3986 allows a URI's host. Longer names are still
    /// parsed, as other implementations parse them.
    public static let maxLength = 255

    /// Throws unless a CA can issue identities in this trust domain: its name is at most
    /// `maxLength` bytes.
    public func checkIssuable() throws(IdentityError) {
        let length = name.utf8.count
        guard length <= Self.maxLength else {
            throw IdentityError(
                .tooLong,
                "trust domain is \(length) bytes long; a trust domain name is at most \(Self.maxLength) bytes (SPIFFE ID specification, section 2.3): choose a shorter name"
            )
        }
    }

    static func validateName(_ name: some StringProtocol) throws(IdentityError) {
        for byte in name.utf8 where !Self.isAllowed(byte) {
            throw IdentityError(
                .badTrustDomainCharacter,
                "trust domain \"\(name)\" has a character that is not allowed: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
            )
        }
    }

    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    /// The trust domain as a SPIFFE ID with no path: `spiffe://<name>`.
    public var idString: String { "spiffe://\(name)" }

    public var description: String { name }

    public static func < (lhs: TrustDomain, rhs: TrustDomain) -> Bool { lhs.name < rhs.name }

    /// Istio's default trust domain.
    public static let clusterLocal = TrustDomain(validatedName: "cluster.local")
}
