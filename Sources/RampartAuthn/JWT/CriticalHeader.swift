import JWTKit

/// RFC 7515 section 4.1.11: a JWS whose `crit` header names an extension the recipient does not
/// understand is invalid. Rampart implements none, so any `crit` makes a JWT-SVID or a CA login
/// token invalid, as go-jose (behind go-spiffe) refuses it. Request tokens are read as Envoy's
/// JWT filter reads them, which does not look at `crit`.
enum CriticalHeader {
    static func check(_ header: JWTHeader, what: String) throws(AuthnError) {
        guard header[dynamicMember: "crit"] != nil else { return }
        let listed = header.crit.map { "[" + $0.joined(separator: ", ") + "]" } ?? "a value that is not a list of names"
        throw AuthnError(
            .invalidCredential,
            "the \(what) header's crit holds \(listed), critical extensions Rampart does not implement; RFC 7515 makes such a token invalid: sign it without crit")
    }
}
