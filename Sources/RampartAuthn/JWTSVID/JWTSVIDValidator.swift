import Foundation
import JWTKit
import RampartIdentity

/// Validates JWT-SVIDs against trust domains' JWT bundles, by SPIFFE's JWT-SVID rules:
/// the `kid` names a key of the subject's trust domain, the signature verifies with it, `sub` is a
/// SPIFFE ID, `aud` contains the expected audience, `exp` has not passed and `nbf`, if any, has.
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
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
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
        try CriticalHeader.check(header, what: "JWT-SVID")
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
        let all: AllClaims
        do {
            all = try await keys.collection.verify(token, as: AllClaims.self)
        } catch {
            throw AuthnError(.invalidCredential, "the JWT-SVID does not verify with key \(kid) of \(subject.trustDomain.name): \(ErrorText.describe(error))")
        }
        let expiry = try Self.time(all.values, "exp", required: true)!
        if expiry.addingTimeInterval(leeway) < now {
            throw AuthnError(.notPermitted, "the JWT-SVID expired at \(expiry.formatted(.iso8601)): fetch a fresh one")
        }
        if let notBefore = try Self.time(all.values, "nbf", required: false), notBefore.addingTimeInterval(-leeway) > now {
            throw AuthnError(.notPermitted, "the JWT-SVID is not valid before \(notBefore.formatted(.iso8601)) (its nbf): check the clocks of its issuer and of this host")
        }
        let audiences: [String]
        switch all.values["aud"] {
        case .string(let one)?: audiences = [one]
        case .array(let items)? where items.allSatisfy({ if case .string = $0 { true } else { false } }):
            audiences = items.compactMap { if case .string(let text) = $0 { text } else { nil } }
        case nil:
            throw AuthnError(.invalidCredential, "the JWT-SVID has no aud claim: SPIFFE requires the audiences it is meant for")
        default:
            throw AuthnError(.invalidCredential, "the JWT-SVID's aud claim is neither a string nor a list of strings")
        }
        guard audiences.contains(audience) else {
            throw AuthnError(.notPermitted, "the JWT-SVID's audience is [\(audiences.joined(separator: ", "))], which does not include \(audience)")
        }
        return Validated(spiffeID: subject, claims: all.values)
    }

    /// A NumericDate claim (seconds since the epoch), `nil` when absent and not required.
    static func time(_ claims: [String: JSONValue], _ name: String, required: Bool) throws(AuthnError) -> Date? {
        switch claims[name] {
        case .number(let seconds)?: return Date(timeIntervalSince1970: seconds)
        case nil where !required: return nil
        case nil:
            throw AuthnError(.invalidCredential, "the JWT-SVID has no \(name) claim: SPIFFE requires an expiry")
        default:
            throw AuthnError(.invalidCredential, "the JWT-SVID's \(name) claim is not a number of seconds since the epoch")
        }
    }
}
