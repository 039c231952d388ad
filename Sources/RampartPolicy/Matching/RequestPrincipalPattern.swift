#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `requestPrincipals` (or `request.auth.principal`) value, compared the way Istio compares it:
/// not as one string against `iss/sub`, but as a pattern on the token's issuer and one on its
/// subject.
///
/// The value is split at its last `/`: what comes before is the issuer (which may itself hold
/// slashes, as URLs do), what comes after is the subject. Then:
///
/// | value | issuer | subject |
/// |---|---|---|
/// | `*` | any non-empty | any non-empty |
/// | `*/sub` | any non-empty | exactly `sub` |
/// | `*iss-end/sub` | ends with `iss-end` | exactly `sub` |
/// | `*sub-end` (no `/`) | any non-empty | ends with `sub-end` |
/// | `iss/*` | exactly `iss` | any non-empty |
/// | `iss/sub-start*` | exactly `iss` | starts with `sub-start` |
/// | `iss-start*` (no `/`) | starts with `iss-start` | any non-empty |
/// | `iss/sub` | exactly `iss` | exactly `sub` |
///
/// So `*/sub` does not match a token whose subject is `team/sub`, and `https://issuer*` matches
/// nothing (its last `/` makes `https:/` the issuer), as in Istio.
struct RequestPrincipalPattern: Sendable, Hashable {
    let issuer: StringMatcher
    let subject: StringMatcher

    init(_ value: String) {
        let any = StringMatcher(form: .presence, literal: "")
        let slash = value.lastIndex(of: "/")
        let issuerPart = slash.map { String(value[..<$0]) } ?? value
        let subjectPart = slash.map { String(value[value.index(after: $0)...]) } ?? ""
        if value == "*" {
            issuer = any
            subject = any
        } else if value.hasPrefix("*") {
            if slash != nil {
                issuer = issuerPart == "*" ? any : StringMatcher(form: .suffix, literal: String(issuerPart.dropFirst()))
                subject = StringMatcher(form: .exact, literal: subjectPart)
            } else {
                issuer = any
                subject = StringMatcher(form: .suffix, literal: String(value.dropFirst()))
            }
        } else if value.hasSuffix("*") {
            if slash != nil {
                issuer = StringMatcher(form: .exact, literal: issuerPart)
                subject = subjectPart == "*" ? any : StringMatcher(form: .prefix, literal: String(subjectPart.dropLast()))
            } else {
                issuer = StringMatcher(form: .prefix, literal: String(value.dropLast()))
                subject = any
            }
        } else {
            issuer = StringMatcher(form: .exact, literal: issuerPart)
            subject = StringMatcher(form: .exact, literal: subjectPart)
        }
    }

    /// Whether a token with this issuer and subject matches.
    func matches(issuer value: String, subject: String) -> Bool {
        issuer.matches(value) && self.subject.matches(subject)
    }

    /// The token's issuer and subject, read from its request principal (`iss/sub`): split after
    /// the issuer when its length is known (`issuerLength`, from the token's `iss` claim), else at
    /// the principal's last `/`.
    static func parts(principal: String?, issuerLength: Int) -> (issuer: String, subject: String)? {
        guard let principal else { return nil }
        let bytes = Array(principal.utf8)
        let split = split(bytes.count, issuerLength) { bytes.lastIndex(of: UInt8(ascii: "/")) }
        guard let split else { return (principal, "") }
        return (
            String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[(split + 1)...], as: UTF8.self)
        )
    }

    /// Where the slash between issuer and subject is: after `issuerLength` bytes when that is a
    /// valid length, else where `lastSlash` says (`nil`: no slash).
    @inline(__always)
    static func split(_ count: Int, _ issuerLength: Int, lastSlash: () -> Int?) -> Int? {
        issuerLength >= 0 && issuerLength < count ? issuerLength : lastSlash()
    }

    /// The length of `issuer` when `principal` starts with it followed by a slash, else `-1`.
    static func issuerLength(_ principal: String, _ issuer: String) -> Int {
        let length = issuer.utf8.count
        guard principal.utf8.count > length else { return -1 }
        let fast = principal.utf8.withContiguousStorageIfAvailable { whole in
            issuer.utf8.withContiguousStorageIfAvailable { start in
                whole[length] == UInt8(ascii: "/") && (length == 0 || memcmp(whole.baseAddress!, start.baseAddress!, length) == 0)
            }
        }
        if let fast, let found = fast { return found ? length : -1 }
        let slash = principal.utf8[principal.utf8.index(principal.utf8.startIndex, offsetBy: length)]
        return slash == UInt8(ascii: "/") && principal.utf8.starts(with: issuer.utf8) ? length : -1
    }
}
