import Foundation
import Testing

@testable import RampartPolicy

/// `--explain` lists every policy that applies, those a decision made unnecessary included, says
/// when a token goes unchecked, and the reason says what a dry run or an audience refusal means.
@Suite("what an explanation says")
struct ExplainCompletenessTests {
    static let policies = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: ns1}
        spec:
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-get, namespace: ns1}
        spec:
          rules: [{to: [{operation: {methods: [GET]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-all, namespace: ns1}
        spec:
          rules: [{}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: dry-deny, namespace: ns1, annotations: {istio.io/dry-run: "true"}}
        spec:
          action: DENY
          rules: [{to: [{operation: {paths: ["/x"]}}]}]
        """

    static func steps(_ request: AuthzRequest, _ yaml: String = policies) -> [ExplainTrace.PolicyStep] {
        Fixture.engine(yaml).snapshot.explain(request).1.steps
    }

    @Test("policies a decision made unnecessary are listed, with the policy that decided")
    func notReached() {
        let denied = Self.steps(Fixture.http(path: "/admin"))
        #expect(denied.contains { $0.policy == "ns1/allow-get" && $0.notes == ["not evaluated: the request was already denied by ns1/deny-admin"] })
        #expect(denied.contains { $0.policy == "ns1/allow-all" && $0.notes.first?.hasPrefix("not evaluated") == true })
        let allowed = Self.steps(Fixture.http(path: "/"))
        #expect(allowed.contains { $0.policy == "ns1/allow-all" && $0.notes == ["not evaluated: the request was already allowed by ns1/allow-get"] })
        #expect(!allowed.contains { $0.policy == "ns1/allow-get" && $0.notes.first?.hasPrefix("not evaluated") == true })
    }

    @Test("every failing part of a rule is named, and a rule left out on TCP names its HTTP-only fields")
    func everyFailure() {
        let yaml = Fixture.policy(
            "cart", rules: "  - to: [{operation: {methods: [GET], paths: [\"/api/*\"]}}]\n    when: [{key: \"request.headers[x-team]\", values: [a]}]")
        let notes = Self.steps(Fixture.http(method: "POST", path: "/x"), yaml).first { $0.policy == "ns1/cart" }?.notes ?? []
        let note = notes.first ?? ""
        #expect(note.contains("operation.methods") && note.contains("operation.paths") && note.contains("request.headers[x-team]"), "\(notes)")
        let tcp = Self.steps(Fixture.tcp(), yaml).first { $0.policy == "ns1/cart" }?.notes.first ?? ""
        #expect(tcp.contains("skipped on TCP") && tcp.contains("rules[0].to[0].operation.methods"), "\(tcp)")
    }

    @Test("policies a refusal before them made unnecessary are listed: STRICT, a bad path, a refused token, a CUSTOM denial")
    func refusedFirst() {
        let strict = Self.policies + """

            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: ns1}
            spec: {mtls: {mode: STRICT}}
            """
        let plaintext = Self.steps(Fixture.http(principal: nil), strict)
        for name in ["ns1/deny-admin", "ns1/allow-get", "ns1/allow-all"] {
            #expect(plaintext.contains { $0.policy == name && $0.outcome == .notEvaluated
                && $0.notes == ["not evaluated: STRICT mTLS refused the plaintext connection first"] }, "\(name): \(plaintext)")
        }
        let badPath = Self.steps(Fixture.http(path: "/a/%2e%2e%2f/b%00"))
        #expect(badPath.contains { $0.policy == "ns1/allow-get" && $0.outcome == .notEvaluated }, "\(badPath)")
        let custom = Fixture.policy("ext", action: "CUSTOM", extra: "", rules: "  - to: [{operation: {paths: [/x]}}]")
            .replacingOccurrences(of: "  action: CUSTOM\n", with: "  action: CUSTOM\n  provider: {name: my-ext}\n")
        let denied = Self.steps(Fixture.http(path: "/x", extAuthz: .deny), Self.policies + "\n---\n" + custom)
        #expect(denied.contains { $0.policy == "ns1/ext" && $0.notes.first == "provider my-ext: asked only when a rule matches" }, "\(denied)")
        #expect(denied.contains { $0.policy == "ns1/deny-admin" && $0.notes == ["not evaluated: the request was already denied by ns1/ext"] },
                "\(denied)")
    }

    @Test("a root-namespace policy says it comes from the root namespace; the destination's own do not")
    func rootNamespaceNamed() {
        let mesh = Fixture.policy("mesh-deny", action: "DENY", namespace: "istio-system", rules: "  - to: [{operation: {paths: [/admin]}}]")
        let steps = Self.steps(Fixture.http(path: "/"), Self.policies + "\n---\n" + mesh)
        let root = steps.first { $0.policy == "istio-system/mesh-deny" }
        #expect(root?.notes.first == "from the root namespace istio-system, whose policies apply in every namespace", "\(steps)")
        #expect(!(steps.first { $0.policy == "ns1/deny-admin" }?.notes.contains { $0.hasPrefix("from the root namespace") } ?? true), "\(steps)")
    }

    @Test("a token with no RequestAuthentication to check it is said to go unchecked")
    func uncheckedToken() {
        let token = JWTOutcome(present: true, claims: .object(["iss": .string("https://idp"), "sub": .string("a")]))
        let step = Self.steps(Fixture.http(jwt: token)).first { $0.kind == "RequestAuthentication" }
        #expect(step?.notes.first?.contains("no RequestAuthentication with jwtRules applies to this workload, so the token is not checked") == true)
        #expect(!Self.steps(Fixture.http()).contains { $0.kind == "RequestAuthentication" })
    }

    @Test("an allowed request a dry-run DENY would deny says so in its reason")
    func dryRunInReason() {
        let snapshot = Fixture.engine(Self.policies).snapshot
        let reason = PolicyEngine.check(Fixture.http(path: "/x"), snapshot: snapshot, explain: false).object["reason"] as? String
        #expect(reason?.hasSuffix("; in dry run, ns1/dry-deny would deny on its own (its rule 0 matches)") == true, "\(reason ?? "")")
        let plain = PolicyEngine.check(Fixture.http(path: "/y"), snapshot: snapshot, explain: false).object["reason"] as? String
        #expect(plain?.contains("dry run") == false, "\(plain ?? "")")
    }

    @Test("an abstract token's audience refusal names the token's audiences and the ones accepted")
    func audienceReason() {
        let yaml = Self.policies + "\n---\n" + Fixture.requestAuthentication(["{issuer: 'https://idp', audiences: [cart, shop], jwks: '{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\", \"alg\": \"HS256\"}]}'}"])
        let snapshot = Fixture.engine(yaml).snapshot
        func reason(_ claims: [String: ClaimValue]) -> String {
            let token = JWTOutcome(present: true, claims: .object(claims))
            let (decision, object) = PolicyEngine.check(Fixture.http(jwt: token), snapshot: snapshot, explain: false)
            #expect(decision.status == 403)
            return object["reason"] as? String ?? ""
        }
        let refused = PolicyEngine.check(
            Fixture.http(jwt: JWTOutcome(present: true, claims: .object(["iss": .string("https://idp")]))), snapshot: snapshot,
            explain: false)
        #expect(refused.object["request_authentication"] as? String == "ns1/jwt", "\(refused.object)")
        let none = reason(["iss": .string("https://idp"), "sub": .string("a")])
        #expect(none.contains("the token has no aud claim") && none.contains("accepts only [cart, shop]"), "\(none)")
        let other = reason(["iss": .string("https://idp"), "sub": .string("a"), "aud": .array([.string("pay")])])
        #expect(other.contains("the token has aud [pay]"), "\(other)")
    }
}
