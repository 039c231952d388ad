import Foundation
import JWTKit
import RampartIdentity

/// Validates JWT-SVIDs against trust domains' JWT bundles, by SPIFFE's JWT-SVID rules:
/// the `kid` names a key of the subject's trust domain, the signature verifies with it, `sub` is a
/// SPIFFE ID, `aud` contains the expected audience, and `exp` has not passed.
public struct JWTSVIDValidator: Sendable {
    private struct TrustDomainKeys: Sendable {
        let collection: JWTKeyCollection
        let kids: Set<String>
    }

    /// What a valid token says.
    public struct Validated: Sendable, Equatable {
        /// The token's subject.
        public let spiffeID: SPIFFEID
        /// Every claim of the token.
        public let claims: [String: JSONValue]
    }

    private let domains: [String: TrustDomainKeys]
    /// Clock skew tolerated on `exp`, in seconds.
    public let leeway: TimeInterval

    /// Builds a validator from bundles keyed by trust domain name.
    public init(bundles: [TrustDomain: JWTBundle], leeway: TimeInterval = 30) async throws(AuthnError) {
        var domains: [String: TrustDomainKeys] = [:]
        for (trustDomain, bundle) in bundles {
            let (collection, kids) = try await bundle.keyCollection()
            domains[trustDomain.name] = TrustDomainKeys(collection: collection, kids: kids)
        }
        self.domains = domains
        self.leeway = leeway
    }

    /// Validates `token` for `audience` at `now`.
    public func validate(_ token: String, audience: String, now: Date = Date()) async throws(AuthnError) -> Validated {
        guard !audience.isEmpty else {
            throw AuthnError(.notPermitted, "no audience given: a JWT-SVID is validated for the audience that receives it")
        }
        let header: JWTHeader
        let routed: SubjectOnlyClaims
        do {
            (header, routed, _) = try DefaultJWTParser().parse(Array(token.utf8), as: SubjectOnlyClaims.self)
        } catch {
            throw AuthnError(
                .invalidCredential,
                "the token is not a compact JWT (three base64url parts joined by dots, a JSON header and payload): \(ErrorText.describe(error)); pass the JWT-SVID exactly as fetched")
        }
        if let alg = header.alg, alg.lowercased() == "none" || alg.hasPrefix("HS") {
            throw AuthnError(.invalidCredential, "JWT-SVID algorithm \(alg) is not allowed: JWT-SVIDs are signed with an asymmetric key (ES256, RS256, …)")
        }
        if let typ = header.typ, typ != "JWT", typ != "JOSE" {
            throw AuthnError(.invalidCredential, "JWT-SVID header typ is \(typ): it must be JWT or JOSE when present")
        }
        guard let sub = routed.sub?.value else {
            throw AuthnError(.invalidCredential, "the JWT has no sub claim: a JWT-SVID's subject is its SPIFFE ID")
        }
        let subject: SPIFFEID
        do {
            subject = try SPIFFEID(parsing: sub)
        } catch {
            throw AuthnError(.invalidCredential, "the JWT's sub \(sub) is not a SPIFFE ID: \(error.reason)")
        }
        guard let keys = domains[subject.trustDomain.name] else {
            let known = domains.keys.sorted().joined(separator: ", ")
            throw AuthnError(.notPermitted, "no JWT bundle for trust domain \(subject.trustDomain.name) (bundles held: \(known.isEmpty ? "none" : known))")
        }
        guard let kid = header.kid else {
            throw AuthnError(.invalidCredential, "the JWT-SVID header has no kid: the signing key is chosen by kid")
        }
        guard keys.kids.contains(kid) else {
            throw AuthnError(.invalidCredential, "kid \(kid) is not in the JWT bundle of \(subject.trustDomain.name): the token was signed by an unknown key")
        }
        let claims: JWTSVIDClaims
        let all: AllClaims
        do {
            claims = try await keys.collection.verify(token, as: JWTSVIDClaims.self)
            all = try await keys.collection.verify(token, as: AllClaims.self)
        } catch {
            throw AuthnError(.invalidCredential, "the JWT-SVID does not verify with key \(kid) of \(subject.trustDomain.name), or lacks sub, aud or exp: \(ErrorText.describe(error))")
        }
        if claims.exp.value.addingTimeInterval(leeway) < now {
            throw AuthnError(.notPermitted, "the JWT-SVID expired at \(claims.exp.value.formatted(.iso8601)): fetch a fresh one")
        }
        guard claims.aud.value.contains(audience) else {
            throw AuthnError(.notPermitted, "the JWT-SVID's audience is [\(claims.aud.value.joined(separator: ", "))], which does not include \(audience)")
        }
        return Validated(spiffeID: subject, claims: all.values)
    }
}
