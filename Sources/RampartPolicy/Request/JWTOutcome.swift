/// The outcome of looking for and verifying a JWT, as the authentication layer hands it to policy.
///
/// The corpus gives this abstractly; in the proxy, RampartAuthn extracts the token from the
/// locations `JWTProvider` lists, verifies its signature against the issuer's JWKS and fills this in.
/// Policy then decides which issuers and audiences the workload accepts and what the token grants.
public struct JWTOutcome: Sendable, Hashable {
    /// Whether a token was found in a configured location.
    public let present: Bool
    /// Whether the token verified (signature, expiry); `false` means 401.
    public let valid: Bool
    /// The payload claims, when known.
    public let claims: ClaimValue?
    /// `iss/sub`, when the verifier computed it.
    public let requestPrincipal: String?
    /// Where the token was found (for explanations).
    public let location: String?
    /// The raw token, when given.
    public let raw: String?
    /// Why verification failed, when it did.
    public let failure: String?
    /// Whether the token was refused only because its audience is not one the rule accepts: the
    /// request is then answered 403, as Envoy answers it, instead of 401.
    public let audienceRefused: Bool
    /// Whether the token failed a rule whose `presence` is IGNORED: the request is then treated as
    /// one without a token.
    public let ignored: Bool
    /// The rule that verified the token, when the verifier says: of several rules for one issuer,
    /// the one whose claim headers, payload header and space-delimited claims then apply.
    public let acceptedBy: AcceptingRule?

    /// Creates an outcome.
    public init(
        present: Bool, valid: Bool = true, claims: ClaimValue? = nil, requestPrincipal: String? = nil,
        location: String? = nil, raw: String? = nil, failure: String? = nil, audienceRefused: Bool = false,
        ignored: Bool = false, acceptedBy: JWTRule? = nil
    ) {
        self.present = present
        self.valid = valid
        self.claims = claims
        self.requestPrincipal = requestPrincipal
        self.location = location
        self.raw = raw
        self.failure = failure
        self.audienceRefused = audienceRefused
        self.ignored = ignored
        self.acceptedBy = acceptedBy.map(AcceptingRule.init)
    }

    /// No token.
    public static let absent = JWTOutcome(present: false)

    /// The `iss` claim, or the part of the request principal before its first `/`.
    public var issuer: String? {
        if case .string(let issuer)? = claims?["iss"] { return issuer }
        guard let principal = requestPrincipal, let slash = principal.firstIndex(of: "/") else { return nil }
        return String(principal[..<slash])
    }
}

/// The rule that verified a token, held by reference so that a request's token outcome stays small.
public final class AcceptingRule: Sendable, Hashable {
    public let rule: JWTRule

    init(_ rule: JWTRule) {
        self.rule = rule
    }

    public static func == (left: AcceptingRule, right: AcceptingRule) -> Bool {
        left.rule == right.rule
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rule)
    }
}
