import RampartPolicy

/// Where a JWT rule's signing keys come from, in Istio's order of preference.
public enum JWKSSource: Sendable, Hashable, CustomStringConvertible {
    /// `jwks`: a JWKS document written into the rule.
    case inline(String)
    /// `jwksUri`: a JWKS document fetched over HTTP(S).
    case uri(String)
    /// Neither given: the issuer's OIDC discovery document names the JWKS URI.
    case discovery(issuer: String)

    /// The source a rule names: inline `jwks`, else `jwksUri`, else OIDC discovery from `issuer`.
    public init(rule: JWTRule) {
        if !rule.jwks.isEmpty {
            self = .inline(rule.jwks)
        } else if !rule.jwksURI.isEmpty {
            self = .uri(rule.jwksURI)
        } else {
            self = .discovery(issuer: rule.issuer)
        }
    }

    /// The OIDC discovery URL of an issuer: `<issuer>/.well-known/openid-configuration`.
    public static func discoveryURL(issuer: String) -> String {
        JWTRule.discoveryURL(issuer: issuer)
    }

    /// Whether the keys are fetched (and so refreshed) rather than written into the rule.
    public var isRemote: Bool {
        if case .inline = self { return false }
        return true
    }

    /// Where the keys come from, for messages (the words `JWTRule.keySourceText` uses).
    public var description: String {
        switch self {
        case .inline(let json): return JWTRule.keySourceText(jwks: json, jwksURI: "", issuer: "")
        case .uri(let uri): return JWTRule.keySourceText(jwks: "", jwksURI: uri, issuer: "")
        case .discovery(let issuer): return JWTRule.keySourceText(jwks: "", jwksURI: "", issuer: issuer)
        }
    }
}
