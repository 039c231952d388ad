import Foundation
@testable import RampartPolicy
import Testing

/// Authorization reads the headers as Envoy's JWT filter leaves them, since it runs before the
/// RBAC filter: claim and payload headers written, the token header removed unless forwarded, and
/// a client's own copies of the written headers sanitized.
@Suite("headers after request authentication")
struct AuthnHeaderVisibilityTests {
    static let issuer = "https://issuer.example"

    static func policies(jwtRule: String, when: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: ns1}
        spec:
          jwtRules:
          - \(jwtRule)
        ---
        \(Fixture.policy("p", rules: "  - when: [\(when)]"))
        """
    }

    static func token(sub: String = "sub-1") -> JWTOutcome {
        JWTOutcome(
            present: true, claims: .object(["iss": .string(issuer), "sub": .string(sub)]), requestPrincipal: "\(issuer)/\(sub)",
            location: "header", raw: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdWItMSJ9.c2ln")
    }

    /// The fast path's and the reference evaluation's decisions, which must agree.
    static func decide(_ yaml: String, headers: [String: String] = [:], jwt: JWTOutcome? = nil) -> Decision.Verdict {
        let engine = Fixture.engine(yaml)
        let request = Fixture.http(headers: headers, jwt: jwt)
        let workload = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        let fast = workload.evaluate(request)
        #expect(fast == workload.evaluateReference(request), "the fast path and the reference disagree")
        return fast.decision
    }

    @Test("a claim copied to a header is there for request.headers conditions; a client's own copy is not")
    func claimHeader() {
        let yaml = Self.policies(
            jwtRule: "{issuer: '\(Self.issuer)', outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]}",
            when: "{key: 'request.headers[x-jwt-sub]', values: [sub-1]}")
        #expect(Self.decide(yaml, headers: ["authorization": "Bearer t"], jwt: Self.token()) == .allow)
        #expect(Self.decide(yaml, headers: ["authorization": "Bearer t"], jwt: Self.token(sub: "sub-2")) == .deny)
        // Sent by the client without a token, or beside a token lacking the claim: sanitized away.
        #expect(Self.decide(yaml, headers: ["x-jwt-sub": "sub-1"]) == .deny)
        #expect(Self.decide(yaml, headers: ["x-jwt-sub": "sub-1"], jwt: Self.token(sub: "sub-2")) == .deny)
    }

    @Test("the payload header holds the token's payload for conditions")
    func payloadHeader() {
        let yaml = Self.policies(
            jwtRule: "{issuer: '\(Self.issuer)', outputPayloadToHeader: x-test-payload}",
            when: "{key: 'request.headers[x-test-payload]', values: ['eyJzdWIiOiJzdWItMSJ9']}")
        #expect(Self.decide(yaml, headers: ["authorization": "Bearer t"], jwt: Self.token()) == .allow)
        #expect(Self.decide(yaml, headers: ["x-test-payload": "eyJzdWIiOiJzdWItMSJ9"]) == .deny)
        // A request file's abstract token has claims but no raw text: the payload is its claims as JSON.
        let abstract = JWTOutcome(
            present: true, claims: .object(["iss": .string(Self.issuer), "sub": .string("sub-1")]), requestPrincipal: "\(Self.issuer)/sub-1")
        let any = Self.policies(
            jwtRule: "{issuer: '\(Self.issuer)', outputPayloadToHeader: x-test-payload}", when: "{key: 'request.headers[x-test-payload]', values: ['*']}")
        #expect(Self.decide(any, jwt: abstract) == .allow)
        let edited = Fixture.http(jwt: abstract).applying([.setPayload("x-test-payload")])
        let payload = edited.headers["x-test-payload"] ?? ""
        let padded = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            + String(repeating: "=", count: (4 - payload.count % 4) % 4)
        let decoded = Data(base64Encoded: padded).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: String] }
        #expect(decoded == ["iss": Self.issuer, "sub": "sub-1"], "\(payload)")
    }

    @Test("of two rules for one issuer, the one that verified the token writes its claim headers")
    func ruleThatVerified() {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: ns1}
            spec:
              jwtRules:
              - {issuer: '\(Self.issuer)', outputClaimToHeaders: [{header: x-first, claim: sub}]}
              - {issuer: '\(Self.issuer)', outputClaimToHeaders: [{header: x-second, claim: sub}]}
            ---
            \(Fixture.policy("p", rules: "  - when: [{key: 'request.headers[x-second]', values: [sub-1]}]"))
            """
        let engine = Fixture.engine(yaml)
        let workload = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        #expect(workload.providers.count == 2)
        func token(acceptedBy index: Int?) -> JWTOutcome {
            JWTOutcome(
                present: true, claims: .object(["iss": .string(Self.issuer), "sub": .string("sub-1")]),
                requestPrincipal: "\(Self.issuer)/sub-1", location: "header", raw: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdWItMSJ9.c2ln",
                acceptedBy: index.map { workload.providers[$0].rule })
        }
        for (index, expected) in [(1, Decision.Verdict.allow), (0, .deny)] {
            let request = Fixture.http(headers: ["authorization": "Bearer t"], jwt: token(acceptedBy: index))
            let fast = workload.evaluate(request)
            #expect(fast == workload.evaluateReference(request))
            #expect(fast.decision == expected, "verified by jwtRules[\(index)]: \(fast.reason)")
        }
        // Without the verifier's word, the first rule for the issuer applies, as before.
        #expect(workload.evaluate(Fixture.http(headers: ["authorization": "Bearer t"], jwt: token(acceptedBy: nil))).decision == .deny)
    }

    @Test("the token header is gone unless forwardOriginalToken keeps it")
    func tokenHeader() {
        let when = "{key: 'request.headers[authorization]', values: ['*']}"
        let removed = Self.policies(jwtRule: "{issuer: '\(Self.issuer)'}", when: when)
        #expect(Self.decide(removed, headers: ["authorization": "Bearer t"], jwt: Self.token()) == .deny)
        let kept = Self.policies(jwtRule: "{issuer: '\(Self.issuer)', forwardOriginalToken: true}", when: when)
        #expect(Self.decide(kept, headers: ["authorization": "Bearer t"], jwt: Self.token()) == .allow)
        // A header the rule does not read the token from is left as it is.
        let other = Self.policies(
            jwtRule: "{issuer: '\(Self.issuer)', fromHeaders: [{name: x-token}]}", when: when)
        #expect(Self.decide(other, headers: ["authorization": "Basic abc", "x-token": "t"], jwt: Self.token()) == .allow)
    }

    @Test("AuthzRequest.applying edits headers and repeated values, and leaves the rest")
    func applying() {
        let request = AuthzRequest(
            destination: AuthzRequest.Destination(namespace: "ns1"), method: "GET", path: "/a?b=c",
            headers: ["x-a": "1,2", "x-keep": "k"], jwt: Self.token(), repeatedHeaders: ["x-a": ["1", "2"]])
        let edited = request.applying([.remove("x-a"), .set("x-b", "v"), .setPayload("x-p"), .setPayload("bad name"), .removeQueryParameter("b")])
        #expect(edited.headers == ["x-keep": "k", "x-b": "v", "x-p": "eyJzdWIiOiJzdWItMSJ9"])
        #expect(edited.repeatedHeaders.isEmpty)
        #expect(edited.path == "/a?b=c" && edited.jwt == request.jwt)
    }
}
