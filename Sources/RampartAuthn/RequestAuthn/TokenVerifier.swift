import Foundation
import JWTKit
import RampartPolicy

/// Checks one found token against the rules that read its location: the rule for its issuer, that
/// rule's keys (by `kid`, or by algorithm when the header names none), then expiry and audience.
struct TokenVerifier: Sendable {
    /// The clock skew allowed on `exp` and `nbf` (Envoy's default).
    static let clockSkew: TimeInterval = 60

    /// Where keys come from.
    let cache: JWKSCache

    /// Verifies `found` at `now`; the value says which rule accepted it, or why none did.
    func verify(_ found: FoundToken, now: Date) async -> Result<VerifiedToken, JWTFailure> {
        let header: JWTHeader
        let payload: ClaimsPayload
        do {
            (header, payload, _) = try DefaultJWTParser().parse(Array(found.token.utf8), as: ClaimsPayload.self)
        } catch {
            return .failure(JWTFailure(.malformed, "the token in \(found.locationDescription) is not a JWT (\(ErrorText.describe(error))): send a signed JWT of three base64url parts"))
        }
        if let problem = Self.claimTypeProblem(payload) {
            return .failure(JWTFailure(.malformed, "the token in \(found.locationDescription) \(problem): the issuer must follow RFC 7519's claim types"))
        }
        let issuer = payload.string("iss")
        let candidates = found.providers.filter { $0.rule.issuer.isEmpty || $0.rule.issuer == issuer }
        guard !candidates.isEmpty else {
            let accepted = found.providers.map(\.rule.issuer).joined(separator: ", ")
            return .failure(JWTFailure(.unknownIssuer, "the token in \(found.locationDescription) has issuer \(issuer ?? "<no iss claim>"), but the rules reading that location accept only \(accepted): use a token from one of those issuers or add a jwtRule for this one"))
        }
        var failures: [JWTFailure] = []
        for provider in candidates {
            switch await verify(found, header: header, payload: payload, with: provider, now: now) {
            case .success(let verified): return .success(verified)
            case .failure(let failure): failures.append(failure)
            }
        }
        // A rule that got as far as the audience saw a genuine token; its answer is the most telling.
        return .failure(failures.first { $0.kind == .audienceNotAllowed } ?? failures[0])
    }

