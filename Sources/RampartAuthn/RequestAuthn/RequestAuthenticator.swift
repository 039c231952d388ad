import Foundation
import RampartPolicy

/// Verifies the JWTs of requests against a workload's RequestAuthentication rules, as Envoy's
/// jwt_authn filter does with the requirement Istio gives it.
///
/// The rules are tried one after the other, sorted by issuer as Istio sorts them. A rule accepts
/// the request when it finds a token in its own locations and every token it finds there verifies
/// for it (Envoy's rule: a good token must not stand beside a bad one); the first rule that
/// accepts decides, and the request principal and claims are those of its first token. A request
/// with no token in any rule's locations is anonymous. Otherwise it is refused as Envoy refuses it
/// under Istio's requirement (see `decisive`).
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

    /// Fetches the keys of `providers` that have not been fetched yet, as istiod fetches them when
    /// it builds a proxy's config: the first token then finds them there.
    public func prefetch(_ providers: [JWTProvider]) async {
        await withTaskGroup(of: Void.self) { group in
            for provider in providers {
                let timeout = Duration.milliseconds(provider.rule.timeoutMilliseconds ?? JWTProvider.defaultTimeoutMilliseconds)
                group.addTask { _ = await cache.keys(for: JWKSSource(rule: provider.rule), timeout: timeout) }
            }
        }
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
            // Envoy checks a rule's tokens from the last it extracted (cookies, then parameters,
            // then headers) and stops at the first that fails.
            for token in Self.envoyOrder(found.filter { $0.providers.contains(provider) }).reversed() {
                switch await verifier.verify(token, by: provider, now: now) {
                case .success(let accepted):
                    verified.insert(accepted, at: 0)
                case .failure(let failure):
                    refusals.append(Refusal(token: token, failure: failure, rule: provider.rule))
                    continue rules
                }
            }
            guard let first = verified.first else { continue }
            let outcome = JWTOutcome(
                present: true, valid: true, claims: first.claims, requestPrincipal: first.requestPrincipal,
                location: first.found.locationDescription, raw: first.found.token, acceptedBy: provider.rule)
            return RequestAuthnResult(
                outcome: outcome, found: found, verified: verified, failure: nil,
                headerEdits: Self.once(sanitizing + verified.flatMap(Self.headerEdits)))
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

    /// The edits without repeats, in their order: two tokens taken from one header remove it once.
    static func once(_ edits: [HeaderEdit]) -> [HeaderEdit] {
        var seen = Set<HeaderEdit>()
        return edits.filter { seen.insert($0).inserted }
    }

    /// The refusal Envoy reports under Istio's requirement, `requires_any[P1…Pn,
    /// requires_all[requires_any[Pi, allow_missing]…]]` (one rule: `requires_any[P1,
    /// allow_missing]`), given one refusal per refusing rule in the rules' order: the `requires_all`
    /// comes last and reports the first rule's refusal, which `requires_any` keeps unless it is
    /// "issuer not configured" (a token meant for another rule); then the last refusal that is not
    /// that, else that.
    static func decisive(_ refusals: [Refusal]) -> Refusal? {
        guard let first = refusals.first else { return nil }
        guard first.failure.kind == .unknownIssuer else { return first }
        return refusals.last { $0.failure.kind != .unknownIssuer } ?? first
    }

    /// A rule's tokens in the order Envoy's extractor lists them: headers, then query parameters,
    /// then cookies, each kind by its location's name (a header's name and prefix), the values of
    /// one header in the order sent.
    static func envoyOrder(_ tokens: [FoundToken]) -> [FoundToken] {
        func key(_ location: JWTProvider.TokenLocation) -> (Int, String) {
            switch location {
            case .header(let name, let prefix): return (0, name.lowercased() + prefix)
            case .queryParameter(let name): return (1, name)
            case .cookie(let name): return (2, name)
            }
        }
        return tokens.enumerated().sorted { left, right in
            let (a, b) = (key(left.element.location), key(right.element.location))
            return a != b ? a < b : left.offset < right.offset
        }.map(\.element)
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
    struct Refusal {
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
        // With several tokens in the request, each refusal says which token it is about.
        func said(_ refusal: Refusal) -> String {
            let reason = refusal.failure.reason
            guard found.count > 1, !reason.hasPrefix("the token in ") else { return reason }
            return "the token in \(refusal.token.locationDescription): \(reason)"
        }
        let reason =
            refusals.count == 1
            ? said(decisive)
            : "no jwtRule accepted the request's token: "
                + refusals.map(said).joined(separator: "; and ")
        let failure = JWTFailure(decisive.failure.kind, reason, envoyText: decisive.failure.envoyText)
        let outcome = JWTOutcome(
            present: true, valid: false, location: decisive.token.locationDescription, raw: decisive.token.token,
            failure: reason, audienceRefused: failure.kind == .audienceNotAllowed)
        return RequestAuthnResult(outcome: outcome, found: found, verified: [], failure: failure, headerEdits: [])
    }
}
