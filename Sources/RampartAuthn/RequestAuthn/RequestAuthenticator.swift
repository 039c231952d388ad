import Foundation
import RampartPolicy

/// Verifies the JWTs of requests against a workload's RequestAuthentication rules, as Envoy's
/// jwt_authn filter does for Istio.
///
/// Every token found in a location some rule reads must verify (Envoy's rule: a request must not
/// carry a good token next to a bad one). A request with several valid tokens in different
/// locations takes its request principal and claims from the first, in rule and location order;
/// Istio leaves that case undefined.
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
        let found = TokenExtractor.extract(from: request, providers: providers)
        guard !found.isEmpty else { return anonymous }
        let verifier = TokenVerifier(cache: cache)
        let now = clock.now
        var verified: [VerifiedToken] = []
        for token in found {
            switch await verifier.verify(token, now: now) {
            case .success(let accepted):
                verified.append(accepted)
            case .failure(let failure):
                return Self.refused(token, failure, found: found, verified: verified, raw: token.token)
            }
        }
        let first = verified[0]
        let outcome = JWTOutcome(
            present: true, valid: true, claims: first.claims, requestPrincipal: first.requestPrincipal,
            location: first.found.locationDescription, raw: first.found.token)
        return RequestAuthnResult(
            outcome: outcome, found: found, verified: verified, failure: nil,
            headerEdits: sanitizing + verified.flatMap(Self.headerEdits))
    }

    /// The header edits a verified token's rule asks for (after the sanitizing removals of every
    /// rule's output headers): remove the header it came in
    /// (`forwardOriginalToken: false`), the payload in `outputPayloadToHeader`, claims in `outputClaimToHeaders`.
    public static func headerEdits(_ token: VerifiedToken) -> [HeaderEdit] {
        let rule = token.provider.rule
        var edits: [HeaderEdit] = []
        if !rule.forwardOriginalToken, case .header(let name, _) = token.found.location {
            edits.append(.remove(name))
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

    /// The result for a refused token. An audience refusal hands policy the verified claims, so that
    /// policy answers 403 as Envoy does; any other refusal is an invalid token (401).
    private static func refused(
        _ token: FoundToken, _ failure: JWTFailure, found: [FoundToken], verified: [VerifiedToken], raw: String
    ) -> RequestAuthnResult {
        let outcome: JWTOutcome
        if let claims = failure.verifiedClaims {
            var principal: String?
            if case .string(let iss)? = claims["iss"], case .string(let sub)? = claims["sub"] { principal = "\(iss)/\(sub)" }
            outcome = JWTOutcome(
                present: true, valid: true, claims: claims, requestPrincipal: principal,
                location: token.locationDescription, raw: raw, failure: failure.reason)
        } else {
            outcome = JWTOutcome(
                present: true, valid: false, location: token.locationDescription, raw: raw, failure: failure.reason)
        }
        return RequestAuthnResult(outcome: outcome, found: found, verified: verified, failure: failure, headerEdits: [])
    }
}