    private func verify(
        _ found: FoundToken, header: JWTHeader, payload: ClaimsPayload, with provider: JWTProvider, now: Date
    ) async -> Result<VerifiedToken, JWTFailure> {
        let rule = provider.rule
        let issuer = payload.string("iss") ?? rule.issuer
        let source = JWKSSource(rule: rule)
        let timeout = Duration.milliseconds(rule.timeoutMilliseconds ?? JWTProvider.defaultTimeoutMilliseconds)
        let keySet: JWKSKeySet
        switch await cache.keys(for: source, timeout: timeout) {
        case .success(let keys): keySet = keys
        case .failure(let error):
            return .failure(JWTFailure(.keysUnavailable, "the keys of issuer \(issuer) (\(provider.policy) jwtRules[\(provider.ruleIndex)]) are unavailable: \(error.reason)"))
        }
        let kid = header.kid
        let algorithm = header.alg
        let keys = keySet.candidates(kid: kid, algorithm: algorithm)
        guard !keys.isEmpty else {
            if let kid {
                let known = keySet.kids.sorted().joined(separator: ", ")
                return .failure(JWTFailure(.unknownKid, "the token's kid \(kid) is not in the JWKS of issuer \(issuer) from \(source) (kids: \(known.isEmpty ? "none" : known)): the token was signed by a key the issuer does not publish"))
            }
            let algorithms = Set(keySet.keys.map(\.algorithm)).sorted().joined(separator: ", ")
            return .failure(JWTFailure(.algorithmMismatch, "the token names no kid and its alg \(algorithm ?? "<none>") matches no key of issuer \(issuer) from \(source) (algorithms: \(algorithms)): sign with one of those algorithms"))
        }
        var verified: ClaimsPayload?
        var lastFailure: JWTFailure?
        // A key of the token's algorithm that did not verify says more than one of another algorithm.
        var signatureFailure: JWTFailure?
        for key in keys {
            guard key.algorithm == algorithm else {
                lastFailure = JWTFailure(.algorithmMismatch, "the token's alg is \(algorithm ?? "<none>") but key \(key.kid ?? "without kid") of issuer \(issuer) is \(key.algorithm): the token was not signed with that key")
                continue
            }
            do {
                verified = try await key.verify(found.token, as: ClaimsPayload.self)
                break
            } catch {
                signatureFailure = JWTFailure(.badSignature, "the token's signature does not verify with key \(key.kid ?? "without kid") (\(key.algorithm)) of issuer \(issuer) from \(source): the token was altered or signed by another key")
            }
        }
        guard let claims = verified else {
            return .failure(signatureFailure ?? lastFailure ?? JWTFailure(.badSignature, "the token's signature does not verify with any key of issuer \(issuer)"))
        }
        if let failure = checkTimes(claims, issuer: issuer, now: now) { return .failure(failure) }
        if !rule.audiences.isEmpty,
            !claims.audiences.map(JWTProvider.sanitizedAudience).contains(
                where: rule.audiences.map(JWTProvider.sanitizedAudience).contains)
        {
            let got = claims.audiences.isEmpty ? "no aud claim" : "aud [\(claims.audiences.joined(separator: ", "))]"
            return .failure(JWTFailure(.audienceNotAllowed, "the token of issuer \(issuer) has \(got), but \(provider.policy) jwtRules[\(provider.ruleIndex)] accepts only [\(rule.audiences.joined(separator: ", "))]: request a token for one of those audiences",
                verifiedClaims: claims.claims))
        }
        let subject = claims.string("sub")
        let principal = (claims.string("iss")).flatMap { iss in subject.map { "\(iss)/\($0)" } }
        return .success(VerifiedToken(found: found, provider: provider, claims: claims.claims, requestPrincipal: principal))
    }

    /// What makes the payload's registered claims unreadable to Envoy's JWT library, if anything:
    /// `iss`, `sub` and `jti` must be strings, `aud` a string or a list of strings, and `exp`,
    /// `nbf` and `iat` non-negative numbers. Such a token is refused, whatever its signature.
    static func claimTypeProblem(_ payload: ClaimsPayload) -> String? {
        for name in ["iss", "sub", "jti"] {
            if let value = payload.members[name], value.stringValue == nil {
                return "has a \(name) claim that is not a string"
            }
        }
        switch payload.members["aud"] {
        case nil, .string?: break
        case .array(let items)? where items.allSatisfy({ $0.stringValue != nil }): break
        default: return "has an aud claim that is neither a string nor a list of strings"
        }
        for name in ["exp", "nbf", "iat"] {
            guard let value = payload.members[name] else { continue }
            guard case .number(let seconds) = value, seconds >= 0, seconds.isFinite else {
                return "has an \(name) claim that is not a non-negative number of seconds"
            }
        }
        return nil
    }

    private func checkTimes(_ claims: ClaimsPayload, issuer: String, now: Date) -> JWTFailure? {
        let iso = ISO8601DateFormatter()
        if let exp = claims.date("exp"), now > exp.addingTimeInterval(Self.clockSkew) {
            return JWTFailure(.expired, "the token of issuer \(issuer) expired at \(iso.string(from: exp)) (now \(iso.string(from: now)), \(Int(Self.clockSkew)) s skew allowed): ask the issuer for a fresh token")
        }
        if let nbf = claims.date("nbf"), nbf > now.addingTimeInterval(Self.clockSkew) {
            return JWTFailure(.notYetValid, "the token of issuer \(issuer) is not valid before \(iso.string(from: nbf)) (now \(iso.string(from: now)), \(Int(Self.clockSkew)) s skew allowed): check the issuer's clock")
        }
        return nil
    }
}
