import Testing

@testable import RampartPolicy

/// Paths Istio's default (BASE) path normalization refuses: Envoy's canonicalization fails on an
/// escaped NUL and the request is answered 400 before RBAC (envoyproxy/envoy
/// test/common/http/path_utility_test.cc, `InvalidPaths`).
@Suite("paths the normalization refuses")
struct PathRejectionTests {
    @Test(
        "an escaped or raw NUL in the path is refused; elsewhere it is not",
        arguments: [
            ("/xyz/.%00../abc", true),
            ("/xyz/%00.%00./abc", true),
            ("/xyz/AAAAA%%0000/abc", true),
            ("/xyz/%00../admin", true),
            ("/a%000", true),
            ("/a\u{0}b", true),
            ("/a/b", false),
            ("/a%2500", false),
            ("/a%0", false),
            ("/a%01", false),
            ("/a?q=%00", false),
            ("/a#%00", false),
            ("/%2e%2e/%41", false),
            ("", false),
            // Across and after the eight-byte words the fast scan reads.
            ("/abcdef%00", true),
            ("/abcdefg%00x", true),
            ("/abcdefghijklmno\u{0}", true),
            ("/abcdefghijklmnop%41%42/%2e", false),
            ("/abcdefghijklmnop?%00", false),
            // A NUL in a dot segment's parameters goes with them.
            ("/a/..;%00/b", false),
            ("/a/..;x/%00", true),
        ])
    func rejects(path: String, refused: Bool) {
        #expect(PathNormalizer.rejects(path) == refused)
    }

    private static func policies(_ yaml: String) -> WorkloadPolicies {
        Fixture.engine(yaml).snapshot.workload(namespace: "ns1", labels: ["app": "b"])
    }

    @Test("a refused path is answered 400 whatever the policies say, on both evaluators")
    func answered400() {
        let deny = Self.policies(
            Fixture.policy("d", action: "DENY", rules: "  - to: [{operation: {paths: [\"/admin*\"]}}]"))
        let allowAll = Self.policies(Fixture.policy("a", rules: "  - to: [{operation: {paths: [\"*\"]}}]"))
        let none = Self.policies("")
        for policies in [deny, allowAll, none] {
            for path in ["/xyz/%00../admin", "/xyz/AAAAA%%0000/abc"] {
                let request = Fixture.http(path: path)
                let decision = policies.evaluate(request)
                #expect(decision.decision == .deny && decision.status == 400, "\(path)")
                #expect(decision.cause == .invalidPath && decision.policy == nil)
                #expect(decision == policies.evaluateReference(request))
                #expect(decision.reason.contains("%00"))
            }
            #expect(policies.evaluate(Fixture.http(path: "/xyz/../admin")).status != 400)
        }
        // TCP has no path; a plaintext peer on a STRICT port is refused first, by the handshake.
        #expect(none.evaluate(Fixture.tcp()).status == 200)
        let strict = Self.policies(
            """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: ns1}
            spec: {mtls: {mode: STRICT}}
            """)
        let plaintext = AuthzRequest(
            transport: .http, source: AuthzRequest.Source(ip: "10.0.0.1", mtls: false),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET",
            path: "/%00")
        #expect(strict.evaluate(plaintext).cause == .plaintextUnderStrict)
    }

    @Test("a path that does not start with / is answered 404 before normalization and any policy, on both evaluators")
    func relativePath404() {
        let deny = Self.policies(Fixture.policy("d", action: "DENY", rules: "  - to: [{operation: {paths: [\"/admin\"]}}]"))
        let allowAll = Self.policies(Fixture.policy("a", rules: "  - {}"))
        for policies in [deny, allowAll, Self.policies("")] {
            // A backslash is not a slash until normalization, which Envoy runs after this check.
            for path in ["\\admin", "admin", "*", "?x=1"] {
                let request = Fixture.http(path: path)
                let decision = policies.evaluate(request)
                #expect(decision.decision == .deny && decision.status == 404 && decision.cause == .relativePath, "\(path)")
                #expect(decision == policies.evaluateReference(request), "\(path)")
            }
            // OPTIONS * and CONNECT have targets that are not paths; the proxy lets them through.
            #expect(policies.evaluate(Fixture.http(method: "OPTIONS", path: "*")).status != 404)
            #expect(policies.evaluate(Fixture.http(method: "CONNECT", path: "b:443")).status != 404)
            #expect(policies.evaluate(Fixture.http(path: "/\\admin")).status != 404)
        }
        // After the leading slash a backslash is normalized to a slash: `//admin`, which the
        // default normalization does not merge, so `/admin` does not match it.
        #expect(deny.evaluate(Fixture.http(path: "/\\admin")).decision == .allow)
        #expect(deny.evaluate(Fixture.http(path: "/x/..\\admin")).decision == .deny)
    }

    @Test("the path is refused before the JWT is checked")
    func beforeJWT() {
        let policies = Self.policies(
            Fixture.requestAuthentication(["issuer: https://issuer.example\n    jwks: '{\"keys\": []}'"]))
        let request = AuthzRequest(
            transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a"),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET",
            path: "/a/%00", jwt: JWTOutcome(present: true, valid: false))
        #expect(policies.evaluate(request).status == 400)
        #expect(policies.evaluateReference(request).status == 400)
        let valid = AuthzRequest(
            transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a"),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET",
            path: "/a", jwt: JWTOutcome(present: true, valid: false))
        #expect(policies.evaluate(valid).status == 401)
    }
}
