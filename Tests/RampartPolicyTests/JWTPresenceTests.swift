@testable import RampartPolicy
import Testing

/// `presence` on a JWT rule: OPTIONAL (the default) lets a request without a token through
/// anonymous and refuses a failing token; REQUIRED refuses a request without one; IGNORED treats a
/// token that fails the rule of its issuer as no token (Envoy's `allow_missing_or_failed`).
@Suite("JWT rule presence")
struct JWTPresenceTests {
    static let issuer = "https://idp.example"

    static func engine(_ presence: String?, more: String = "") -> PolicyEngine {
        let rule = "{issuer: \"\(issuer)\", jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}'"
            + (presence.map { ", presence: \($0)" } ?? "") + "}"
        let allowAll = Fixture.policy("all", rules: "  - {}")
        return Fixture.engine(allowAll + Fixture.requestAuthentication([rule] + (more.isEmpty ? [] : [more])))
    }

    static func request(_ jwt: JWTOutcome?) -> AuthzRequest { Fixture.http(jwt: jwt) }

    static let failing = JWTOutcome(
        present: true, valid: false, claims: .object(["iss": .string(issuer), "sub": .string("alice")]),
        failure: "signature does not verify")
    static let other = JWTOutcome(
        present: true, valid: false, claims: .object(["iss": .string("https://other.example")]), failure: "unknown")

    @Test("OPTIONAL and unset: no token passes, a failing token gets 401")
    func optional() {
        for presence in [nil, "OPTIONAL"] {
            let engine = Self.engine(presence)
            #expect(engine.snapshot.evaluate(Self.request(nil)).status == 200)
            #expect(engine.snapshot.evaluate(Self.request(.absent)).status == 200)
            #expect(engine.snapshot.evaluate(Self.request(Self.failing)).status == 401)
        }
    }

    @Test("REQUIRED: a request without a token gets 401")
    func required() {
        let engine = Self.engine("REQUIRED")
        #expect(engine.snapshot.evaluate(Self.request(nil)).status == 401)
        #expect(engine.snapshot.evaluate(Self.request(Self.failing)).status == 401)
    }

    @Test("IGNORED: a token failing its issuer's rule is as none; one for another rule is refused as before")
    func ignored() {
        let engine = Self.engine("IGNORED")
        let ignored = engine.snapshot.evaluate(Self.request(Self.failing))
        #expect(ignored.status == 200 && ignored.decision == .allow)
        let explained = engine.snapshot.explain(Self.request(Self.failing))
        #expect(explained.decision.status == 200)
        let notes = explained.trace.steps.flatMap(\.notes)
        #expect(notes.contains { $0.contains("presence IGNORED, so it is ignored") }, "\(notes)")
        // A token the authenticator already marked ignored is as no token too.
        let marked = JWTOutcome(present: true, valid: false, failure: "expired", ignored: true)
        #expect(Self.engine(nil).snapshot.evaluate(Self.request(marked)).status == 200)
        // A token no rule claims is ignored when every rule says IGNORED ...
        #expect(engine.snapshot.evaluate(Self.request(Self.other)).status == 200)
        // ... and refused when another rule does not.
        let mixed = Self.engine("IGNORED", more: "{issuer: \"https://third.example\", jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}'}")
        #expect(mixed.snapshot.evaluate(Self.request(Self.other)).status == 401)
        #expect(mixed.snapshot.evaluate(Self.request(Self.failing)).status == 200)
    }

    @Test("an ignored token gives no request principal: a policy that requires one denies with 403")
    func ignoredHasNoPrincipal() {
        let rule = "{issuer: \"\(Self.issuer)\", jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}', presence: IGNORED, failedStatusInMetadata: true}"
        let engine = Fixture.engine(
            Fixture.policy("jwt", rules: "  - from: [{source: {requestPrincipals: [\"*\"]}}]")
                + Fixture.requestAuthentication([rule]))
        #expect(engine.diagnostics.filter { $0.severity == .error }.isEmpty, "\(engine.diagnostics)")
        #expect(engine.snapshot.evaluate(Self.request(Self.failing)).status == 403)
    }

    @Test("presence takes OPTIONAL, REQUIRED and IGNORED; anything else is refused")
    func values() {
        for value in ["OPTIONAL", "REQUIRED", "IGNORED"] {
            let loaded = PolicyLoader.load(yaml: Fixture.requestAuthentication(["{issuer: a, presence: \(value)}"]), file: "p.yaml")
            #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        }
        let refused = PolicyLoader.load(yaml: Fixture.requestAuthentication(["{issuer: a, presence: MANDATORY}"]), file: "p.yaml")
        #expect(refused.diagnostics.map(\.code) == [.badEnum])
        #expect(refused.diagnostics.first?.message.contains("IGNORED") == true)
        // failedStatusInMetadata is a boolean, as in istio/api.
        let text = PolicyLoader.load(yaml: Fixture.requestAuthentication(["{issuer: a, failedStatusInMetadata: key}"]), file: "p.yaml")
        #expect(text.diagnostics.map(\.code) == [.wrongType])
    }
}
