import Foundation
import JWTKit
import RampartIdentity

/// Verifies JWTs from trusted issuers and maps their subject to a SPIFFE ID, as Istio maps
/// Kubernetes service-account tokens: `system:serviceaccount:<ns>:<sa>` becomes
/// `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
public actor JWTAuthenticator {
    /// The audience a token must carry; Istio's CA uses `istio-ca`.
    public nonisolated let audience: String
    /// The trust domain subjects are mapped into.
    public nonisolated let trustDomain: TrustDomain
    private let issuers: [String: TrustedIssuer]
    private var keySets: [String: LoadedKeys] = [:]
    private let refetchInterval: TimeInterval
    private let fetcher: any HTTPFetcher

    private struct LoadedKeys {
        let keySet: JWKSKeySet
        let fetchedAt: Date
        var kids: Set<String> { keySet.kids }
    }

    /// Creates an authenticator; keys load on first use, URLs through `fetcher`.
    public init(
        issuers: [TrustedIssuer], audience: String = "istio-ca", trustDomain: TrustDomain, refetchInterval: TimeInterval = 30,
        fetcher: any HTTPFetcher = AsyncHTTPClientFetcher()
    ) {
        self.fetcher = fetcher
        self.issuers = Dictionary(issuers.map { ($0.issuer, $0) }, uniquingKeysWith: { _, last in last })
        self.audience = audience
        self.trustDomain = trustDomain
        self.refetchInterval = refetchInterval
    }

    /// Whether any issuer is configured.
    public nonisolated var isEnabled: Bool { !issuers.isEmpty }

    /// Loads every issuer's keys now, so that a bad key source fails at start-up rather than on first use.
    public func preload(now: Date = Date()) async throws(AuthnError) {
        for issuer in issuers.values {
            keySets[issuer.issuer] = try await Self.load(issuer, now: now, fetcher: fetcher)
        }
    }

    /// Verifies `token` at `now` and returns the SPIFFE ID it grants.
    public func authenticate(_ token: String, now: Date = Date()) async throws(AuthnError) -> SPIFFEID {
        let parser = DefaultJWTParser()
        let header: JWTHeader
        let routed: IssuerOnlyClaims
        do {
            (header, routed, _) = try parser.parse(Array(token.utf8), as: IssuerOnlyClaims.self)
        } catch {
            throw AuthnError(.invalidCredential, "bearer token is not a JWT (\(error)): send a bootstrap token from 'rampart token create' or a signed JWT")
        }
        try CriticalHeader.check(header, what: "JWT")
        guard let iss = routed.iss?.value else {
            throw AuthnError(.invalidCredential, "JWT has no iss claim: the CA trusts tokens by issuer")
        }
        guard let issuer = issuers[iss] else {
            let known = issuers.keys.sorted().joined(separator: ", ")
            throw AuthnError(.notPermitted, "JWT issuer \(iss) is not trusted by this CA (trusted: \(known.isEmpty ? "none" : known)); add it with --jwt-issuer and --jwks")
        }
        guard let kid = header.kid else {
            throw AuthnError(.invalidCredential, "JWT header has no kid: the issuer's JWKS keys are chosen by kid")
        }
        var keys = try await keySet(for: issuer, now: now)
        if !keys.kids.contains(kid), case .url = issuer.keys, now.timeIntervalSince(keys.fetchedAt) >= refetchInterval {
            keys = try await Self.load(issuer, now: now, fetcher: fetcher)
            keySets[iss] = keys
        }
        guard keys.kids.contains(kid) else {
            throw AuthnError(.invalidCredential, "JWT kid \(kid) is not in the JWKS of \(iss) (\(issuer.keys)): the token was signed by an unknown key")
        }
        let claims: ServiceAccountClaims
        do {
            guard let key = keys.keySet.key(kid: kid, algorithm: header.alg) else {
                throw JWTError.unknownKID(JWKIdentifier(string: kid))
            }
            claims = try await key.verify(token, as: ServiceAccountClaims.self)
        } catch {
            throw AuthnError(.invalidCredential, "JWT signature does not verify with key \(kid) of \(iss): \(error)")
        }
        guard let exp = claims.exp else {
            throw AuthnError(.notPermitted, "JWT has no exp claim: the CA accepts only tokens that expire")
        }
        do {
            try exp.verifyNotExpired(currentDate: now)
        } catch {
            throw AuthnError(.notPermitted, "JWT expired at \(exp.value): ask the issuer for a fresh token")
        }
        if let nbf = claims.nbf, nbf.value > now.addingTimeInterval(60) {
            throw AuthnError(.notPermitted, "JWT is not valid before \(nbf.value)")
        }
        guard let aud = claims.aud, aud.value.contains(audience) else {
            let got = claims.aud?.value.joined(separator: ", ") ?? "none"
            throw AuthnError(.notPermitted, "JWT audience is [\(got)] but the CA requires \(audience): request a token for audience \(audience)")
        }
        guard let id = KubernetesServiceAccount.spiffeID(forSubject: claims.sub.value, trustDomain: trustDomain) else {
            throw AuthnError(.notPermitted, "JWT subject \(claims.sub.value) is not of the form system:serviceaccount:<namespace>:<service-account>")
        }
        return id
    }

    private func keySet(for issuer: TrustedIssuer, now: Date) async throws(AuthnError) -> LoadedKeys {
        if let loaded = keySets[issuer.issuer] { return loaded }
        let loaded = try await Self.load(issuer, now: now, fetcher: fetcher)
        keySets[issuer.issuer] = loaded
        return loaded
    }

    private static func load(_ issuer: TrustedIssuer, now: Date, fetcher: any HTTPFetcher) async throws(AuthnError) -> LoadedKeys {
        let json: String
        switch issuer.keys {
        case .file(let path):
            let data: Data
            switch FileProblem.contents(path) {
            case .success(let bytes): data = bytes
            case .failure(let reason):
                throw AuthnError(
                    .keySourceUnavailable, "JWKS file \(path) for issuer \(issuer.issuer) \(reason): give the issuer's JWKS file (readable by this user), or its http(s) URL")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw AuthnError(.keySourceUnavailable, "JWKS file \(path) for issuer \(issuer.issuer) is not UTF-8 text: give the issuer's JWKS, a JSON document")
            }
            json = text
        case .url(let url):
            json = try await fetch(url, issuer: issuer.issuer, fetcher: fetcher)
        }
        let keySet = try await JWKSKeySet.load(json: json, origin: "the JWKS of \(issuer.issuer) from \(issuer.keys)")
        guard !keySet.keys.isEmpty else {
            throw AuthnError(
                .keySourceUnavailable,
                "the JWKS of \(issuer.issuer) (\(issuer.keys)) holds no key the CA can use: publish the issuer's signing keys there")
        }
        guard !keySet.keys.contains(where: { $0.kid == nil }) else {
            throw AuthnError(.keySourceUnavailable, "a key in the JWKS of \(issuer.issuer) (\(issuer.keys)) has no kid: give every key a kid")
        }
        return LoadedKeys(keySet: keySet, fetchedAt: now)
    }

    private static func fetch(_ url: String, issuer: String, fetcher: any HTTPFetcher) async throws(AuthnError) -> String {
        do throws(AuthnError) {
            return try await fetcher.get(url, timeout: .seconds(10))
        } catch {
            throw AuthnError(.keySourceUnavailable, "JWKS URL \(url) for issuer \(issuer) cannot be used: \(error.reason)")
        }
    }
}
