import RampartPolicy

/// A token whose signature, issuer, expiry and audience were accepted by one JWT rule.
public struct VerifiedToken: Sendable, Hashable {
    /// The token as found.
    public let found: FoundToken
    /// The rule that accepted it.
    public let provider: JWTProvider
    /// The payload's claims, nested claims kept.
    public let claims: ClaimValue
    /// `iss/sub`, when the token has both.
    public let requestPrincipal: String?

    /// The payload part of the token (base64url), which `outputPayloadToHeader` forwards.
    public var payloadSegment: String {
        let parts = found.token.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 ? String(parts[1]) : ""
    }
}
