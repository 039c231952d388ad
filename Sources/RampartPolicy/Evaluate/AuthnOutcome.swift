/// What request authentication concluded before authorization runs.
struct AuthnOutcome: Sendable {
    /// `iss/sub` of an accepted token.
    let principal: String?
    /// The accepted token's claims as verified (space-delimited claims not yet split).
    let rawClaims: ClaimValue?
    /// The provider that accepted the token.
    let provider: JWTProvider?
    /// Set when the request is rejected before authorization.
    let rejection: Decision.Cause?
    /// The UTF-8 length of the issuer at the start of `principal` (`iss` + `/` + `sub`), or `-1`
    /// when the principal does not start with the token's issuer and a slash.
    var issuerLength = -1

    static let anonymous = AuthnOutcome(principal: nil, rawClaims: nil, provider: nil, rejection: nil)

    /// The accepted token's claims, with space-delimited claims split (computed on each call).
    var claims: ClaimValue? {
        provider.map { $0.normalize(rawClaims) } ?? rawClaims
    }

    /// Applies the workload's JWT providers to the request's token outcome.
    static func evaluate(_ request: AuthzRequest, providers: [JWTProvider]) -> AuthnOutcome {
        guard request.transport == .http, !providers.isEmpty else { return .anonymous }
        guard let jwt = request.jwt, jwt.present else {
            if providers.contains(where: { $0.rule.presence == .required }) {
                return AuthnOutcome(principal: nil, rawClaims: nil, provider: nil, rejection: .jwtRequired)
            }
            return .anonymous
        }
        if isCORSPreflight(request) || jwt.ignored { return .anonymous }
        let outcome = verified(jwt, providers: providers)
        // A token that fails the rule of its issuer, when that rule's presence is IGNORED, is as
        // no token; one no rule claims, when every rule says IGNORED.
        if outcome.rejection != nil {
            let claimed = providers.filter { $0.accepts(issuer: jwt.issuer) }
            let deciding = claimed.isEmpty ? providers : claimed
            if deciding.allSatisfy({ $0.rule.presence == .ignored }) { return .anonymous }
        }
        return outcome
    }

    /// The outcome of a present token against the providers, before `presence: IGNORED` applies.
    private static func verified(_ jwt: JWTOutcome, providers: [JWTProvider]) -> AuthnOutcome {
        guard jwt.valid else {
            let rejection: Decision.Cause = jwt.audienceRefused ? .jwtAudienceNotAllowed : .jwtInvalid(jwt.failure)
            return AuthnOutcome(principal: nil, rawClaims: nil, provider: nil, rejection: rejection)
        }
        let issuer = jwt.issuer
        // Indexes rather than copies of the providers: a provider is a large value.
        guard let firstCandidate = providers.firstIndex(where: { $0.accepts(issuer: issuer) }) else {
            return AuthnOutcome(principal: nil, rawClaims: nil, provider: nil, rejection: .jwtUnknownIssuer(issuer))
        }
        guard providers.contains(where: { $0.accepts(issuer: issuer) && $0.keysAvailable }) else {
            return AuthnOutcome(
                principal: nil, rawClaims: nil, provider: nil,
                rejection: .jwtKeysUnavailable(
                    providers[firstCandidate].rule.keySourceText
                        + (providers[firstCandidate].keysProblem.map { " (\($0))" } ?? " (unreachable, late, or holding no key)")))
        }
        // The rule the verifier names, when it names one: several rules may share an issuer, and
        // the one that verified the token is the one whose outputs and claim splitting apply.
        let named = jwt.acceptedBy.flatMap { accepted in providers.first { $0.rule == accepted.rule } }
        guard
            let provider = named
                ?? providers.first(where: {
                    $0.accepts(issuer: issuer) && $0.keysAvailable && $0.acceptsAudience(jwt.claims)
                })
        else {
            return AuthnOutcome(principal: nil, rawClaims: nil, provider: nil, rejection: .jwtAudienceNotAllowed)
        }
        var principal = jwt.requestPrincipal
        if principal == nil, case .string(let iss)? = jwt.claims?["iss"], case .string(let sub)? = jwt.claims?["sub"] {
            principal = "\(iss)/\(sub)"
        }
        var outcome = AuthnOutcome(principal: principal, rawClaims: jwt.claims, provider: provider, rejection: nil)
        if let principal, let issuer { outcome.issuerLength = RequestPrincipalPattern.issuerLength(principal, issuer) }
        return outcome
    }

    /// Envoy lets CORS preflights through JWT checks: OPTIONS with Origin and Access-Control-Request-Method.
    static func isCORSPreflight(_ request: AuthzRequest) -> Bool {
        request.method == "OPTIONS" && !(request.headers["origin"] ?? "").isEmpty
            && !(request.headers["access-control-request-method"] ?? "").isEmpty
    }

    /// The header changes for the upstream request: `sanitizing` (see `JWTProvider.sanitizing`),
    /// then what the accepted provider asks for.
    func headerEdits(_ jwt: JWTOutcome?, sanitizing: [HeaderEdit]) -> [HeaderEdit] {
        guard let provider else { return sanitizing }
        if provider.rule.outputClaimToHeaders.isEmpty {
            return sanitizing.isEmpty ? provider.fixedHeaderEdits : sanitizing + provider.fixedHeaderEdits
        }
        var edits = sanitizing
        if !provider.rule.forwardOriginalToken {
            for case .header(let name, _) in provider.locations { edits.append(.remove(name)) }
        }
        if !provider.rule.outputPayloadToHeader.isEmpty {
            edits.append(.setPayload(provider.rule.outputPayloadToHeader))
        }
        for mapping in provider.rule.outputClaimToHeaders {
            let path = mapping.claim.split(separator: ".").map(String.init)
            if let value = jwt?.claims?.value(at: path)?.headerValue {
                edits.append(.set(mapping.header.lowercased(), value))
            }
        }
        return edits
    }
}

/// A change to the request headers forwarded upstream after JWT authentication.
public enum HeaderEdit: Sendable, Hashable {
    /// Remove the header that carried the token (`forwardOriginalToken: false`).
    case remove(String)
    /// Set the header to the token's base64url payload (filled by the verifier, which has the bytes).
    case setPayload(String)
    /// Set the header to a claim's value.
    case set(String, String)
    /// Remove the query parameter that carried the token (`forwardOriginalToken: false`).
    case removeQueryParameter(String)
}
