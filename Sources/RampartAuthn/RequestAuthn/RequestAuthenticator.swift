import Foundation
import RampartPolicy

/// Verifies the JWTs of requests against a workload's RequestAuthentication rules, as Envoy's
/// jwt_authn filter does with the requirement Istio gives it.
///
/// The rules are tried one after the other, sorted by issuer as Istio sorts them. A rule accepts
/// the request when it finds a token in its own locations and every token it finds there verifies
/// for it (Envoy's rule: a good token must not stand beside a bad one); the first rule that
/// accepts decides, and the request principal and claims are those of its first token. A request
/// with no token in any rule's locations is anonymous. Otherwise it is refused, with the last
/// rule's refusal of a token it found that is not "issuer not configured", else with that.
public struct RequestAuthenticator: Sendable {
    /// Where the issuers' keys come from.
    public let cache: JWKSCache
    /// The clock `exp` and `nbf` are checked against.
    public let clock: any AuthnClock

    /// Creates an authenticator on a key cache.
    public init(cache: JWKSCache, clock: any AuthnClock = SystemAuthnClock()) {
        self.cache = cache
        self.clock = clock
    }

    /// Creates an authenticator with its own key cache.
    public init(fetcher: any HTTPFetcher = AsyncHTTPClientFetcher(), clock: any AuthnClock = SystemAuthnClock()) {
        self.init(cache: JWKSCache(fetcher: fetcher, clock: clock), clock: clock)
    }

    /// Finds and verifies the request's tokens with the workload's rules.
    public func authenticate(_ request: AuthzRequest, providers: [JWTProvider]) async -> RequestAuthnResult {
        guard request.transport == .http, !providers.isEmpty else { return .noToken }
        let sanitizing = JWTProvider.sanitizing(providers)
        let anonymous = RequestAuthnResult(outcome: .absent, found: [], verified: [], failure: nil, headerEdits: sanitizing)
        guard !Self.isCORSPreflight(request) else { return anonymous }
        let ordered = JWTProvider.istioOrder(providers)
        let found = TokenExtractor.extract(from: request, providers: ordered)
        guard !found.isEmpty else { return anonymous }
        let verifier = TokenVerifier(cache: cache)
        let now = clock.now
        var refusals: [Refusal] = []
        rules: for provider in ordered {
            var verified: [VerifiedToken] = []
            for token in found where token.providers.contains(provider) {
                switch await verifier.verify(token, by: provider, now: now) {
                case .success(let accepted):
                    verified.append(accepted)
                case .failure(let failure):
                    refusals.append(Refusal(token: token, failure: failure, rule: provider.rule))
                    continue rules
                }
            }
            guard let first = verified.first else { continue }
            let outcome = JWTOutcome(
                present: true, valid: true, claims: first.claims, requestPrincipal: first.requestPrincipal,
                location: first.found.locationDescription, raw: first.found.token)
            return RequestAuthnResult(
                outcome: outcome, found: found, verified: verified, failure: nil,
                headerEdits: sanitizing + verified.flatMap(Self.headerEdits))
        }
        // A token refused by the rules of its issuer, when their presence is IGNORED, is as no
        // token (Envoy's allow_missing_or_failed); one no rule claims, when every rule reading it
        // says IGNORED.
        let claimants = refusals.filter { $0.failure.kind != .unknownIssuer }
        if !refusals.isEmpty, (claimants.isEmpty ? refusals : claimants).allSatisfy({ $0.rule.presence == .ignored }) {
            let refused = Self.refused(refusals, found: found).outcome
            let ignored = JWTOutcome(
                present: true, valid: false, location: refused.location, raw: refused.raw, failure: refused.failure,
                ignored: true)
            return RequestAuthnResult(outcome: ignored, found: found, verified: [], failure: nil, headerEdits: sanitizing)
        }
        return Self.refused(refusals, found: found)
    }

    /// The refusal Envoy's `requires_any` reports: the last one, in the rules' order, that is not
    /// "issuer not configured" (a token meant for another rule), else the first.
    private static func decisive(_ refusals: [Refusal]) -> Refusal? {
        refusals.last { $0.failure.kind != .unknownIssuer } ?? refusals.first
    }

    /// The header edits a verified token's rule asks for (after the sanitizing removals of every
    /// rule's output headers): remove the header or query parameter it came in
    /// (`forwardOriginalToken: false`), the payload in `outputPayloadToHeader`, claims in `outputClaimToHeaders`.
    public static func headerEdits(_ token: VerifiedToken) -> [HeaderEdit] {
        let rule = token.provider.rule
        var edits: [HeaderEdit] = []
        if !rule.forwardOriginalToken {
            switch token.found.location {
            case .header(let name, _): edits.append(.remove(name))
            case .queryParameter(let name): edits.append(.removeQueryParameter(name))
            case .cookie: break  // Envoy leaves a cookie in place.
            }
        }
        if !rule.outputPayloadToHeader.isEmpty {
            edits.append(.set(rule.outputPayloadToHeader.lowercased(), token.payloadSegment))
        }
        for mapping in rule.outputClaimToHeaders {
            let path = mapping.claim.split(separator: ".").map(String.init)
            if let value = token.claims.value(at: path)?.headerValue {
                edits.append(.set(mapping.header.lowercased(), value))
            }
        }
        return edits
    }

    /// Envoy lets CORS preflights through JWT checks: OPTIONS with Origin and Access-Control-Request-Method.
    static func isCORSPreflight(_ request: AuthzRequest) -> Bool {
        request.method == "OPTIONS" && !(request.headers["origin"] ?? "").isEmpty
            && !(request.headers["access-control-request-method"] ?? "").isEmpty
    }

    /// A rule's refusal of one token it found.
    private struct Refusal {
        let token: FoundToken
        let failure: JWTFailure
        let rule: JWTRule
    }

    /// The result when no rule accepted the request. The status comes from the refusal Envoy's
    /// `requires_any` reports: the last one, in the rules' order, that is not "issuer not
    /// configured" (a token meant for another rule), else that one (401, or 403 for an audience
    /// the rule does not accept); the reason gives every rule's refusal when several rules read
    /// the token.
    private static func refused(_ refusals: [Refusal], found: [FoundToken]) -> RequestAuthnResult {
        let decisive = Self.decisive(refusals) ?? refusals[0]
        let reason =
            refusals.count == 1
            ? decisive.failure.reason
            : "no jwtRule accepted the request's token: "
                + refusals.map(\.failure.reason).joined(separator: "; and ")
        let failure = JWTFailure(decisive.failure.kind, reason)
        let outcome = JWTOutcome(
            present: true, valid: false, location: decisive.token.locationDescription, raw: decisive.token.token,
            failure: reason, audienceRefused: failure.kind == .audienceNotAllowed)
        return RequestAuthnResult(outcome: outcome, found: found, verified: [], failure: failure, headerEdits: [])
    }
}
