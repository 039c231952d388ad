import Foundation
import JWTKit
import RampartPolicy

/// Checks one found token against one JWT rule, in the order Envoy's jwt_authn checks it: the
/// token parses, its issuer is the rule's, `exp` and `nbf` hold, its audience is one the rule
/// accepts, and only then its signature verifies with a key of the rule's JWKS (by `kid`, or by
/// algorithm when the header names none).
struct TokenVerifier: Sendable {
    /// The clock skew allowed on `exp` and `nbf`, in whole seconds (Envoy's default).
    static let clockSkew: UInt64 = 60

    /// Where keys come from.
    let cache: JWKSCache

    /// Verifies `found` for `provider` at `now`: the verified token, or why the rule refuses it.
    func verify(_ found: FoundToken, by provider: JWTProvider, now: Date) async -> Result<VerifiedToken, JWTFailure> {
        guard let (header, payload, _) = try? DefaultJWTParser().parse(Array(found.token.utf8), as: ClaimsPayload.self)
        else {
            return .failure(
                JWTFailure(
                    .malformed, "the token in \(found.locationDescription) is not a JWT (\(TokenShape.problem(found.token))): send a signed JWT of three base64url parts",
                    envoyText: TokenShape.envoyStatus(found.token)))
        }
        if let problem = StrictTokenJSON.problem(found.token) {
            return .failure(
                JWTFailure(
                    .malformed, "the token in \(found.locationDescription) \(problem): send a token whose header and payload are plain JSON objects",
                    envoyText: problem.contains("header") ? "Jwt header is an invalid JSON" : "Jwt payload is an invalid JSON"))
        }
        if let (problem, envoyText) = Self.headerProblem(header) {
            return .failure(JWTFailure(.malformed, "the token in \(found.locationDescription) \(problem)", envoyText: envoyText))
        }
        if let (problem, envoyText) = Self.claimTypeProblem(payload) {
            return .failure(
                JWTFailure(
                    .malformed, "the token in \(found.locationDescription) \(problem): the issuer must follow RFC 7519's claim types", envoyText: envoyText))
        }
        let rule = provider.rule
        let issuer = payload.string("iss")
        guard rule.issuer.isEmpty || rule.issuer == issuer else {
            return .failure(JWTFailure(.unknownIssuer, "the token in \(found.locationDescription) has issuer \(issuer ?? "<no iss claim>"), but \(provider.policy) jwtRules[\(provider.ruleIndex)], which reads that location, accepts only \(rule.issuer): use a token from that issuer or add a jwtRule for this one"))
        }
        let named = issuer ?? rule.issuer
        if let failure = Self.timeProblem(payload, issuer: named, now: now) { return .failure(failure) }
        if !rule.audiences.isEmpty,
            !payload.audiences.map(JWTProvider.sanitizedAudience).contains(
                where: rule.audiences.map(JWTProvider.sanitizedAudience).contains)
        {
            let got = payload.audiences.isEmpty ? "no aud claim" : "aud [\(payload.audiences.joined(separator: ", "))]"
            return .failure(JWTFailure(.audienceNotAllowed, "the token of issuer \(named) has \(got), but \(provider.policy) jwtRules[\(provider.ruleIndex)] accepts only [\(rule.audiences.joined(separator: ", "))]: request a token for one of those audiences"))
        }
        switch await verifySignature(found, header: header, issuer: named, with: provider) {
        case .failure(let failure):
            return .failure(failure)
        case .success(let claims):
            let subject = claims.string("sub")
            let principal = claims.string("iss").flatMap { iss in subject.map { "\(iss)/\($0)" } }
            return .success(VerifiedToken(found: found, provider: provider, claims: claims.claims, requestPrincipal: principal))
        }
    }

    /// The payload as signed, once a key of the rule's JWKS verifies the token's signature.
    private func verifySignature(
        _ found: FoundToken, header: JWTHeader, issuer: String, with provider: JWTProvider
    ) async -> Result<ClaimsPayload, JWTFailure> {
        let rule = provider.rule
        let source = JWKSSource(rule: rule)
        let timeout = Duration.milliseconds(rule.timeoutMilliseconds ?? JWTProvider.defaultTimeoutMilliseconds)
        let keySet: JWKSKeySet
        switch await cache.keys(for: source, timeout: timeout) {
        case .success(let keys): keySet = keys
        case .failure(let error):
            return .failure(JWTFailure(.keysUnavailable, "the keys of issuer \(issuer) (\(provider.policy) jwtRules[\(provider.ruleIndex)]) are unavailable: \(error.reason)"))
        }
        let kid = header.kid
        let algorithm = header.alg ?? "<none>"
        guard !keySet.keys.isEmpty else {
            return .failure(JWTFailure(.noKeys, "the JWKS of issuer \(issuer) from \(source) holds no key: publish the issuer's keys there"))
        }
        let candidates = keySet.candidates(kid: kid, algorithm: algorithm)
        guard !candidates.isEmpty else {
            let known = keySet.kids.sorted().joined(separator: ", ")
            return .failure(JWTFailure(.unknownKid, "the token's kid \(kid ?? "") is not in the JWKS of issuer \(issuer) from \(source) (kids: \(known.isEmpty ? "none" : known)): the token was signed by a key the issuer does not publish"))
        }
        let usable = candidates.filter { $0.algorithm == algorithm }
        guard !usable.isEmpty else {
            let algorithms = JWKSKeySet.algorithmNames(of: candidates)
            let which = kid.map { "key \($0) of issuer \(issuer)" } ?? "the keys of issuer \(issuer)"
            return .failure(JWTFailure(.algorithmMismatch, "the token's alg is \(algorithm), but \(which) from \(source) can verify only \(algorithms): sign with one of those algorithms"))
        }
        for key in usable {
            if let verified = try? await key.verify(found.token, as: ClaimsPayload.self) { return .success(verified) }
        }
        let which = usable.count == 1 ? "key \(usable[0].kid ?? "without kid") (\(algorithm))" : "any \(algorithm) key"
        return .failure(JWTFailure(.badSignature, "the token's signature does not verify with \(which) of issuer \(issuer) from \(source): the token was altered or signed by another key"))
    }

    /// What in the header makes the token unverifiable before any key is tried: an unsigned token
    /// (`alg` none or missing), or a `kid` that is not a string (Envoy's JwtHeaderBadKid).
    static func headerProblem(_ header: JWTHeader) -> (String, envoyText: String)? {
        guard let algorithm = header.alg, algorithm.lowercased() != "none" else {
            return (
                "is unsigned (alg \(header.alg ?? "missing")): only signed tokens are accepted; send a token signed by the issuer",
                header.alg == nil ? "Jwt header [alg] field is required and must be a string" : "Jwt header [alg] is not supported"
            )
        }
        if let kid = header.fields["kid"], kid.asString == nil {
            return ("has a kid that is not a string: the issuer must name its keys with strings", "Jwt header [kid] field is not a string")
        }
        return nil
    }

    /// What makes the payload's registered claims unreadable to Envoy's JWT library, if anything:
    /// `iss`, `sub` and `jti` must be strings, `aud` a string or a list of strings, and `exp`,
    /// `nbf` and `iat` non-negative numbers. Such a token is refused, whatever its signature.
    static func claimTypeProblem(_ payload: ClaimsPayload) -> (String, envoyText: String)? {
        for name in ["iss", "sub", "jti"] {
            if let value = payload.members[name], value.stringValue == nil {
                return ("has a \(name) claim that is not a string", "Jwt payload [\(name)] field is not a string")
            }
        }
        switch payload.members["aud"] {
        case nil, .string?: break
        case .array(let items)? where items.allSatisfy({ $0.stringValue != nil }): break
        default: return ("has an aud claim that is neither a string nor a list of strings", "Jwt payload [aud] field is not a string or string list")
        }
        for name in ["exp", "nbf", "iat"] {
            guard let value = payload.members[name] else { continue }
            guard case .number(let seconds) = value else {
                return ("has an \(name) claim that is not a non-negative number of seconds", "Jwt payload [\(name)] field is not an integer")
            }
            guard seconds >= 0, seconds.isFinite else {
                return ("has an \(name) claim that is not a non-negative number of seconds", "Jwt payload [\(name)] field is not a positive 64 bit integer")
            }
            guard seconds < 18_446_744_073_709_551_616 else {
                return ("has an \(name) claim too large for a time (at least 2^64 seconds)", "Jwt payload [\(name)] field is not a positive 64 bit integer")
            }
        }
        return nil
    }

    /// Whether `exp` has passed or `nbf` is yet to come at `now`, compared in whole seconds with
    /// the skew, as Envoy does; a claim of 0 counts as absent.
    static func timeProblem(_ payload: ClaimsPayload, issuer: String, now: Date) -> JWTFailure? {
        let seconds = UInt64(max(0, now.timeIntervalSince1970.rounded(.down)))
        let iso = ISO8601DateFormatter()
        func text(_ value: UInt64) -> String { iso.string(from: Date(timeIntervalSince1970: Double(value))) }
        if let exp = payload.seconds("exp"), exp != 0, seconds > exp, seconds - exp > clockSkew {
            return JWTFailure(.expired, "the token of issuer \(issuer) expired at \(text(exp)) (now \(text(seconds)), \(clockSkew) s skew allowed): ask the issuer for a fresh token")
        }
        if let nbf = payload.seconds("nbf"), nbf != 0, nbf > seconds, nbf - seconds > clockSkew {
            return JWTFailure(.notYetValid, "the token of issuer \(issuer) is not valid before \(text(nbf)) (now \(text(seconds)), \(clockSkew) s skew allowed): check the issuer's clock")
        }
        return nil
    }
}
